"""Import of raw messages: .eml files, directories of them, and mbox files.

Each message goes through the same pipeline as mail a channel received, inline, and
the import answers with counts that must add up: every input is stored raw and ends
as a new case, a threaded message, a duplicate, a quarantined row, or something kept
without a case (bounces, auto-replies). `lost` counts inputs that none of these cover.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import process, receive

CHANNEL = "import"


@dataclass
class Summary:
    files: int = 0
    stored_raw: int = 0
    cases_opened: int = 0
    threaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _is_mbox(path: Path) -> bool:
    if path.suffix.lower() == ".mbox":
        return True
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def messages(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """(where, raw bytes) for every message under the paths; directories are walked in name order."""
    for given in paths:
        path = Path(given)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.name.startswith("."):
                continue
            found = 0
            if _is_mbox(file):
                box = mailbox.mbox(file, create=False)
                for found, key in enumerate(box.iterkeys(), start=1):
                    yield f"{file}#{found - 1}", box.get_bytes(key)
            if not found:  # a plain file, or something that only looked like an mbox: one input
                yield str(file), file.read_bytes()


def import_messages(paths: Iterable[str | Path], meta: dict[str, Any] | None = None) -> Summary:
    summary = Summary()
    for where, raw in messages(paths):
        summary.files += 1
        inbound = Inbound(channel=CHANNEL, raw=raw, external_id=_external_id(raw),
                          meta={**(meta or {}), "source": where[-200:]})
        row, created = receive(inbound)
        if not created:
            summary.duplicates += 1
            continue
        summary.stored_raw += 1
        _count(process(row), summary)
    return summary


def _external_id(raw: bytes) -> str:
    # The file's hash: the same file imported twice is one input; a different copy of the
    # same message (same Message-ID, other bytes) is caught as a duplicate by the pipeline.
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _count(row: InboundMessage, summary: Summary) -> None:
    status, result = row.status, row.result
    if status == InboundMessage.Status.QUARANTINED:
        summary.quarantined += 1
    elif status == InboundMessage.Status.DUPLICATE:
        summary.duplicates += 1
    elif result == "opened":
        summary.cases_opened += 1
    elif result == "threaded":
        summary.threaded += 1
    elif status != InboundMessage.Status.PROCESSED:
        summary.lost += 1
