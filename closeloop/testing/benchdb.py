"""A throwaway database for one benchmark child process: a temp SQLite file or a fresh
PostgreSQL cluster, chosen before Django is set up."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bench_database(db: str, **env: str) -> Iterator[None]:
    os.environ.setdefault("CLOSELOOP_DEVELOPMENT", "1")
    os.environ["CLOSELOOP_DATA_DIR"] = tempfile.mkdtemp(prefix="closeloop-bench-")
    os.environ.update(env)
    cluster = None
    if db == "postgres":
        from .postgres import start

        cluster = start()
        os.environ["DATABASE_URL"] = cluster.url
    try:
        yield
    finally:
        if cluster is not None:
            from django.db import connections

            connections.close_all()
            cluster.stop()
