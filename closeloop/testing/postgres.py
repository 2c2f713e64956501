"""A throwaway PostgreSQL cluster for one test session (see shared/TEST-COMPONENTS.md)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN = Path(os.environ.get("CLOSELOOP_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class Cluster:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate",
                                    "stop"), check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def start() -> Cluster:
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {BIN}; apt-get install postgresql")
    directory = Path(tempfile.mkdtemp(prefix="closeloop-pg-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the postgres user must traverse it
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    subprocess.run(_as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                                "-E", "UTF8", "--locale=C.UTF-8"), check=True, capture_output=True)
    port = free_port()
    options = (f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(directory / "log"),
                                "-o", options, "start"), check=True, capture_output=True)
    return Cluster(directory, port)
