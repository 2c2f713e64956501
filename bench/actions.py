"""Benchmark the case engine: cases opened+assigned+closed per second and events per second.

    .venv/bin/python bench/actions.py [--cases N] [--db sqlite|postgres|both] [--json]

Each database runs in its own child process. The baseline, run in the same process, is the
same rows written with plain ORM creates (no transition checks, no invariant, no conditional
update): the ratio says what the guarantees of actions.py cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(db: str, cases: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from closeloop.testing.benchdb import bench_database

    with bench_database(db):
        return _measure(cases)


def _measure(cases: int) -> dict[str, float]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings")
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from closeloop.cases import actions
    from closeloop.cases.demo import seed
    from closeloop.cases.models import Case, Event, Party, RequestType, Staff

    seed(cases=0)
    rt = RequestType.objects.select_related("routing_team").get(slug="appointment")
    owner = Staff.objects.get(user__username="coordinator")
    requester = Party.objects.create(name="Bench", email="bench@example.com")
    actor = actions.Actor.of(owner)

    events_before = Event.objects.count()
    start = time.perf_counter()
    for i in range(cases):
        case = actions.open_case(actor=actions.Actor.system(), subject=f"bench {i}", request_type=rt,
                                 requester=requester)
        actions.assign(case, actor, owner=owner)
        actions.close(case, actor, outcome="done", notify=False)
    engine_seconds = time.perf_counter() - start
    events = Event.objects.count() - events_before

    start = time.perf_counter()
    for i in range(cases):
        now = timezone.now()
        case = Case.objects.create(subject=f"baseline {i}", request_type=rt, requester=requester,
                                   team=rt.routing_team, stage="in_progress", next_due_at=now)
        Event.objects.create(case=case, actor_kind="system", kind="opened", to_stage="in_progress")
        Case.objects.filter(pk=case.pk).update(owner=owner)
        Event.objects.create(case=case, actor_kind="staff", kind="assigned", to_stage="in_progress")
        Case.objects.filter(pk=case.pk).update(stage="closed", next_due_at=None)
        Event.objects.create(case=case, actor_kind="staff", kind="closed", to_stage="closed")
    baseline_seconds = time.perf_counter() - start
    return {
        "cases": cases,
        "cases_per_s": cases / engine_seconds,
        "events_per_s": events / engine_seconds,
        "baseline_cases_per_s": cases / baseline_seconds,
        "ratio_vs_baseline": (cases / engine_seconds) / (cases / baseline_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cases)))
        return
    results = {}
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        out = subprocess.run([sys.executable, __file__, "--child", db, "--cases", str(args.cases)],
                             check=True, capture_output=True, text=True, cwd=ROOT)
        results[db] = json.loads(out.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'database':<10} {'cases':>6} {'cases/s':>9} {'events/s':>9} {'baseline cases/s':>17} {'ratio':>6}")
    for db, r in results.items():
        print(f"{db:<10} {r['cases']:>6} {r['cases_per_s']:>9.1f} {r['events_per_s']:>9.1f} "
              f"{r['baseline_cases_per_s']:>17.1f} {r['ratio_vs_baseline']:>6.2f}")


if __name__ == "__main__":
    main()
