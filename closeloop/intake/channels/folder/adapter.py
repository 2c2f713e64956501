"""Watched folder for faxed and scanned PDFs/TIFFs (fax servers and scanners drop files there).

A file is taken only when its size and modification time are the same on two looks in a
row (a writer still busy changes one of them). It is stored raw, processed, and moved to
`processed/`, or to `failed/` when it ended in quarantine (a file that is not a PDF or
TIFF is quarantined without processing); the raw bytes are in the store either way and
staff see every failure in the quarantine.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import CLAIM_SECONDS, process, quarantine, receive

log = logging.getLogger(__name__)
CHANNEL = "folder"
SUFFIXES = {".pdf", ".tif", ".tiff"}
LOOK_SECONDS = 2.0


@dataclass
class Watcher:
    folder: Path
    request_type: str = ""
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)

    def look(self) -> int:
        """One look at the folder; returns how many files were taken."""
        taken = 0
        current: dict[str, tuple[int, float]] = {}
        for path in sorted(p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime)
            current[path.name] = signature
            if self.seen.get(path.name) == signature and stat.st_size > 0:
                taken += self._take(path)
                current.pop(path.name)
        self.seen = current
        return taken

    def _take(self, path: Path) -> int:
        raw = path.read_bytes()
        meta = {"filename": path.name, **({"request_type": self.request_type} if self.request_type else {})}
        scan = path.suffix.lower() in SUFFIXES
        # A file to quarantine is born claimed, so the worker's process_due cannot take it meanwhile.
        claimed = None if scan else timezone.now() + timedelta(seconds=CLAIM_SECONDS)
        row, created = receive(Inbound(channel=CHANNEL, raw=raw, format="file",
                                       external_id="sha256:" + hashlib.sha256(raw).hexdigest(), meta=meta),
                               claimed_until=claimed)
        if created and not scan:
            # Kept and shown in the staff quarantine (a retry runs the document checks on it).
            log.warning("watched folder: %s is not a PDF or TIFF; quarantined, moved to failed/", path.name)
            quarantine(row, f"{path.name} is not a PDF or TIFF; the watched folder takes scans and faxes only")
        elif created:
            process(row)
            row.refresh_from_db()
        self._move(path, "failed" if row.status == InboundMessage.Status.QUARANTINED else "processed")
        return 1

    def _move(self, path: Path, where: str) -> None:
        target_dir = self.folder / where
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        counter = 1
        while target.exists():
            target = target_dir / f"{path.stem}-{counter}{path.suffix}"
            counter += 1
        path.rename(target)


def service(stop: threading.Event) -> None:
    """Worker service: look at CLOSELOOP_INTAKE_FOLDER every two seconds."""
    if not settings.CLOSELOOP_INTAKE_FOLDER:
        stop.wait(3600)
        return
    watcher = Watcher(Path(settings.CLOSELOOP_INTAKE_FOLDER), settings.CLOSELOOP_INTAKE_FOLDER_TYPE)
    watcher.folder.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        try:
            watcher.look()
        finally:
            close_old_connections()
        stop.wait(LOOK_SECONDS)
