"""Our own SMTP server down for hours: nothing is lost, nothing goes twice, staff see it and can retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import AuditEntry, Message
from closeloop.cases.tokens import create_token
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import deliver_due, enqueue
from closeloop.testing.postgres import free_port

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def server(smtp_server, settings):
    """The test SMTP server, and a switch that takes it away (nothing listens on the port) and back."""
    port = smtp_server.port

    def up(on: bool) -> None:
        settings.EMAIL_PORT = port if on else free_port()

    smtp_server.up = up
    return smtp_server


def deliver_at(at: datetime) -> int:
    with time_machine.travel(at, tick=False):
        return deliver_due(now=at)


def ids(server, address="maria@example.com") -> list[str]:
    return [str(m.message["Message-ID"]).strip() for m in server.to(address)]


def asked_for_information(case):
    with time_machine.travel(T0, tick=False):
        actions.request_missing_info(case, actions.Actor.system(), now=T0)
    return OutboxMessage.objects.get(case=case, purpose="missing_info")


def test_an_outage_of_hours_is_retried_with_capped_backoff_and_the_message_goes_once_with_its_id(case, server):
    """Before: eight attempts over about an hour, then failed for good and never sent."""
    server.up(False)
    row = asked_for_information(case)
    at = T0
    while at < T0 + timedelta(hours=6):
        deliver_at(at)
        at += timedelta(minutes=5)
    stuck = OutboxMessage.objects.get(pk=row.pk)
    assert stuck.status == "pending" and stuck.failing_since == T0 and stuck.attempts > 8
    assert stuck.due_at - stuck.failing_since < timedelta(hours=6, minutes=16)  # at most 15 minutes apart
    assert not case.events.filter(kind="mail_failed").exists()
    [delayed] = case.events.filter(kind="mail_delayed")  # staff see it, once, after an hour
    assert delayed.at >= T0 + timedelta(hours=1) and "keeps trying" in delayed.data["message"]
    server.up(True)
    assert deliver_at(stuck.due_at) == 1
    assert ids(server) == [row.message_id]
    sent = OutboxMessage.objects.get(pk=row.pk)
    assert sent.status == "sent" and sent.idempotency_key == row.idempotency_key
    assert Message.objects.get(message_id=row.message_id).status == "sent"
    assert deliver_at(stuck.due_at + timedelta(hours=1)) == 0 and ids(server) == [row.message_id]


def test_mail_that_failed_while_our_server_was_down_goes_when_it_answers_again(case, server, settings):
    settings.CLOSELOOP_OUTBOX_RETRY_HOURS = 1
    server.up(False)
    row = asked_for_information(case)
    other = enqueue(case=case, purpose="note", to=["maria@example.com"], subject="s", body="b", now=T0)
    at = T0
    while OutboxMessage.objects.filter(status="pending").exists():
        deliver_at(at)
        at += timedelta(minutes=15)
    assert set(OutboxMessage.objects.values_list("status", "failure")) == {("failed", "unreachable")}
    failed = case.events.filter(kind="mail_failed")
    assert failed.count() == 2 and all(e.data["requeue"] for e in failed)
    case.refresh_from_db()
    assert case.stage == "awaiting_info"  # our server's fault, not the requester's address: no hand-back
    deliver_at(at)  # idle, still down: one probe, back to failed quietly
    deliver_at(at + timedelta(seconds=1))
    assert case.events.filter(kind="mail_failed").count() == 2 and not ids(server)
    assert deliver_at(at + timedelta(minutes=5)) == 0  # no second probe within the backoff cap
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"failed"}
    server.up(True)
    later = at + timedelta(minutes=16)
    deliver_at(later)  # idle: probes the oldest
    assert deliver_at(later) == 1  # it goes; the rest is queued again
    assert deliver_at(later) == 1
    assert sorted(ids(server)) == sorted([row.message_id, other.message_id])
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert case.events.filter(kind="mail_requeued").count() == 1


def call(staff, method: str, path: str):
    token = create_token(staff, "test")
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        return getattr(Client(), method)(f"/api/followups{path}", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_staff_who_work_the_case_may_send_a_failed_message_again_with_its_same_id(case, server, practice):
    server.handler.refuse_with = "550 5.1.1 mailbox unavailable"
    row = asked_for_information(case)
    deliver_at(T0)
    assert OutboxMessage.objects.get(pk=row.pk).status == "failed"
    listed = call(practice.coordinator, "get", f"/mail/failed?case={case.reference}")
    assert listed.status_code == 200 and [m["id"] for m in listed.json()] == [row.pk]
    assert listed.json()[0]["failure"] == "refused"
    assert call(practice.specialist, "post", f"/mail/{row.pk}/retry").status_code == 403  # may not work cases
    billing_only = practice.staff["riley"]
    if not billing_only.teams.filter(pk=case.team_id).exists():
        assert call(billing_only, "post", f"/mail/{row.pk}/retry").status_code == 404  # cannot see the case
    server.handler.refuse_with = None
    answer = call(practice.coordinator, "post", f"/mail/{row.pk}/retry")
    assert answer.status_code == 200 and answer.json()["status"] == "pending"
    assert call(practice.coordinator, "post", f"/mail/{row.pk}/retry").status_code == 409  # not failed now
    assert deliver_at(T0 + timedelta(minutes=1)) == 1
    assert ids(server) == [row.message_id]
    retried = case.events.get(kind="mail_retried")
    assert retried.actor_staff == practice.coordinator and retried.data["outbox"] == row.pk
    assert AuditEntry.objects.filter(action="mail_retry", case=case, user=practice.coordinator.user).exists()
    assert json.loads(json.dumps(answer.json()))["message_id"] == row.message_id
