"""Delivery over several SMTP connections at once, with sent rows recorded in bounded groups."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from closeloop.cases.models import Message
from closeloop.outbound import outbox
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import CLAIM_SECONDS, deliver_due, enqueue, max_unrecorded

pytestmark = pytest.mark.django_db


def queue_mail(case, count: int, *, bad: int | None = None) -> list[OutboxMessage]:
    return [enqueue(case=case, purpose="chase", sequence=i, subject=f"s{i}", body="b",
                    to=["nobody@example.com" if i == bad else f"r{i}@example.com"]) for i in range(count)]


def received_ids(smtp_server) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]).strip() for m in smtp_server.messages)


def test_it_delivers_over_several_connections_and_sends_each_message_once(case, smtp_server, settings):
    settings.CLOSELOOP_OUTBOX_CONNECTIONS, settings.CLOSELOOP_OUTBOX_MARK_GROUP = 4, 3
    peers: set[object] = set()
    record = smtp_server.handler.handle_DATA

    async def remember_peer(server, session, envelope):
        peers.add(session.peer)
        return await record(server, session, envelope)

    smtp_server.handler.handle_DATA = remember_peer
    rows = queue_mail(case, 30)
    assert deliver_due(100) == 30
    assert received_ids(smtp_server) == Counter({row.message_id: 1 for row in rows})
    assert len(peers) == 4  # four SMTP sessions
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert set(Message.objects.filter(purpose="chase").values_list("status", flat=True)) == {"sent"}
    assert deliver_due(100) == 0


@pytest.mark.parametrize("connections", [1, 3])
def test_a_refused_recipient_inside_a_group_fails_alone_and_shows_on_the_case(case, smtp_server, settings,
                                                                               connections):
    settings.CLOSELOOP_OUTBOX_CONNECTIONS, settings.CLOSELOOP_OUTBOX_MARK_GROUP = connections, 20

    async def refuse_nobody(server, session, envelope, address, rcpt_options):
        if address == "nobody@example.com":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handler.handle_RCPT = refuse_nobody
    rows = queue_mail(case, 9, bad=4)
    assert deliver_due(100) == 8
    status = dict(OutboxMessage.objects.values_list("message_id", "status"))
    assert status.pop(rows[4].message_id) == "failed"
    assert set(status.values()) == {"sent"} and len(smtp_server.messages) == 8
    [failed] = case.events.filter(kind="mail_failed")
    assert failed.data["outbox"] == rows[4].pk and "nobody@example.com" in failed.data["error"]
    assert Message.objects.get(message_id=rows[4].message_id).status == "failed"


@pytest.mark.parametrize("connections", [1, 2])
def test_a_group_that_could_not_be_recorded_is_resent_with_the_same_message_ids_and_nothing_is_lost(
        case, smtp_server, settings, monkeypatch, connections):
    settings.CLOSELOOP_OUTBOX_CONNECTIONS, settings.CLOSELOOP_OUTBOX_MARK_GROUP = connections, 3
    settings.CLOSELOOP_OUTBOX_MARK_MS = 60_000  # groups close by size only
    real_mark, calls = outbox._mark_sent, []

    def database_gone_on_second_group(rows, now):
        calls.append(len(rows))
        if len(calls) == 2:
            raise ConnectionError("the database went away")
        real_mark(rows, now)

    monkeypatch.setattr(outbox, "_mark_sent", database_gone_on_second_group)
    rows = queue_mail(case, 12)
    with pytest.raises(ConnectionError):
        deliver_due(100)
    assert OutboxMessage.objects.filter(status="sent").count() == 3  # the first group only
    assert OutboxMessage.objects.filter(status="sending").count() == 9  # claimed: nobody else sends them yet
    monkeypatch.setattr(outbox, "_mark_sent", real_mark)

    later = timezone.now() + timedelta(seconds=CLAIM_SECONDS + 1)  # the claim ran out
    deliver_due(100, now=later)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    received = received_ids(smtp_server)
    assert set(received) == {row.message_id for row in rows}  # nothing lost
    twice = sum(n - 1 for n in received.values())
    assert 3 <= twice <= max_unrecorded()  # the unrecorded group (and what was in flight), same Message-IDs
