"""Follow-up worker benchmark.

    python bench/followups.py [--cases N] [--due-fraction F] [--workers W[,W…]] [--db sqlite|postgres]
                              [--kill-every S] [--spread S] [--warmup S] [--batch B]
                              [--smtp-delay-ms MS] [--json]

Fills N open cases waiting on requesters (COPY on PostgreSQL, executemany on SQLite; once,
then every run starts from a copy of that database), makes a fraction F due, runs W worker
processes (`python -m closeloop.followups.loop`, every worker job: chasing and the outbox)
against a real SMTP server (aiosmtpd), and prints per run: follow-ups per second (total and
per worker, from the first to the last chase), p50/p99 delay between a case's due time and
its chase, peak memory per worker, and performed / expected / lost / duplicated (chase
events per case), duplicate_sends (the same Message-ID received twice: only after a kill)
and mail_received. To make the scaling honest on a small machine it also prints where the CPU
went: the workers' own CPU seconds (every worker process, killed ones included; and while busy:
from each worker's first round with work to its last, start-up left out) and follow-ups per
busy worker CPU-second (flat from 1 to 4 workers means they do not contend: speed then grows
with free cores), the bench process's CPU (almost all of it the SMTP server), PostgreSQL's CPU,
the load average at the start, the CPU one follow-up costs in all (busy worker + SMTP server +
PostgreSQL), the rate the machine's cores could reach at that cost (`machine_ceiling_per_s`) and the
share of it the run reached (`of_ceiling`; PostgreSQL only, where the jobs run side by side), and
the chase rate (first to last `requester_chased` event) apart from the delivery rate (first to last
`sent_at`).
`--kill-every S` SIGKILLs a random worker every S seconds and starts a replacement.
`--warmup S` makes the first case fall due S seconds after the workers start, so
delays do not include their start-up. `--spread S` spreads the due times over S seconds from the start (0: all due
at once, a backlog, which measures throughput; a spread below capacity measures delay).
The first run (one worker) is the baseline of the speed-up column (`--baseline-rate R` skips it and
divides by R, a 1-worker rate measured earlier on the same machine, where one command's time is short).
The teams work on an always-open calendar so the figures do not depend on the time of day.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.MULTILINE | re.IGNORECASE)
ALWAYS_OPEN = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
LEASE_SECONDS = 5


def _setup(db: str) -> tuple[str, Any]:
    cluster = None
    if db == "postgres":
        from closeloop.testing.postgres import start

        cluster = start()
        url = cluster.url
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='closeloop-bench-')}/template.sqlite3"
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "closeloop.settings_test",
                       "CLOSELOOP_FOLLOWUP_LEASE_SECONDS": str(LEASE_SECONDS),
                       # the understanding package would train its classifier on the million bench cases
                       "CLOSELOOP_RETRAIN_HOURS": "0"})
    import django

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    return url, cluster


def _use(db: str, url: str) -> None:
    import dj_database_url
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    settings.DATABASES["default"].update(dj_database_url.parse(url))
    if db == "sqlite":
        settings.DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20,
                                                    "init_command": "PRAGMA journal_mode=WAL;"}


def _template(db: str, base_url: str, cases: int, fraction: float, spread: float) -> tuple[str, dict[int, datetime]]:
    """Fill one database; returns its URL and {case id: due time}."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from closeloop.cases.demo import seed
    from closeloop.cases.models import RequestType
    from closeloop.followups.fill import fill
    from closeloop.followups.models import BusinessCalendar

    url = base_url
    if db == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE bench_template")
        url = base_url.rsplit("/", 1)[0] + "/bench_template"
    _use(db, url)
    call_command("migrate", verbosity=0)
    seed(cases=0, calendars=False)
    BusinessCalendar.objects.create(name="Always open", time_zone="UTC", hours=ALWAYS_OPEN, is_default=True)
    now = timezone.now()
    due = fill(cases, fraction, now, request_type=RequestType.objects.get(slug="referral"), spread_seconds=spread)
    # A live database has every case's analytics ledger and facts row, kept as its events were written; the
    # bulk fill bypassed that, so measure them now. Otherwise each worker would re-measure the cases it
    # chases (or all N, in analytics.ledger.remeasure), which is not follow-up work.
    _measure(db)
    if db == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return url, due


def _measure_chunk(ids: list[int]) -> int:
    from django.db import connections

    from closeloop.analytics.ledger import rebuild_cases

    try:
        return rebuild_cases(ids)
    finally:
        connections.close_all()


