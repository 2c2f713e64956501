from __future__ import annotations

import pytest

from closeloop.cases.models import Case, Document, Message, Party
from closeloop.cases.stages import Stage
from closeloop.intake.inbound import Inbound, read_raw
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process, retry
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due
from closeloop.understanding.models import UnderstandingJob

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _in(raw: bytes, channel: str = "smtp", **meta):
    row, _ = receive_and_process(Inbound(channel=channel, raw=raw, meta=meta))
    row.refresh_from_db()
    return row


def test_it_opens_a_case_keeps_the_raw_bytes_and_acknowledges_over_smtp(practice, mail, smtp_server):
    raw = mail(attachments=[("referral.pdf", "application/pdf", PDF)])
    row = _in(raw, request_type="referral")
    assert row.status == "processed" and row.result == "opened"
    assert read_raw(row.raw_path) == raw
    case = row.case
    assert case.stage == Stage.NEW and case.request_type.slug == "referral"
    assert case.requester.email == "maria@example.com"
    assert case.documents.get().filename == "referral.pdf"
    assert list(case.events.values_list("kind", flat=True)) == ["opened"]
    assert UnderstandingJob.objects.filter(case=case, state="pending").count() == 1  # handed to understanding
    assert deliver_due() == 1
    ack = smtp_server.to("maria@example.com")[0].message
    assert case.reference in ack["Subject"]
    assert "expect a response by" in ack.get_content()
    assert ack["In-Reply-To"] == case.messages.filter(direction="in").get().message_id
    assert ack["Auto-Submitted"] == "auto-generated"


def test_a_reply_to_the_acknowledgement_threads_into_the_case(practice, mail):
    case = _in(mail()).case
    ack = OutboxMessage.objects.get(case=case)
    reply = _in(mail(subject="Re: anything", body="Her insurance is Aetna.", headers={"In-Reply-To": ack.message_id}))
    assert reply.result == "threaded" and reply.case == case
    assert case.messages.filter(direction="in").count() == 2
    assert OutboxMessage.objects.filter(case=case).count() == 1  # no second ack


def test_the_requester_quoting_the_reference_threads_without_headers(practice, mail):
    case = _in(mail()).case
    reply = _in(mail(subject=f"More about {case.reference}", body="Attached the insurance card."))
    assert reply.result == "threaded" and reply.case == case


def test_a_stranger_quoting_anothers_reference_opens_a_new_linked_case(practice, mail):
    case = _in(mail()).case
    row = _in(mail(sender="mallory@evil.example", subject=f"Re: {case.reference}", body="Send me her records."))
    assert row.result == "opened" and row.case != case
    assert row.case.events.filter(kind="linked_case", data__case=case.pk).exists()
    assert case.events.filter(kind="referenced_by_other_sender").exists()
    assert not Message.objects.filter(case=case, sender="mallory@evil.example").exists()


def test_the_same_message_twice_is_one_input(practice, mail):
    raw = mail()
    first, created = receive_and_process(Inbound(channel="smtp", raw=raw, external_id="<a@b>"))
    again, created_again = receive_and_process(Inbound(channel="smtp", raw=raw, external_id="<a@b>"))
    assert created and not created_again and again.pk == first.pk
    assert Case.objects.count() == 1


def test_a_near_identical_resend_is_linked_not_opened_again(practice, mail):
    first = _in(mail(body="Please see Maria.\n\nThanks"))
    second = _in(mail(subject="FW: Referral for knee pain", body="please   see maria.\nthanks\n"))
    assert second.status == "duplicate" and second.case == first.case
    assert Case.objects.count() == 1 and OutboxMessage.objects.count() == 1
    assert first.case.events.filter(kind="duplicate_received").exists()


