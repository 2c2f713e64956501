"""Watched folder for faxed and scanned PDFs/TIFFs (fax servers and scanners drop files there).

A file is taken only when its size and modification time are the same on two looks in a
row (a writer still busy changes one of them). It is stored raw, processed, and moved to
`processed/`, or to `failed/` when it ended in quarantine (a file that is not a PDF or
TIFF is quarantined without processing); the raw bytes are in the store either way and
staff see every failure in the quarantine. A file that cannot be read (or moved) never
stops the look: it gets one quarantine entry and is tried again at the next look.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from stat import S_ISREG

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
MOVED_TO = {"processed", "failed"}
UNREADABLE = "unreadable:"


@dataclass
class Watcher:
    folder: Path
    request_type: str = ""
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)

    def look(self) -> int:
        """One look at the folder; returns how many files were taken.

        A file that cannot be read (permissions, a broken link, an I/O error) is skipped for
        this look and shown in the quarantine; the other files are taken as usual, and the
        file is tried again at the next look.
        """
        taken = 0
        current: dict[str, tuple[int, float]] = {}
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.name in MOVED_TO:
                continue
            try:
                taken += self._look_at(path, current)
            except FileNotFoundError:
                if not path.is_symlink():  # moved away or deleted mid-look: nothing is there to lose
                    continue
                unreadable(path, f"{path.name} could not be read from the watched folder (it is a link to a "
                                 f"missing file)")
            except OSError as exc:
                unreadable(path, f"{path.name} could not be read from the watched folder ({exc.strerror or exc})")
        self.seen = current
        return taken

    def _look_at(self, path: Path, current: dict[str, tuple[int, float]]) -> int:
        stat = path.stat()
        if not S_ISREG(stat.st_mode):  # a folder, a pipe, a device: nothing to take
            return 0
        signature = (stat.st_size, stat.st_mtime)
        current[path.name] = signature
        if self.seen.get(path.name) != signature or stat.st_size == 0:
            return 0
        current.pop(path.name)
        return self._take(path)

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
        where = "failed" if row.status == InboundMessage.Status.QUARANTINED else "processed"
        try:
            self._move(path, where)
        except OSError as exc:  # received once and for all; the move is tried again at the next look
            unreadable(path, f"{path.name} was received but could not be moved to {where}/ "
                             f"({exc.strerror or exc})")
            return 1
        read_at_last(path.name, row)
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


def unreadable(path: Path, problem: str) -> None:
    """Show staff a file the watcher cannot take: one quarantine entry per file name, kept up to date."""
    error = f"{problem}; the watcher tries again at every look while the file is there"
    row, created = receive(Inbound(channel=CHANNEL, raw=b"", format="file", external_id=UNREADABLE + path.name,
                                   meta={"filename": path.name, "unreadable": error}),
                           claimed_until=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
    if created or row.status != InboundMessage.Status.QUARANTINED or row.error != error:
        if created:
            log.warning("watched folder: %s", error)
        row.meta = {**row.meta, "unreadable": error}
        InboundMessage.objects.filter(pk=row.pk).update(meta=row.meta)
        quarantine(row, error)


def read_at_last(name: str, taken: InboundMessage) -> None:
    """A file that could not be read before was taken now: its quarantine entry points at what it became."""
    InboundMessage.objects.filter(channel=CHANNEL, external_id=UNREADABLE + name,
                                  status=InboundMessage.Status.QUARANTINED).update(
        status=InboundMessage.Status.DUPLICATE, result="read_later", case=taken.case, error="",
        processed_at=timezone.now())


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