def _measure(db: str) -> None:
    """`analytics.ledger.rebuild_all`, in one process per core on PostgreSQL (each chunk of cases is
    measured on its own), so a million-case template fills in minutes on a machine with many cores."""
    import multiprocessing

    from django.db import connections

    from closeloop.analytics.ledger import fingerprint, rebuild_all
    from closeloop.analytics.models import LedgerState
    from closeloop.cases.models import Case

    procs = min(os.cpu_count() or 1, 12)
    if db != "postgres" or procs < 3:
        rebuild_all()
        return
    ids = list(Case.objects.order_by("pk").values_list("pk", flat=True))
    chunks = [ids[k * len(ids) // procs:(k + 1) * len(ids) // procs] for k in range(procs)]
    connections.close_all()  # each forked process opens its own
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(_measure_chunk, chunks)
    LedgerState.objects.update_or_create(pk=1, defaults={"fingerprint": fingerprint(), "remeasured_through": None})


def _fresh(db: str, template_url: str, n: int) -> str:
    """A copy of the filled database for one run, with the due times moved to start now."""
    from django.db import connection

    if db == "postgres":
        _use(db, template_url.rsplit("/", 1)[0] + "/postgres")
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE bench_run_{n} TEMPLATE bench_template")
        url = template_url.rsplit("/", 1)[0] + f"/bench_run_{n}"
    else:
        path = template_url.removeprefix("sqlite:///")
        copy = f"{path}.run{n}"
        shutil.copy(path, copy)
        url = f"sqlite:///{copy}"
    _use(db, url)
    return url


def _pg_cpu_seconds(cluster: Any) -> float | None:
    """CPU seconds of the PostgreSQL cluster so far: the postmaster, the backends it reaped and the live ones."""
    if cluster is None:
        return None
    try:
        pid = int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            me, parent = int(stat.parent.name), int(fields[1])
            if me == pid:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif parent == pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _start(url: str, smtp_port: int, batch: int, idle_exit: float = 3.0) -> subprocess.Popen[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "DATABASE_URL": url, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port),
           "PYTHONPATH": path}
    command = [sys.executable, "-m", "closeloop.followups.loop", "--idle-exit", str(idle_exit), "--batch", str(batch)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _shift_due(due: dict[int, datetime], warmup: float) -> dict[int, datetime]:
    """Move the due cases so the first falls due `warmup` seconds from now (workers start meanwhile)."""
    from django.db.models import F
    from django.utils import timezone

    from closeloop.cases.models import Case

    first, last = min(due.values()), max(due.values())
    delta = timezone.now() + timedelta(seconds=warmup) - first
    Case.objects.filter(next_due_at__gte=first, next_due_at__lte=last).update(next_due_at=F("next_due_at") + delta)
    return {pk: at + delta for pk, at in due.items()}


def _run_workers(url: str, smtp_port: int, workers: int, batch: int, kill_every: float,
                 idle_exit: float) -> tuple[int, list[float], float]:
    rng, kills, peaks, work_cpu = random.Random(3), 0, [], 0.0
    procs = [_start(url, smtp_port, batch, idle_exit) for _ in range(workers)]
    next_kill = time.monotonic() + kill_every if kill_every else float("inf")
    while any(p.poll() is None for p in procs):
        # Kill only while every worker is busy: once one has gone idle and exited, the due work is done
        # (a replacement that is killed before it can go idle would otherwise keep the run going).
        if time.monotonic() >= next_kill and all(p.poll() is None for p in procs):
            alive = [p for p in procs if p.poll() is None]
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            procs.remove(victim)
            procs.append(_start(url, smtp_port, batch, idle_exit))
            next_kill += kill_every
        time.sleep(0.05)
    for p in procs:
        out = (p.stdout.read() if p.stdout else "").strip()
        if out:
            last = json.loads(out.splitlines()[-1])
            peaks.append(last["peak_rss_mib"])
            print(f"worker: {out.splitlines()[-1]}", file=sys.stderr)
            work_cpu += last["work_cpu_s"]
    return kills, peaks, work_cpu


class _WaitSampler:
    """With --sample-waits: what the run's PostgreSQL backends are doing, sampled every 100 ms from
    pg_stat_activity (state, and wait event when active; `active:cpu` = running), to tell waiting on
    locks from waiting on the workers."""

    def __init__(self, url: str) -> None:
        import threading

        self.url, self.counts, self.samples = url, Counter[str](), 0
        self.stop, self.thread = threading.Event(), threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            while not self.stop.wait(0.1):
                rows = conn.execute("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
                self.samples += 1
                for state, kind, event in rows:
                    self.counts[f"{state}:{kind or 'cpu'}:{event or ''}" if state == "active" else str(state)] += 1

    def __enter__(self) -> _WaitSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict[str, float]:
        """Average number of backends in each state per sample, most first."""
        return {k: round(v / max(self.samples, 1), 2) for k, v in self.counts.most_common(8)}


def _smtp_server(delay_ms: float) -> Any:
    """The recording aiosmtpd server; with `delay_ms` it takes that long to accept each message, as a
    real MTA does while it writes its queue file."""
    import asyncio

    from closeloop.testing.smtp import SMTPServer

    server = SMTPServer()
    if delay_ms:
        record = server.handler.handle_DATA

        async def slow(smtp: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(delay_ms / 1000)
            return await record(smtp, session, envelope)

        server.handler.handle_DATA = slow  # type: ignore[method-assign,assignment]
    return server


def run(db: str, template_url: str, template_due: dict[int, datetime], n: int, workers: int, batch: int,
        kill_every: float, warmup: float = 0.0, cluster: Any = None, smtp_delay_ms: float = 0.0,
        sample_waits: bool = False) -> dict[str, Any]:
    from django.conf import settings
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from closeloop.cases.models import Event
    from closeloop.followups.worker import run_due
    from closeloop.outbound.models import OutboxMessage
    from closeloop.outbound.outbox import CLAIM_SECONDS, deliver_due

    url = _fresh(db, template_url, n)
    due = _shift_due(template_due, warmup)
    load = os.getloadavg()
    sampler = _WaitSampler(url) if sample_waits and db == "postgres" else contextlib.nullcontext()
    with _smtp_server(smtp_delay_ms) as smtp, sampler:
        wall, own, children, pg = time.monotonic(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), \
            _pg_cpu_seconds(cluster)
        kills, peaks, work_cpu = _run_workers(url, smtp.port, workers, batch, kill_every, 3.0 + warmup)
        wall = time.monotonic() - wall
        own, children = _cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - children
        pg_after = _pg_cpu_seconds(cluster)
        pg = round(pg_after - pg, 1) if pg is not None and pg_after is not None else None
        swept = 0
        if kills:  # what a surviving worker does once the leases and claims of the killed ones run out
            settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
            later = timezone.now() + timedelta(seconds=CLAIM_SECONDS + LEASE_SECONDS)
            while run_due(500, now=timezone.now() + timedelta(seconds=LEASE_SECONDS + 1)):
                pass
            for _ in range(20):
                if not OutboxMessage.objects.filter(status__in=["pending", "sending"]).exists():
                    break
                swept += deliver_due(500, now=later)
        received = Counter(m.group(1) for r in smtp.messages if (m := MESSAGE_ID.search(r.data)))
    chases = Event.objects.filter(kind="requester_chased")
    span = chases.aggregate(first=Min("at"), last=Max("at"))
    per_case = dict(chases.values_list("case_id").annotate(n=Count("id"), at=Min("at")).values_list("case_id", "at"))
    counts = Counter(chases.values_list("case_id", flat=True))
    delays = sorted(max(0.0, (per_case[pk] - at).total_seconds()) for pk, at in due.items() if pk in per_case)
    chase_ids = {m.encode() for m in OutboxMessage.objects.filter(purpose="chase").values_list("message_id", flat=True)}
    seconds = max((span["last"] - span["first"]).total_seconds(), 1e-6) if span["first"] else 1e-6
    rate = len(per_case) / seconds
    sent = OutboxMessage.objects.filter(purpose="chase", sent_at__isnull=False)
    sent_span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"), n=Count("id"))
    send_seconds = max((sent_span["last"] - sent_span["first"]).total_seconds(), 1e-6) if sent_span["n"] else 1e-6
    end_to_end = max((sent_span["last"] - span["first"]).total_seconds(), 1e-6) if sent_span["n"] and span["first"] \
        else 1e-6
    delivered_rate = min(len(per_case), sent_span["n"]) / end_to_end
    return {
        "db": db, "cases": None, "workers": workers,
        "outbox_connections": settings.CLOSELOOP_OUTBOX_CONNECTIONS, "smtp_delay_ms": smtp_delay_ms,
        "batch": batch, "kills": kills,
        "expected": len(due), "performed": len(per_case), "lost": len(set(due) - set(per_case)),
        "duplicated": sum(c - 1 for c in counts.values()),
        "mail_received": sum(c for mid, c in received.items() if mid in chase_ids),
        "duplicate_sends": sum(c - 1 for mid, c in received.items() if mid in chase_ids),
        "swept_after_kills": swept,
        "followups_per_s": round(rate, 1), "per_worker_per_s": round(rate / workers, 1),
        "sent_per_s": round(sent_span["n"] / send_seconds, 1),
        "end_to_end_per_s": round(delivered_rate, 1),
        "chase_seconds": round(seconds, 1), "send_seconds": round(send_seconds, 1), "wall_seconds": round(wall, 1),
        "load_avg_at_start": round(load[0], 2),
        "worker_cpu_s": round(children, 1),
        "worker_busy_cpu_s": round(work_cpu, 1),
        # per busy CPU-second (start-up and idle tail left out); only without kills (a killed worker reports nothing)
        "followups_per_worker_cpu_s": round(len(per_case) / work_cpu, 1) if work_cpu and not kills else None,
        "smtp_server_cpu_s": round(own, 1), "postgres_cpu_s": pg,
        "cpu_per_wall_s": round((children + own + (pg or 0)) / wall, 2) if wall else None,
        # PostgreSQL only: on SQLite the jobs run in turn. Against the end-to-end rate (first chase to last
        # sent), the span the CPU was spent in: the chasers no longer wait for delivery, so they finish first.
        **_ceiling(delivered_rate, len(per_case), work_cpu + own + pg if work_cpu and not kills and pg else 0.0),
        "p50_delay_s": round(statistics.median(delays), 2) if delays else None,
        "p99_delay_s": round(delays[max(0, int(len(delays) * 0.99) - 1)], 2) if delays else None,
        "peak_rss_mib_per_worker": max(peaks) if peaks else None,
        **({"pg_backends": sampler.summary()} if isinstance(sampler, _WaitSampler) else {}),
    }


def _ceiling(rate: float, performed: int, cpu_s: float) -> dict[str, float | int | None]:
    """What this machine's cores could do at the CPU one follow-up costs in all (busy worker, SMTP
    server, PostgreSQL), and how much of that the run reached: near 1.0 means the workers scale
    until the cores run out, and a machine with more cores moves the ceiling, not the workers."""
    cores = os.cpu_count() or 1
    if not performed or not cpu_s:
        return {"cpu_ms_per_followup": None, "cores": cores, "machine_ceiling_per_s": None, "of_ceiling": None}
    ceiling = cores * performed / cpu_s
    return {"cpu_ms_per_followup": round(cpu_s * 1000 / performed, 2), "cores": cores,
            "machine_ceiling_per_s": round(ceiling, 1), "of_ceiling": round(rate / ceiling, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--due-fraction", type=float, default=0.1)
    parser.add_argument("--workers", default="2", help="worker counts, e.g. 4 or 1,2,4 (1 always runs first)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL a random worker every S seconds")
    parser.add_argument("--spread", type=float, default=0.0, help="due times spread over S seconds (0: backlog)")
    parser.add_argument("--batch", type=int, default=200, help="cases a worker claims at once")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="the first case falls due S seconds after the workers start (delay without start-up)")
    parser.add_argument("--smtp-delay-ms", type=float, default=0.0,
                        help="the SMTP server takes this long to accept each message (a real MTA's queue write)")
    parser.add_argument("--baseline-rate", type=float, default=0.0,
                        help="skip the 1-worker run and compute the speed-up against this rate (follow-ups/s of "
                             "one worker measured earlier on the same machine), where one command has too little time")
    parser.add_argument("--sample-waits", action="store_true",
                        help="PostgreSQL: sample what the run's backends wait on (pg_stat_activity)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = sorted({*([] if args.baseline_rate else [1]), *(int(w) for w in str(args.workers).split(","))})
    if args.db == "sqlite" and max(counts) > 1:
        print("note: SQLite has one writer at a time; use --db postgres to measure scaling", file=sys.stderr)
    base_url, cluster = _setup(args.db)
    try:
        started = time.monotonic()
        template_url, template_due = _template(args.db, base_url, args.cases, args.due_fraction, args.spread)
        fill_s = round(time.monotonic() - started, 1)
        print(f"filled {args.cases} cases in {fill_s} s", file=sys.stderr, flush=True)
        rows = []
        for i, w in enumerate(counts):
            rows.append(run(args.db, template_url, template_due, i, w, args.batch,
                            args.kill_every if w > 1 or len(counts) == 1 else 0.0, args.warmup, cluster,
                            args.smtp_delay_ms, args.sample_waits))
            print(f"run: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # kept if a later run is cut off
    finally:
        if cluster is not None:
            from django.db import connections

            connections.close_all()
            cluster.stop()
    base = args.baseline_rate or rows[0]["followups_per_s"] or 1
    for row in rows:
        row.update(cases=args.cases, fill_s=fill_s, speedup_vs_1_worker=round(row["followups_per_s"] / base, 2))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("  ".join(f"{k:>24}" for k in ["metric", *(f"{r['workers']} worker(s)" for r in rows)]))
        for key in rows[0]:
            print("  ".join(f"{str(v):>24}" for v in [key, *(r.get(key) for r in rows)]))
    return 0 if all(r["lost"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