def test_the_same_message_id_through_another_channel_is_a_duplicate(practice, mail):
    raw = mail(message_id="<same@example.com>")
    first = _in(raw, channel="imap")
    second = _in(raw.replace(b"Subject:", b"X-Relayed: yes\nSubject:"), channel="smtp")
    assert second.status == "duplicate" and second.result == "same_message_id" and second.case == first.case


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"}, {"Precedence": "bulk"}, {"List-Id": "<news.example.com>"},
    {"X-Loop": "someone"}, {"Return-Path": "<>"},
])
def test_automatic_and_list_mail_is_never_acknowledged(practice, mail, headers):
    row = _in(mail(headers=headers))
    assert row.status == "processed"
    assert not OutboxMessage.objects.exists()


def test_an_auto_reply_to_our_ack_is_noted_on_the_case_not_threaded(practice, mail):
    case = _in(mail()).case
    ack = OutboxMessage.objects.get(case=case)
    row = _in(mail(subject="Out of office", body="I am away.", headers={
        "Auto-Submitted": "auto-replied", "In-Reply-To": ack.message_id}))
    assert row.result == "auto_reply" and row.case == case
    assert case.events.filter(kind="auto_reply_received").exists()
    assert case.messages.filter(direction="in").count() == 1


def test_a_bounce_of_our_ack_is_recorded_on_the_case(practice, mail):
    case = _in(mail(sender="nobody@example.com")).case
    ack = OutboxMessage.objects.get(case=case)
    bounce = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: frontdesk@closeloop.local\r\nSubject: Undelivered Mail\r\n"
        "Message-ID: <bounce1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; nobody@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ack.message_id}\r\nSubject: ack\r\n\r\n"
        "--B--\r\n"
    ).encode()
    row = _in(bounce)
    assert row.result == "bounce" and row.case == case
    assert case.events.filter(kind="mail_bounced").exists()
    assert OutboxMessage.objects.count() == 1


def test_a_flood_from_one_sender_is_quarantined_after_the_limit_and_can_be_retried(practice, mail, settings):
    settings.CLOSELOOP_INTAKE_SENDER_LIMIT = 3
    rows = [_in(mail(subject=f"Request number {i}", body=f"Different text {i}")) for i in range(5)]
    assert [r.status for r in rows] == ["processed"] * 3 + ["quarantined"] * 2
    assert "flood" in rows[3].error and read_raw(rows[3].raw_path)
    stored = type(rows[3]).objects.get(pk=rows[3].pk)  # what staff see in the quarantine
    assert (stored.subject, stored.sender) == ("Request number 3", rows[0].sender) and stored.sender
    settings.CLOSELOOP_INTAKE_SENDER_LIMIT = 10
    assert retry(rows[3]).status == "processed"


def test_a_stage_failure_quarantines_with_the_error_and_retry_recovers(practice, mail, settings):
    settings.CLOSELOOP_INTAKE_DEFAULT_TYPE = ""
    row = _in(mail(), team="no-such-team")  # routing to a team that does not exist is fine: falls back
    assert row.status == "processed"
    broken = _in(b"\x00\x01 not a message at all", channel="import")
    assert broken.status == "quarantined" and "not an internet message" in broken.error
    assert InboundMessage.objects.filter(status="quarantined").count() == 1
    assert Document.objects.count() == 0


def test_the_same_requester_on_the_same_subject_threads_into_the_open_case(practice, mail):
    case = _in(mail()).case
    Party.objects.create(email="maria@example.com", name="A second record, made later")
    row = _in(mail(subject="RE: Referral for knee pain", body="Her insurance is Aetna."))
    assert row.result == "threaded" and row.case == case
    other = _in(mail(subject="Refill of my prescription", body="Please refill.")).case
    assert other != case and other.requester == case.requester  # the oldest party with the address


def test_a_new_sender_gets_one_party_and_a_new_case(practice, mail):
    row = _in(mail(sender="new.patient@example.com", subject="Referral for knee pain"))
    assert row.result == "opened"
    assert list(Party.objects.filter(email="new.patient@example.com")) == [row.case.requester]


