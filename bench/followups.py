"""Follow-up worker benchmark.

    python bench/followups.py [--cases N] [--due-fraction F] [--workers W] [--db sqlite|postgres]
                              [--kill-every S] [--spread S] [--json]

Fills N open cases waiting on requesters (bulk insert), makes a fraction due, runs W worker
processes (`python -m closeloop.followups.loop`) against a real SMTP server (aiosmtpd), and
prints follow-ups per second, p50/p99 delay between due time and the chase, peak memory per
worker, and performed / expected / lost / duplicated. `--kill-every S` SIGKILLs a random worker
every S seconds and starts a replacement. The baseline row is the same run with one worker.
PostgreSQL runs on a throwaway cluster started here (closeloop.testing.postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(db: str) -> tuple[str, Any]:
    cluster = None
    if db == "postgres":
        from closeloop.testing.postgres import start

        cluster = start()
        url = cluster.url
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='closeloop-bench-')}/bench.sqlite3"
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "closeloop.settings_test",
                       "CLOSELOOP_FOLLOWUP_LEASE_SECONDS": "5"})
    import django

    django.setup()
    return url, cluster


def _fresh_database(db: str, url: str) -> str:
    """A new empty database per run (PostgreSQL: CREATE DATABASE; SQLite: a new file)."""
    from django.core.management import call_command
    from django.db import connection, connections

    if db == "postgres":
        name = f"bench_{int(time.time() * 1000)}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        url = url.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='closeloop-bench-')}/bench.sqlite3"
    import dj_database_url
    from django.conf import settings

    connections.close_all()
    settings.DATABASES["default"].update(dj_database_url.parse(url))
    if db == "sqlite":
        settings.DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20,
                                                    "init_command": "PRAGMA journal_mode=WAL;"}
    call_command("migrate", verbosity=0)
    return url


def _start(url: str, smtp_port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port),
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "closeloop.followups.loop", "--idle-exit", "3", "--batch", "100"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run(db: str, base_url: str, cases: int, fraction: float, workers: int, kill_every: float,
        spread: float) -> dict[str, Any]:
    from django.db.models import Count, Min
    from django.utils import timezone

    from closeloop.cases.demo import seed
    from closeloop.cases.models import Event, RequestType
    from closeloop.followups.fill import fill
    from closeloop.outbound.models import OutboxMessage
    from closeloop.outbound.outbox import CLAIM_SECONDS, deliver_due
    from closeloop.testing.smtp import SMTPServer

    url = _fresh_database(db, base_url)
    seed(cases=0)
    t0 = time.monotonic()
    due = fill(cases, fraction, timezone.now(), request_type=RequestType.objects.get(slug="referral"),
               spread_seconds=spread)
    fill_s = time.monotonic() - t0
    rng, kills, peaks = random.Random(3), 0, []
    with SMTPServer() as smtp:
        start = time.monotonic()
        procs = [_start(url, smtp.port) for _ in range(workers)]
        next_kill = start + kill_every if kill_every else float("inf")
        while any(p.poll() is None for p in procs):
            if time.monotonic() >= next_kill:
                victim = rng.choice([p for p in procs if p.poll() is None])
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                procs.remove(victim)
                procs.append(_start(url, smtp.port))
                next_kill += kill_every
            time.sleep(0.05)
        for p in procs:
            out = (p.stdout.read() if p.stdout else "").strip()
            if out:
                peaks.append(json.loads(out.splitlines()[-1])["peak_rss_mib"])
        elapsed = time.monotonic() - start - 3.0  # minus the idle wait before the last exit
        if kills:  # claims held by killed workers: what a surviving worker does when they expire
            while deliver_due(500, now=timezone.now() + timedelta(seconds=CLAIM_SECONDS + 5)):
                pass
        received = Counter(str(m.message["Message-ID"]).strip() for m in smtp.messages)
    chased = dict(Event.objects.filter(kind="requester_chased").values_list("case_id")
                  .annotate(n=Count("id"), at=Min("at")).values_list("case_id", "at"))
    counts = Counter(Event.objects.filter(kind="requester_chased").values_list("case_id", flat=True))
    delays = sorted(max(0.0, (chased[pk] - at).total_seconds()) for pk, at in due.items() if pk in chased)
    chase_ids = set(OutboxMessage.objects.filter(purpose="chase").values_list("message_id", flat=True))
    return {
        "db": db, "cases": cases, "workers": workers, "kills": kills, "fill_s": round(fill_s, 1),
        "expected": len(due), "performed": len(chased), "lost": len(set(due) - set(chased)),
        "duplicated": sum(n - 1 for n in counts.values()),
        "duplicate_sends": sum(n - 1 for mid, n in received.items() if mid in chase_ids),
        "mail_received": sum(n for mid, n in received.items() if mid in chase_ids),
        "followups_per_s": round(len(chased) / max(elapsed, 1e-6), 1),
        "per_worker_per_s": round(len(chased) / max(elapsed, 1e-6) / workers, 1),
        "p50_delay_s": round(statistics.median(delays), 2) if delays else None,
        "p99_delay_s": round(delays[int(len(delays) * 0.99) - 1], 2) if delays else None,
        "peak_rss_mib_per_worker": max(peaks) if peaks else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--due-fraction", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL a worker every S seconds")
    parser.add_argument("--spread", type=float, default=0.0, help="due times spread over S seconds (0: backlog)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.db == "sqlite" and args.workers > 1:
        print("note: SQLite serialises writers; use --db postgres to measure scaling", file=sys.stderr)
    url, cluster = _setup(args.db)
    try:
        rows = [run(args.db, url, args.cases, args.due_fraction, 1, 0.0, args.spread)]
        if args.workers != 1 or args.kill_every:
            rows.append(run(args.db, url, args.cases, args.due_fraction, args.workers, args.kill_every, args.spread))
    finally:
        if cluster is not None:
            cluster.stop()
    base = rows[0]["followups_per_s"] or 1
    for row in rows:
        row["speedup_vs_1_worker"] = round(row["followups_per_s"] / base, 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    keys = list(rows[0])
    print("  ".join(f"{k:>14}" for k in ["metric", *(f"run {i + 1}" for i in range(len(rows)))]))
    for key in keys:
        print("  ".join(f"{str(v):>14}" for v in [key, *(r.get(key) for r in rows)]))
    return 0 if all(r["lost"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
