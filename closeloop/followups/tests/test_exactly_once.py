"""Exactly-once under crashes: worker processes SIGKILLed mid-run, restarted, and every due
follow-up still happens once (events, outbox, and what the real SMTP server received)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from closeloop.cases.models import Case, Event
from closeloop.followups.fill import fill
from closeloop.followups.worker import run_due
from closeloop.outbound.models import OutboxMessage
from closeloop.outbound.outbox import CLAIM_SECONDS, deliver_due, max_unrecorded

pytestmark = [pytest.mark.heavy]


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(smtp_port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "closeloop.settings_test",
           "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "CLOSELOOP_FOLLOWUP_LEASE_SECONDS": "2",
           "CLOSELOOP_RETRAIN_HOURS": "0"}
    return subprocess.Popen([sys.executable, "-m", "closeloop.followups.loop", "--idle-exit", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run_with_kills(smtp_port: int, workers: int, kills: int, rng: random.Random) -> int:
    """Run `workers` processes; SIGKILL one (and start a replacement) `kills` times; wait for all."""
    running = [start_worker(smtp_port) for _ in range(workers)]
    killed = 0
    while killed < kills:
        time.sleep(rng.uniform(0.8, 1.6))
        victim = rng.choice([p for p in running if p.poll() is None] or running)
        if victim.poll() is not None:
            break
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed += 1
        running.remove(victim)
        running.append(start_worker(smtp_port))
    for proc in running:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode == 0:
            json.loads(out.strip().splitlines()[-1])
    return killed


def sweep() -> None:
    """After the crashes: what a surviving worker would do once leases and claims expire."""
    later = timezone.now() + timedelta(seconds=CLAIM_SECONDS + 10)
    while run_due(500, now=timezone.now() + timedelta(seconds=5)):
        pass
    while deliver_due(500, now=later):
        pass


def check_exactly_once(due_ids: set[int], smtp_server, kills: int) -> int:
    per_case = dict(Event.objects.filter(kind="requester_chased").values_list("case_id")
                    .annotate(n=Count("id")).values_list("case_id", "n"))
    assert set(per_case) == due_ids, "every due case was chased"
    assert set(per_case.values()) == {1}, "and none twice"
    assert set(Case.objects.filter(pk__in=due_ids).values_list("followup_step", flat=True)) == {1}
    outbox = dict(OutboxMessage.objects.filter(purpose="chase").values_list("message_id", "status"))
    assert len(outbox) == len(due_ids) and set(outbox.values()) == {"sent"}
    received = Counter(str(m.message["Message-ID"]).strip() for m in smtp_server.messages
                       if "Reminder" in (m.message["Subject"] or ""))
    assert set(received) == set(outbox), "everything queued arrived, nothing else"
    duplicates = sum(n - 1 for n in received.values())
    # Only a worker killed between the SMTP server's 250 and the outbox update sends twice, with
    # the same Message-ID (grouped above); at most one recording group (and what was in flight) per kill.
    assert duplicates <= kills * max_unrecorded()
    return duplicates


@pytest.mark.parametrize("workers, count, kills", [(3, 3000, 4)])
@pytest.mark.postgres_only
def test_concurrent_workers_killed_mid_run_chase_every_due_case_once_on_postgres(
        transactional_db, practice, smtp_server, workers, count, kills):
    due = fill(count, 0.8, timezone.now() - timedelta(minutes=1), request_type=practice.types["referral"])
    killed = run_with_kills(smtp_server.port, workers, kills, random.Random(5))
    sweep()
    duplicates = check_exactly_once(set(due), smtp_server, killed)
    print(f"due={len(due)} killed={killed} duplicated_sends={duplicates}")


def test_one_worker_killed_and_restarted_chases_every_due_case_once(transactional_db, practice, smtp_server,
                                                                     db_engine):
    if db_engine == "postgres":
        pytest.skip("the PostgreSQL test above runs several workers")
    due = fill(800, 0.75, timezone.now() - timedelta(minutes=1), request_type=practice.types["referral"])
    killed = run_with_kills(smtp_server.port, 1, 3, random.Random(7))
    sweep()
    check_exactly_once(set(due), smtp_server, killed)
