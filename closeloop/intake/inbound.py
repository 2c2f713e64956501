"""The typed hand-off every channel produces, and the raw store that keeps its bytes.

A channel builds an `Inbound` and calls `pipeline.receive(inbound)`; nothing else.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone


@dataclass(frozen=True)
class Inbound:
    """One input as a channel received it, before anything is parsed."""

    channel: str
    raw: bytes
    external_id: str = ""
    format: str = "mime"
    sender: str = ""
    message_id: str = ""
    received_at: datetime = field(default_factory=timezone.now)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def raw_dir() -> Path:
    return Path(settings.CLOSELOOP_INTAKE_RAW_DIR)


def store_raw(raw: bytes, digest: str) -> str:
    """Write the bytes under their hash (once), atomically; return the path relative to the store."""
    relative = f"{digest[:2]}/{digest}"
    target = raw_dir() / relative
    if target.exists() and target.stat().st_size == len(raw):
        return relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            if settings.CLOSELOOP_INTAKE_FSYNC:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return relative


def read_raw(relative: str) -> bytes:
    return (raw_dir() / relative).read_bytes()