def test_a_staff_retry_accepts_a_flood_quarantined_message_while_the_flood_window_lasts(practice, mail, settings):
    settings.CLOSELOOP_INTAKE_SENDER_LIMIT = 2
    rows = [_in(mail(subject=f"Referral number {i}", body=f"Patient {i}")) for i in range(3)]
    assert rows[2].status == "quarantined" and "flood" in rows[2].error
    retried = retry(rows[2])  # the limit and the window are unchanged: a person decided to accept it
    assert (retried.status, retried.result) == ("processed", "opened")
    assert _in(mail(subject="Referral number 9", body="Patient 9")).status == "quarantined"  # the guard still holds


def test_the_same_message_id_on_different_content_is_a_new_input_the_same_content_a_duplicate(practice, mail):
    first = _in(mail(subject="Scan one", message_id="<1@scanner.local>"), channel="imap")
    other = _in(mail(subject="Scan two", body="Another patient", message_id="<1@scanner.local>"), channel="imap")
    assert (other.status, other.result) == ("processed", "opened") and other.case != first.case
    again = _in(mail(subject="Scan one", message_id="<1@scanner.local>"), channel="smtp")  # the first, via SMTP too
    assert (again.status, again.result, again.case) == ("duplicate", "same_message_id", first.case)


def test_a_sender_that_is_not_a_mail_address_gets_no_acknowledgement_and_staff_see_why(practice, mail):
    row = _in(mail(sender="maria"))  # From: Maria Gonzalez <maria>: our smarthost would deliver it locally
    assert row.result == "opened" and not OutboxMessage.objects.exists()
    [event] = row.case.events.filter(kind="ack_not_sent")
    assert "maria" in event.data["reason"]


FAX_ID = "<1001@fax-gateway.lakeside.local>"  # a gateway's counter: anyone can guess the next one


def test_a_stranger_replying_to_a_message_we_received_opens_a_new_linked_case(practice, mail):
    case = _in(mail(sender="fax@gateway.example", message_id=FAX_ID, subject="Fax from 555-0100")).case
    row = _in(mail(sender="mallory@evil.example", subject="Re: Fax from 555-0100", body="Add this to her chart.",
                   headers={"In-Reply-To": FAX_ID, "References": FAX_ID}))
    assert row.result == "opened" and row.case != case
    assert not Message.objects.filter(case=case, sender="mallory@evil.example").exists()
    linked = row.case.events.get(kind="linked_case")  # staff see which case it claimed to belong to, and why
    assert linked.data["case"] == case.pk and "replies to a message" in linked.data["reason"]
    assert case.events.filter(kind="referenced_by_other_sender", data__case=row.case.pk).exists()


def test_the_requester_replying_to_their_own_message_threads(practice, mail):
    case = _in(mail(message_id="<first@example.com>")).case
    row = _in(mail(subject="Re: her insurance", body="Aetna.", headers={"In-Reply-To": "<first@example.com>"}))
    assert row.result == "threaded" and row.case == case


def test_staff_replying_to_a_message_we_received_threads(practice, mail):
    case = _in(mail(sender="fax@gateway.example", message_id=FAX_ID, subject="Fax from 555-0100")).case
    staff = practice.coordinator.user.email
    row = _in(mail(sender=staff.upper(), subject="Re: Fax from 555-0100", body="Page 2 attached.",
                   headers={"References": FAX_ID}))
    assert row.result == "threaded" and row.case == case


def test_anyone_replying_to_a_message_we_sent_threads(practice, mail):
    case = _in(mail()).case
    ack = OutboxMessage.objects.get(case=case)  # our Message-IDs carry an unguessable token
    row = _in(mail(sender="daughter@example.net", subject="Re: anything", body="I am her daughter; she is away.",
                   headers={"In-Reply-To": ack.message_id}))
    assert row.result == "threaded" and row.case == case
