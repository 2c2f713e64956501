from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.models import Message
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import Outgoing, deliver_due, enqueue, enqueue_many

pytestmark = pytest.mark.django_db


def test_it_sends_queued_mail_through_a_real_smtp_server_with_threading_headers(case, smtp_server):
    actions.request_missing_info(case, actions.Actor.system())
    assert deliver_due() == 1
    [received] = smtp_server.to("maria@example.com")
    row = OutboxMessage.objects.get()
    assert received.message["Message-ID"].strip() == row.message_id and row.status == "sent"
    assert case.reference in received.message["Subject"]
    assert Message.objects.get(message_id=row.message_id).status == "sent"
    assert deliver_due() == 0


def test_a_batch_queues_each_new_key_once_and_skips_keys_already_queued(case, smtp_server):
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b", key="k1")
    items = [Outgoing(case=case, purpose="chase", to=["maria@example.com"], subject=f"s{key}", body="b", key=key)
             for key in ("k1", "k2", "k3", "k2")]
    rows = enqueue_many(items)
    assert [(row.idempotency_key, row.subject) for row in rows] == [("k2", "sk2"), ("k3", "sk3")]
    queued = OutboxMessage.objects.in_bulk([row.pk for row in rows])
    assert {r.idempotency_key for r in queued.values()} == {"k2", "k3"}
    assert OutboxMessage.objects.filter(purpose="chase").count() == 3
    assert Message.objects.filter(case=case, purpose="chase").count() == 3  # one per queued row, k1's included
    assert queued[rows[0].pk].to == ["maria@example.com"] and queued[rows[0].pk].headers == {}
    assert enqueue_many(items) == []
    assert deliver_due() == 3 and len(smtp_server.to("maria@example.com")) == 3


def test_the_same_idempotency_key_queues_one_message(case):
    rows = [enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b", sequence=1)
            for _ in range(3)]
    assert OutboxMessage.objects.filter(purpose="chase").count() == 1
    assert {row.pk for row in rows} == {OutboxMessage.objects.get(purpose="chase").pk}  # the queued row each time
    assert Message.objects.filter(case=case, purpose="chase").count() == 1


def test_a_temporary_refusal_is_retried_with_backoff_and_then_sent(case, smtp_server):
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    smtp_server.handler.refuse_with = "451 4.3.0 try again later"
    assert deliver_due() == 0
    row = OutboxMessage.objects.get()
    assert row.status == "pending" and row.attempts == 1 and row.due_at > timezone.now() + timedelta(seconds=20)
    smtp_server.handler.refuse_with = None
    assert deliver_due(now=row.due_at + timedelta(seconds=1)) == 1
    assert len(smtp_server.messages) == 1


def test_a_permanent_refusal_fails_visibly_on_the_case(case, smtp_server):
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    smtp_server.handler.refuse_with = "550 5.1.1 no such user"
    deliver_due()
    assert OutboxMessage.objects.get().status == "failed"
    assert case.events.filter(kind="mail_failed").exists()


def test_an_unreachable_server_keeps_the_message_for_later(case, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_PORT = 1  # nothing listens there
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    assert deliver_due() == 0
    row = OutboxMessage.objects.get()
    assert row.status == "pending" and "Error" in row.last_error


def test_a_claim_abandoned_by_a_dead_worker_is_taken_over(case, smtp_server):
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    OutboxMessage.objects.update(status="sending", claimed_until=timezone.now() - timedelta(seconds=1))
    assert deliver_due() == 1
    assert smtp_server.messages[0].message["Message-ID"].strip() == OutboxMessage.objects.get().message_id


def test_the_demo_mail_sink_keeps_sent_mail_as_files(case, settings, tmp_path):
    import threading

    from closeloop.outbound import devsink
    from closeloop.testing.postgres import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.DATA_DIR = "127.0.0.1", free_port(), tmp_path
    stop = threading.Event()
    thread = threading.Thread(target=devsink.serve, args=(stop,))
    thread.start()
    try:
        for _ in range(50):
            if (tmp_path / "sent-mail").exists():
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.2)
        actions.request_missing_info(case, actions.Actor.system())
        assert deliver_due() == 1
    finally:
        stop.set()
        thread.join()
    [kept] = list((tmp_path / "sent-mail").glob("*.eml"))
    assert case.reference.encode() in kept.read_bytes()


def test_times_in_messages_read_in_the_teams_own_zone(case, settings):
    """The acknowledgement promises an answer by a time: the requester reads it on the office's clock
    (New York), with the zone named, not in the server's display zone."""
    from datetime import UTC, datetime

    from closeloop.followups.models import BusinessCalendar, TeamCalendar
    from closeloop.outbound.templates import render

    settings.TIME_ZONE = "UTC"
    calendar = BusinessCalendar.objects.create(name="Lakeside", time_zone="America/New_York")
    TeamCalendar.objects.create(team=case.team, calendar=calendar)
    _, body = render(case, "ack", {"next_step": "we route it", "expected": datetime(2026, 11, 24, 19, 0, tzinfo=UTC)})
    assert "Tuesday 24 November, 14:00 EST" in body
    case.team = None
    _, unzoned = render(case, "ack", {"next_step": "x", "expected": datetime(2026, 11, 24, 19, 0, tzinfo=UTC)})
    assert "Tuesday 24 November, 19:00 UTC" in unzoned  # no team, no calendar: the display zone


@pytest.mark.parametrize("bad", ["a@example.com, victim@other.example", "a@example.com\r\nBcc: victim@other.example"])
def test_an_address_smtp_cannot_take_fails_that_message_visibly_and_the_rest_still_go(case, smtp_server, bad):
    enqueue(case=case, purpose="ack", to=[bad], subject="s", body="b")
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    assert deliver_due() == 1  # before: Django's ValueError escaped and ended the whole run
    assert smtp_server.to("maria@example.com") and len(smtp_server.messages) == 1
    failed = OutboxMessage.objects.get(purpose="ack")
    assert failed.status == "failed" and "Invalid address" in failed.last_error
    assert case.events.filter(kind="mail_failed").exists()


def test_a_recipient_refused_for_now_at_rcpt_is_retried_not_failed(case, smtp_server):
    """Greylisting refuses the recipient with a 4xx at RCPT TO; the message must be retried, as a 4xx
    at DATA is, and arrive once the server takes it (before: failed for good, 'recipients refused')."""
    greylist = ["maria@example.com"]

    async def greylisting(server, session, envelope, address, rcpt_options):
        if address in greylist:
            return "450 4.2.0 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handler.handle_RCPT = greylisting
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    assert deliver_due() == 0
    row = OutboxMessage.objects.get()
    assert row.status == "pending" and "450" in row.last_error
    assert not case.events.filter(kind="mail_failed").exists()
    greylist.clear()
    assert deliver_due(now=row.due_at + timedelta(seconds=1)) == 1
    assert [str(m.message["Message-ID"]).strip() for m in smtp_server.to("maria@example.com")] == [row.message_id]


def test_a_recipient_refused_for_good_at_rcpt_still_fails_at_once(case, smtp_server):
    async def no_such_user(server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such user"

    smtp_server.handler.handle_RCPT = no_such_user
    enqueue(case=case, purpose="chase", to=["maria@example.com"], subject="s", body="b")
    assert deliver_due() == 0
    assert OutboxMessage.objects.get().status == "failed"
    assert case.events.filter(kind="mail_failed").exists()
