"""Signed reply addresses: a reply with every threading header stripped still joins its case."""

from __future__ import annotations

import smtplib

import pytest

from closeloop.cases.models import Message
from closeloop.intake import reply
from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process
from closeloop.intake.tests.conftest import make_mail, running_listener
from closeloop.outbound.outbox import deliver_due
from closeloop.testing.waiting import wait_for


def _wait_for(predicate):
    return wait_for(predicate, 30.0, lambda: str([(r.status, r.result, r.error[:300])
                                                  for r in InboundMessage.objects.all()]))


@pytest.fixture
def smtp_intake(practice):
    with running_listener(practice, "requests@intake.local", max_bytes=500_000) as config:
        yield config


def _send(config, sender, to, raw):
    with smtplib.SMTP(config.host, config.port) as client:
        client.sendmail(sender, [to], raw)


def _processed(count):
    return _wait_for(lambda: list(InboundMessage.objects.filter(status__in=["processed", "duplicate"])
                                  .order_by("id"))[count - 1:count])[0]


def _forged(address: str) -> str:
    local, domain = address.split("@")
    last = local[-1]
    return f"{local[:-1]}{'0' if last != '0' else '1'}@{domain}"


@pytest.mark.django_db(transaction=True)
def test_a_reply_to_the_acknowledgement_joins_the_case_without_any_threading_header(smtp_intake, smtp_server):
    _send(smtp_intake, "maria@example.com", "requests@intake.local", make_mail(to="requests@intake.local"))
    first = _processed(1)
    assert first.result == "opened"
    assert deliver_due(10) == 1
    ack = smtp_server.to("maria@example.com")[0].message
    reply_to = ack["Reply-To"]
    assert reply_to.startswith("requests+c") and reply_to.endswith("@intake.local")
    assert reply.case_id_in([reply_to]) == first.case_id

    # The requester's client drops In-Reply-To/References and writes a new subject.
    answer = make_mail(to=reply_to, subject="Insurance card", body="Here is the member ID: XJ-4410.")
    _send(smtp_intake, "maria@example.com", reply_to, answer)
    second = _processed(2)
    assert second.result == "threaded" and second.case_id == first.case_id
    assert first.case.messages.filter(direction=Message.Direction.INBOUND).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_forged_reply_address_is_accepted_by_the_listener_but_never_threads(smtp_intake, smtp_server):
    _send(smtp_intake, "maria@example.com", "requests@intake.local", make_mail(to="requests@intake.local"))
    first = _processed(1)
    forged = _forged(reply.reply_address(first.case_id, "requests@intake.local"))
    attack = make_mail(sender="mallory@example.net", to=forged, subject="Change my address",
                       body="Please send all records to my new address.")
    _send(smtp_intake, "mallory@example.net", forged, attack)
    second = _processed(2)
    assert second.result == "opened" and second.case_id != first.case_id


def test_a_reply_address_in_delivered_to_threads_mail_fetched_by_imap(practice):
    row, _ = receive_and_process(Inbound(channel="imap", raw=make_mail(), external_id="imap:1"))
    address = reply.reply_address(row.case_id, "frontdesk@closeloop.local")
    raw = make_mail(sender="someone@else.example", subject="re", body="see attached",
                    headers={"Delivered-To": address})
    threaded, _ = receive_and_process(Inbound(channel="imap", raw=raw, external_id="imap:2"))
    assert threaded.result == "threaded" and threaded.case_id == row.case_id


def test_a_token_signed_for_one_case_does_not_open_another(practice):
    row, _ = receive_and_process(Inbound(channel="imap", raw=make_mail(), external_id="imap:1"))
    other = receive_and_process(Inbound(channel="imap", raw=make_mail(sender="b@example.com", subject="Refill"),
                                        external_id="imap:2"))[0]
    signature = reply.token(row.case_id).split("-")[1]
    swapped = f"frontdesk+c{other.case_id}-{signature}@closeloop.local"
    assert reply.case_id_in([swapped]) is None
    assert reply.case_id_in([swapped.replace(f"c{other.case_id}", f"c{row.case_id}").upper()]) == row.case_id


def test_reply_addresses_made_before_a_key_rotation_still_verify(settings):
    old = reply.reply_address(42, "requests@intake.local")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-0123456789"
    assert reply.case_id_in([old]) == 42
    settings.SECRET_KEY_FALLBACKS = []
    assert reply.case_id_in([old]) is None


def test_a_configured_reply_address_is_used_for_every_case(settings):
    settings.CLOSELOOP_INTAKE_REPLY_ADDRESS = "Replies+old@Practice.Example"
    address = reply.reply_address(7, "requests@intake.local")
    assert address.startswith("replies+c7-") and address.endswith("@practice.example")
    assert reply.without_tag(address) == "replies@practice.example"
