"""Benchmark the analytics dashboard on a fabricated history.

    .venv/bin/python bench/analytics.py [--cases N] [--events M] [--db sqlite|postgres|both] [--repeat R] [--json]

Defaults (5,000 cases, 100,000 events) run in about a minute on two cores; the issue's
target is `--cases 50000 --events 1000000`. History is written with bulk_create (it is
fabricated, not lived) spread over a year, then the ledger is built in one pass
(`ledger.rebuild_all`, timed). Each database runs in its own child process. Every page and
figure is timed `--repeat` times; the table shows p50 and p95 in seconds.
Baselines, run in the same process: time held per party computed as session 1 did it (a
`Lead` window over the events, then the calendar walked per interval in Python), and the
per-case Python rows of session 2 (`case_rows` + `attach_ledger` + the owner chains), each
against the facts columns (`columns.load`, one row per case kept at write time); the ratios
say what materialising saves. The write cost is measured with ledger and facts, ledger only,
and no receiver.
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


def child(db: str, cases: int, events: int, repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from closeloop.testing.benchdb import bench_database

    with bench_database(db):
        return _measure(cases, events, repeat)


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


def _percentiles(fn: Any, repeat: int) -> dict[str, float]:
    """p50/p95 of `fn()` in seconds; `fn` may be (setup, fn), setup run once, untimed."""
    if isinstance(fn, tuple):
        setup, fn = fn
        setup()
    times = sorted(_timed(fn)[0] for _ in range(repeat))
    from closeloop.analytics.stats import percentile

    return {"p50": round(percentile(times, 0.5) or 0.0, 3), "p95": round(percentile(times, 0.95) or 0.0, 3)}


def _baseline_held(scope: Any) -> dict[str, float]:
    """Session 1's way: Lead window over events, the calendar walked per interval in Python."""
    from closeloop.analytics.data import spans
    from closeloop.followups.calendar import calendar_for_team

    held: dict[str, float] = {}
    for span in spans(scope.cases(), scope.now):
        seconds = calendar_for_team(span.team_id).seconds_between(span.start, span.end)
        held[span.party] = held.get(span.party, 0.0) + seconds
    return held


def _figures(scope: Any) -> dict[str, Any]:
    from closeloop.analytics import columns, current, figures, load
    from closeloop.analytics.clock import Clock

    clock, labels = Clock(), figures.Labels.load()
    every = columns.load(scope.cases(), scope.now, clock)
    rows = every.kept()
    return {
        "facts columns (columns.load)": lambda: columns.load(scope.cases(), scope.now, Clock()),
        "latency tables x5": lambda: [figures.latency_table(n, t, rows, labels) for n, t in figures.DIMENSIONS],
        "held + dwell tables": lambda: (figures.held_table(rows), figures.dwell_table(rows)),
        "handoffs": lambda: figures.handoff_table(every),
        "sla": lambda: figures.sla_table(rows, labels),
        "holding now": lambda: figures.holding_table(current.open_cases(scope), labels, scope.now, Clock()),
        "stalls": lambda: figures.stall_table(scope, labels, Clock()),
        "missed": lambda: figures.missed_table(scope, labels),
        "drowning (flow, backlog, forecast, workload)": lambda: load.drowning(scope),
    }


def _per_case_rows(scope: Any) -> None:
    """Session 2's path: a Python row per case (milestones, then held and dwell summed per case)."""
    from closeloop.analytics.clock import Clock
    from closeloop.analytics.data import attach_ledger, case_rows, ownership_changes

    clock = Clock()
    rows = [r for r in case_rows(scope.cases(), clock) if not r.merged]
    attach_ledger(rows, scope.cases(), scope.now, clock)
    ownership_changes(scope.cases())


def _write_overhead(events: int = 300) -> dict[str, float]:
    """Milliseconds per event appended through record_event: with the ledger and facts, with the
    ledger only (facts step skipped), and with no receiver at all."""
    from django.db.models.signals import post_save

    from closeloop.analytics import ledger
    from closeloop.cases import actions
    from closeloop.cases.models import Case, Event

    cases = list(Case.objects.exclude(stage="closed").order_by("-id")[:events])
    system = actions.Actor.system("bench")

    def write(some: list[Case] = cases) -> float:
        return _timed(lambda: [actions.record_event(c, system, "bench_note") for c in some])[0]

    write(cases[:30])  # warm up: the first events load the calendars, request types and prepared plans
    with_facts = write()
    step = ledger.step_facts
    ledger.step_facts = lambda *_: True  # type: ignore[assignment]
    try:
        ledger_only = write()
    finally:
        ledger.step_facts = step
    post_save.disconnect(ledger.on_event_saved, sender=Event, dispatch_uid="analytics-ledger")
    try:
        without = write()
    finally:
        post_save.connect(ledger.on_event_saved, sender=Event, dispatch_uid="analytics-ledger")
    n = max(1, len(cases))
    return {"ledger + facts ms": round(1000 * with_facts / n, 2), "ledger only ms": round(1000 * ledger_only / n, 2),
            "no receiver ms": round(1000 * without / n, 2)}


