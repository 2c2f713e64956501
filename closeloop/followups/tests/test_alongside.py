"""The worker loop runs the outbox beside the chasers on PostgreSQL (`CLOSELOOP_WORKER_ALONGSIDE`)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from closeloop.cases.models import Event
from closeloop.followups.fill import fill
from closeloop.outbound.models import OutboxMessage
from closeloop.worker import run_once, stop_helper


def _alongside_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("worker-alongside"))


@pytest.mark.postgres_only
def test_on_postgres_delivery_runs_in_a_helper_thread_and_every_chase_is_sent_once(transactional_db, practice,
                                                                                  smtp_server):
    due = fill(30, 1.0, timezone.now() - timedelta(minutes=1), request_type=practice.types["referral"])
    try:
        while run_once(100):
            pass
        assert _alongside_threads() == 1  # one long-lived thread, its connection kept between rounds
    finally:
        stop_helper()
    assert _alongside_threads() == 0
    assert Event.objects.filter(kind="requester_chased").count() == len(due)
    assert set(OutboxMessage.objects.filter(purpose="chase").values_list("status", flat=True)) == {"sent"}
    assert len(smtp_server.messages) == len(due)


def test_inside_a_transaction_every_job_runs_in_this_thread(db, practice, smtp_server, settings):
    settings.CLOSELOOP_WORKER_ALONGSIDE = frozenset({"closeloop.outbound.outbox.deliver_due"})
    due = fill(5, 1.0, timezone.now() - timedelta(minutes=1), request_type=practice.types["referral"])
    run_once(100)
    run_once(100)
    # only this thread's connection sees the test's uncommitted chases, so they were delivered from here
    assert len(smtp_server.messages) == len(due)
    assert _alongside_threads() == 0


@pytest.mark.postgres_only
def test_chasers_do_not_wait_for_a_slow_mail_server(transactional_db, practice, smtp_server, settings):
    """A round that found chasers ends without waiting for the helper's delivery; the helper starts
    its next round once the last is done, and an idle round waits for it, so nothing is left unsent."""
    import asyncio

    settings.CLOSELOOP_OUTBOX_CONNECTIONS = 1
    record = smtp_server.handler.handle_DATA

    async def slow(server, session, envelope):  # a mail server that takes a second per message
        await asyncio.sleep(1.0)
        return await record(server, session, envelope)

    smtp_server.handler.handle_DATA = slow
    due = fill(30, 1.0, timezone.now() - timedelta(minutes=1), request_type=practice.types["referral"])
    try:
        for _ in range(3):  # each round chases 10; the first round's 10 are being delivered meanwhile
            assert run_once(10) >= 10
        assert Event.objects.filter(kind="requester_chased").count() == len(due)
        # waiting on delivery would have sent 20 by now (the mail of rounds 1 and 2)
        assert OutboxMessage.objects.filter(purpose="chase", status="sent").count() < 20
        while run_once(10):
            pass
    finally:
        stop_helper()
    assert set(OutboxMessage.objects.filter(purpose="chase").values_list("status", flat=True)) == {"sent"}
    assert len(smtp_server.messages) == len(due)
