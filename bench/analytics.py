"""Benchmark the analytics dashboard on a fabricated history.

    .venv/bin/python bench/analytics.py [--cases N] [--events M] [--db sqlite|postgres|both] [--json]

Defaults (5,000 cases, 100,000 events) run in about a minute on two cores; the issue's
target is `--cases 50000 --events 1000000`. History is written with bulk_create (it is
fabricated, not lived), spread over a year. Each database runs in its own child process.
The baseline, run in the same process, is the per-case Python ledger
(`closeloop.cases.ledger.for_case`, one query per case) for the same 28 days of cases
that the window-function query (`analytics.data.spans`) reads in one: the ratio says
what computing the ledger in the database saves.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (kind, to_stage, waiting_on) steps a fabricated case walks through between opening and reply.
DETOURS = [
    [("info_requested", "awaiting_info", "requester"), ("message_received", "in_progress", "owner")],
    [("handed_to_specialist", "awaiting_specialist", "specialist"), ("specialist_answered", "ready_to_reply", "owner")],
    [("waiting", "waiting_external", "external"), ("message_received", "in_progress", "owner")],
    [("assigned", "in_progress", "owner")],
]


def child(db: str, cases: int, events: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from closeloop.testing.benchdb import bench_database

    with bench_database(db):
        return _measure(cases, events)


def _fabricate(cases: int, events: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from closeloop.cases.models import Case, Event, RequestType, Staff

    rng, now = random.Random(1), timezone.now()
    types = list(RequestType.objects.all())
    owners = list(Staff.objects.filter(role="coordinator"))
    per_case = max(4, events // cases)
    for first in range(0, cases, 2000):
        batch, chains = [], []
        for _ in range(min(2000, cases - first)):
            rt, owner = rng.choice(types), rng.choice(owners)
            opened = now - timedelta(days=rng.uniform(0, 365))
            steps = [("opened", "in_progress", "owner", None), ("assigned", "in_progress", "owner", owner)]
            while len(steps) < per_case - 2:
                steps += [(k, s, w, owner) for k, s, w in rng.choice(DETOURS)]
            steps += [("reply_sent", "answered", "requester", owner)]
            closed = rng.random() < 0.85 or opened < now - timedelta(days=30)
            if closed:
                steps.append(("closed", "closed", "none", owner))
            t, times = opened, []
            for _step in steps:
                times.append(t)
                t += timedelta(hours=rng.expovariate(1 / 3))
            last = steps[-1]
            batch.append(Case(request_type=rt, team_id=rt.routing_team_id, owner=owner, stage=last[1],
                              waiting_on=last[2], channel=rng.choice(["email", "api", "webform", "fax"]),
                              opened_at=opened, closed_at=times[-1] if closed else None,
                              first_response_due_at=opened + timedelta(hours=rt.first_response_hours),
                              resolution_due_at=opened + timedelta(hours=rt.resolution_hours),
                              next_due_at=None if closed else times[-1] + timedelta(days=1), subject="bench"))
            chains.append(list(zip(steps, times, strict=True)))
        with transaction.atomic():
            Case.objects.bulk_create(batch)
            rows = []
            for case, chain in zip(batch, chains, strict=True):
                previous = ""
                for (kind, stage, waiting, owner), at in chain:
                    rows.append(Event(case_id=case.pk, at=at, actor_kind="system" if kind == "opened" else "staff",
                                      actor_staff=owner, kind=kind, from_stage=previous, to_stage=stage,
                                      waiting_on=waiting, owner=owner, team_id=case.team_id,
                                      data={"from_owner": None, "to_owner": owner.pk} if kind == "assigned" else {}))
                    previous = stage
            Event.objects.bulk_create(rows, batch_size=5000)


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _measure(cases: int, events: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings")
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from closeloop.analytics.data import Scope, spans
    from closeloop.analytics.figures import report
    from closeloop.analytics.metrics import exposition
    from closeloop.cases import ledger
    from closeloop.cases.demo import seed
    from closeloop.cases.models import Event, Staff

    seed(cases=0)
    fabricate, _ = _timed(lambda: _fabricate(cases, events))
    supervisor = Staff.objects.get(user__username="supervisor")
    now = timezone.now()
    month = Scope.last_days(supervisor, now, 28)
    client = Client(SERVER_NAME="localhost")
    client.force_login(supervisor.user)
    out: dict[str, Any] = {"cases": cases, "events": Event.objects.count(), "fabricate_s": round(fabricate, 1)}
    out["spans_window_28d_s"], window = _timed(lambda: spans(month.cases(), now))
    ids = list(month.cases().values_list("id", flat=True))
    out["spans_python_ledger_28d_s"], _ = _timed(lambda: [ledger.for_case(i, now) for i in ids])
    out["report_28d_s"], _ = _timed(lambda: report(month))
    out["report_365d_s"], _ = _timed(lambda: report(Scope.last_days(supervisor, now, 365)))
    out["dashboard_page_28d_s"], page = _timed(lambda: client.get("/analytics/?days=28"))
    assert page.status_code == 200, page.status_code
    out["metrics_s"], _ = _timed(lambda: exposition(now))
    out["ratio_python_ledger_to_window"] = round(out["spans_python_ledger_28d_s"] / out["spans_window_28d_s"], 1)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cases, args.events)))
        return
    results = {}
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        proc = subprocess.run([sys.executable, __file__, "--child", db, "--cases", str(args.cases),
                               "--events", str(args.events)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{db} run failed:\n{proc.stderr[-3000:]}")
        results[db] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(results, indent=2))
        return
    keys = list(next(iter(results.values())))
    print(f"{'figure':34}" + "".join(f"{db:>12}" for db in results))
    for key in keys:
        print(f"{key:34}" + "".join(f"{results[db][key]!s:>12}" for db in results))


if __name__ == "__main__":
    main()