def _measure(cases: int, events: int, repeat: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings")
    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from closeloop.analytics.data import Scope
    from closeloop.analytics.figures import report
    from closeloop.analytics.ledger import rebuild_all
    from closeloop.analytics.metrics import exposition
    from closeloop.cases.demo import seed
    from closeloop.cases.models import Event, Staff

    seed(cases=0)
    fabricate, _ = _timed(lambda: _fabricate(cases, events))
    rebuild, _ = _timed(rebuild_all)
    supervisor = Staff.objects.get(user__username="supervisor")
    now = timezone.now()
    month = Scope.last_days(supervisor, now, 28)
    client = Client(SERVER_NAME="localhost")
    client.force_login(supervisor.user)

    def page(url: str) -> Any:
        def get() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        return get

    out: dict[str, Any] = {"cases": cases, "events": Event.objects.count(), "cases_28d": month.cases().count(),
                           "fabricate_s": round(fabricate, 1), "ledger_rebuild_s": round(rebuild, 1)}
    def cold(fn: Any) -> Any:
        def run() -> None:
            cache.clear()
            fn()
        return run

    def warm(fn: Any, *first: Any) -> Any:
        def setup() -> None:  # fills the cache the timed calls read
            for f in (*first, fn):
                f()
        return setup, fn

    month_page, year_page = page("/analytics/?days=28"), page("/analytics/?days=365")
    drill, csv = page("/analytics/cases/latency_type/referral/?days=28"), page("/analytics/tables/held.csv?days=28")
    pages = {
        "page /analytics/?days=28, computed": cold(month_page),
        "page /analytics/?days=28, cached report": warm(month_page),
        "page /analytics/?days=365, computed": cold(year_page),
        "page /analytics/?days=365, cached report": warm(year_page),
        "page drill latency_type/referral, computed": cold(drill),
        "page drill, after the dashboard": warm(drill, month_page),
        "page csv held, computed": cold(csv),
        "page csv held, after the dashboard": warm(csv, month_page),
        "page /analytics/metrics": page("/analytics/metrics"),
        "report() 28d": lambda: report(month),
        "report() 365d": lambda: report(Scope.last_days(supervisor, now, 365)),
        "metrics exposition": lambda: exposition(now),
    }
    pages.update({f"{name}, computed": cold(fn) for name, fn in _api_pages(client).items()})
    out["pages"] = {name: _percentiles(fn, repeat) for name, fn in pages.items()}
    out["figures_28d"] = {name: _percentiles(fn, repeat) for name, fn in _figures(month).items()}
    from closeloop.analytics import columns
    from closeloop.analytics.clock import Clock

    year = Scope.last_days(supervisor, now, 365)
    baseline = _percentiles(lambda: _baseline_held(month), repeat)["p50"]
    facts_28 = _percentiles(lambda: columns.load(month.cases(), now, Clock()), repeat)["p50"]
    rows_365 = _percentiles(lambda: _per_case_rows(year), repeat)["p50"]
    facts_365 = _percentiles(lambda: columns.load(year.cases(), now, Clock()), repeat)["p50"]
    out["baseline"] = {"held, Lead window + calendar per interval, 28d p50 s": baseline,
                       "held+dwell+milestones, facts columns, 28d p50 s": facts_28,
                       "ratio (Lead window / facts)": round(baseline / facts_28, 1) if facts_28 else None,
                       "per-case rows (session 2 path), 365d p50 s": rows_365,
                       "facts columns, 365d p50 s": facts_365,
                       "ratio (per-case rows / facts)": round(rows_365 / facts_365, 1) if facts_365 else None}
    out["write"] = _write_overhead()
    return out


def _api_pages(client: Any) -> dict[str, Any]:
    urls = {"api summary": "/api/analytics/summary?days=28", "api latency by type": "/api/analytics/latency?by=type",
            "api summary 365d": "/api/analytics/summary?days=365",
            "api latency by type 365d": "/api/analytics/latency?by=type&days=365",
            "api stalls": "/api/analytics/stalls"}

    def get(url: str) -> Any:
        def run() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
        return run

    from closeloop.analytics import api

    return {name: get(url) for name, url in urls.items()} if hasattr(api, "summary") else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cases, args.events, args.repeat)))
        return
    results = {}
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        proc = subprocess.run([sys.executable, __file__, "--child", db, "--cases", str(args.cases),
                               "--events", str(args.events), "--repeat", str(args.repeat)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{db} run failed:\n{proc.stderr[-3000:]}")
        results[db] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(results, indent=2))
        return
    _print(results)


def _print(results: dict[str, Any]) -> None:
    dbs = list(results)
    first = results[dbs[0]]
    print(f"{'':48}" + "".join(f"{db:>22}" for db in dbs))
    for key in ("cases", "events", "cases_28d", "fabricate_s", "ledger_rebuild_s"):
        print(f"{key:48}" + "".join(f"{results[db][key]!s:>22}" for db in dbs))
    for section in ("pages", "figures_28d"):
        print(f"\n{section + ' (p50 / p95 s)':48}")
        for name in first[section]:
            print(f"  {name:46}" + "".join(
                f"{results[db][section][name]['p50']:>11.3f} /{results[db][section][name]['p95']:>8.3f}" for db in dbs))
    for section in ("baseline", "write"):
        print(f"\n{section}")
        for name in first[section]:
            print(f"  {name:46}" + "".join(f"{results[db][section][name]!s:>22}" for db in dbs))


if __name__ == "__main__":
    main()
