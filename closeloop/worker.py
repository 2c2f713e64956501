"""The worker loop: every app contributes jobs (claim-and-do functions) and services.

An app's AppConfig may declare
- `worker_jobs`: dotted paths of functions `job(limit: int) -> int` that claim due rows by
  compare-and-set and return how many they handled;
- `worker_services`: dotted paths of long-running functions `service(stop: threading.Event)`
  (an IMAP IDLE loop, the SMTP listener, the folder watcher), each run in its own thread.

Loop:
1. run every job once; each one claims and handles at most `batch` due rows;
2. if none found work, sleep `idle_seconds` (or until stopped);
3. a job that raises is logged and the loop goes on: one bad row never stops the others,
   and each job pushes a failing row's due time forward itself (STYLE.md point 5).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.utils.module_loading import import_string

log = logging.getLogger("closeloop.worker")


def _collect(attr: str) -> list[tuple[str, Callable[..., object]]]:
    found = []
    for config in apps.get_app_configs():
        for dotted in getattr(config, attr, ()):
            found.append((dotted, import_string(dotted)))
    return found


def jobs() -> list[tuple[str, Callable[..., object]]]:
    return _collect("worker_jobs")


def run_once(batch: int = 100) -> int:
    """Run every job once; returns the items they handled.

    On PostgreSQL the jobs named in `CLOSELOOP_WORKER_ALONGSIDE` (the outbox: it mostly waits on
    the SMTP server) run in one long-lived helper thread, on its own database connection, while
    the others run here. The chasers do not wait for a slow mail server: while the helper's round
    is still going, a round that found work here ends without it (its count joins a later round),
    and the helper starts its next round once the last is done; a round that found nothing here
    waits for the helper, so an idle worker never spins. Jobs claim their rows by compare-and-set,
    so running them side by side is what two worker processes do anyway. Inside a transaction (a
    test's) every job runs here: another connection would not see its rows.
    """
    global _pending
    found = jobs()
    beside = [job for job in found if job[0] in settings.CLOSELOOP_WORKER_ALONGSIDE] if _may_overlap() else []
    finished = 0
    if beside and (_pending is None or _pending.done()):
        finished = _pending.result() if _pending is not None else 0
        _pending = _helper().submit(_run_jobs, beside, batch, True)
    done = _run_jobs([job for job in found if job not in beside], batch)
    if not done or not beside:
        finished += finish_round()
    return done + finished


def finish_round() -> int:
    """Wait for the helper's round in progress (if any); returns the items it handled."""
    global _pending
    finished, _pending = (_pending.result() if _pending is not None else 0), None
    return finished


def _run_jobs(found: list[tuple[str, Callable[..., object]]], batch: int, helper: bool = False) -> int:
    if helper:
        close_old_connections()  # the helper's own connection: as run_forever does for the main thread's
    done = 0
    for name, job in found:
        try:
            done += int(job(batch) or 0)  # type: ignore[call-overload]
        except Exception:
            log.exception("worker job %s failed", name)
    return done


def _may_overlap() -> bool:
    # SQLite takes one writer at a time: a second connection in the same process would only wait for it.
    return connection.vendor == "postgresql" and not connection.in_atomic_block


_pool: ThreadPoolExecutor | None = None
_pending: Future[int] | None = None  # the helper's round in progress


def _helper() -> ThreadPoolExecutor:
    """One thread for the whole process, so its database connection is kept between rounds."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-alongside")
    return _pool


def stop_helper() -> None:
    """Close the helper thread's database connection and end the thread (the worker stops, a test ends)."""
    global _pool, _pending
    _pending = None
    if _pool is not None:
        _pool.submit(connections.close_all).result()  # after the round in progress
        _pool.shutdown()
        _pool = None


def start_services(stop: threading.Event, names: set[str] | None = None) -> list[threading.Thread]:
    threads = []
    for name, service in _collect("worker_services"):
        if names is not None and name not in names:
            continue
        thread = threading.Thread(target=_guarded, args=(name, service, stop), name=name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def _guarded(name: str, service: Callable[..., object], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            service(stop)
        except Exception:
            log.exception("service %s crashed; restarting in 5 s", name)
        finally:
            close_old_connections()
        stop.wait(5)


def run_forever(stop: threading.Event, *, idle_seconds: float = 1.0, batch: int = 100,
                services: bool = True) -> None:
    if services:
        start_services(stop)
    log.info("worker started with jobs: %s", ", ".join(name for name, _ in jobs()) or "none")
    try:
        while not stop.is_set():
            close_old_connections()  # a database restart or CONN_MAX_AGE never strands the loop
            if run_once(batch) == 0:
                stop.wait(idle_seconds)
            else:
                time.sleep(0)
    finally:
        stop_helper()
