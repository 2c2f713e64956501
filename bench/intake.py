"""Intake benchmark: messages/s through the whole pipeline, and arrival→ack latency at 10 msg/s.

    python bench/intake.py                 # 1,000 messages, SQLite and PostgreSQL
    python bench/intake.py -n 5000 --json  # the issue's size, JSON out
    python bench/intake.py --corpus 5000   # import 5,000 real and damaged messages; lost must be 0

Each database runs in a child process of this script (a fresh Django each time). Per
database: N generated messages, each with a small PDF attachment and a distinct sender,
go through receive → parse → thread → dedupe → open case → ack queued; the baseline is
the stdlib parse of the same messages alone, so the ratio shows what the pipeline costs
on top of reading mail; msgs per CPU second is the one-core figure that does not
depend on what else the machine runs. Then M messages arrive at a sustained 10/s and each is timed
from `receive` to its acknowledgement accepted by a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n" + b"0" * 20_000 + b"\ntrailer<<>>\n%%EOF\n"


def make(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Patient {i} <patient{i}@example.com>"
    msg["To"] = "frontdesk@closeloop.local"
    msg["Subject"] = f"Appointment request {i}"
    msg["Message-ID"] = f"<bench-{i}-{os.getpid()}@example.com>"
    msg.set_content(f"Hello, I would like an appointment next week. My date of birth is 1970-01-{i % 28 + 1:02d}.")
    msg.add_attachment(PDF + str(i).encode(), maintype="application", subtype="pdf", filename=f"letter-{i}.pdf")
    return msg.as_bytes()


def child(db: str, n: int, sustained: int) -> dict[str, Any]:
    from closeloop.testing.benchdb import bench_database

    with bench_database(db, DJANGO_SETTINGS_MODULE="closeloop.settings", CLOSELOOP_LOG_LEVEL="ERROR",
                        CLOSELOOP_INTAKE_SENDER_LIMIT="1000000"):
        return _measure(db, n, sustained)


def _measure(db: str, n: int, sustained: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from closeloop.cases.demo import seed

    seed(cases=0)
    messages = [make(i) for i in range(n)]
    started = time.perf_counter()
    for raw in messages:
        message_from_bytes(raw).get_payload()
    parse_s = time.perf_counter() - started

    from closeloop.intake.inbound import Inbound
    from closeloop.intake.models import InboundMessage
    from closeloop.intake.pipeline import receive_and_process

    receive_and_process(Inbound(channel="import", raw=make(-1)))  # imports and caches, untimed
    started, cpu_started = time.perf_counter(), time.process_time()
    for raw in messages:
        receive_and_process(Inbound(channel="import", raw=raw))
    pipeline_s = time.perf_counter() - started
    # CPU seconds of this process: what "one core" gives, whatever else runs on the machine
    # (it leaves out fsync waits and, on PostgreSQL, the server's own CPU).
    cpu_s = time.process_time() - cpu_started
    opened = InboundMessage.objects.filter(result="opened").count()
    latencies = _sustained(sustained, n)
    return {
        "db": db, "messages": n, "cases_opened": opened - 1, "pipeline_msgs_per_s": round(n / pipeline_s, 1),
        "pipeline_msgs_per_cpu_s": round(n / cpu_s, 1),
        "parse_only_msgs_per_s": round(n / parse_s, 1), "ratio_pipeline_to_parse": round(parse_s / pipeline_s, 4),
        "sustained_msgs": len(latencies), "ack_p50_s": round(statistics.median(latencies), 4),
        "ack_p99_s": round(_p99(latencies), 4),
    }


def corpus_child(db: str, files: int) -> dict[str, Any]:
    from closeloop.testing.benchdb import bench_database

    with bench_database(db, DJANGO_SETTINGS_MODULE="closeloop.settings", CLOSELOOP_LOG_LEVEL="CRITICAL"):
        return _corpus(db, files)


def _corpus(db: str, files: int) -> dict[str, Any]:
    """`closeloop intake import-eml` over real messages and damaged variants (corpus.py)."""
    import io
    import tempfile
    from collections import Counter

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from closeloop.cases.demo import seed
    from closeloop.intake.channels.eml.corpus import build
    from closeloop.intake.models import InboundMessage

    seed(cases=0)
    folder = Path(tempfile.mkdtemp(prefix="closeloop-corpus-"))
    build(folder, files)
    out = io.StringIO()
    started = time.perf_counter()
    call_command("intake", "import-eml", str(folder), stdout=out)
    elapsed = time.perf_counter() - started
    summary = json.loads(out.getvalue())
    outcomes = Counter(f"{s}:{r}" for s, r in InboundMessage.objects.values_list("status", "result"))
    return {"db": db, **summary, "files_per_s": round(files / elapsed, 1), "outcomes": dict(outcomes)}


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _sustained(count: int, offset: int) -> list[float]:
    """Arrivals at 10/s; each message's time from receive to its ack accepted by SMTP."""
    from django.conf import settings

    from closeloop.intake.inbound import Inbound
    from closeloop.intake.pipeline import receive_and_process
    from closeloop.outbound.outbox import deliver_due
    from closeloop.testing.smtp import SMTPServer

    latencies = []
    with SMTPServer() as server:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        deliver_due(10_000)  # the acks of the throughput run
        start = time.perf_counter()
        for i in range(count):
            due = start + i / 10
            time.sleep(max(0.0, due - time.perf_counter()))
            arrived = time.perf_counter()
            receive_and_process(Inbound(channel="smtp", raw=make(offset + i)))
            deliver_due(10)
            latencies.append(time.perf_counter() - arrived)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="messages for the throughput run (issue: 5000)")
    parser.add_argument("--sustained", type=int, default=100, help="messages at 10/s for the latency run")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--corpus", type=int, default=0,
                        help="instead: import this many real and damaged messages (data/mail-corpus) and count")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = corpus_child(args.db, args.corpus) if args.corpus else child(args.db, args.n, args.sustained)
        print(json.dumps(result))
        return
    results = []
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        out = subprocess.run([sys.executable, __file__, "--child", "--db", db, "-n", str(args.n),
                              "--sustained", str(args.sustained), "--corpus", str(args.corpus)], cwd=ROOT,
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    keys = list(results[0])
    print(" | ".join(f"{k:>22}" for k in keys))
    for row in results:
        print(" | ".join(f"{row[k]!s:>22}" for k in keys))


if __name__ == "__main__":
    main()
