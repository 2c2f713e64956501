"""Watched folder for faxed and scanned PDFs/TIFFs (fax servers and scanners drop files there).

A file is taken only when its size and modification time are the same on two looks in a
row (a writer still busy changes one of them). It is stored raw, processed, and moved to
`processed/`, or to `failed/` when it ended in quarantine (a file that is not a PDF or
TIFF is quarantined without processing); the raw bytes are in the store either way and
staff see every failure in the quarantine. A file that cannot be read (or moved) never
stops the look: it gets one quarantine entry and is tried again at the next look. Only
regular files are read, opened with O_NOFOLLOW: a link (to /etc/passwd, to a device, to a
folder elsewhere), a folder, a pipe, a device or a file over the size limit is refused
unread, moved to `failed/` and shown in the quarantine.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from closeloop.cases.documents import over_limit
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

        A file that cannot be read (permissions, an I/O error) is skipped for this look and
        shown in the quarantine; the other files are taken as usual, and the file is tried
        again at the next look. Links, folders, pipes and devices are refused without being
        read or followed (`refuse`).
        """
        taken = 0
        current: dict[str, tuple[int, float]] = {}
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.name in MOVED_TO:
                continue
            try:
                taken += self._look_at(path, current)
            except FileNotFoundError:  # moved away or deleted mid-look: nothing is there to lose
                continue
            except NotAFile as refused:
                self.refuse(path, f"it is {refused.what}; the watched folder takes only PDF and TIFF files placed "
                                  "in it")
            except OSError as exc:
                unreadable(path, f"{path.name} could not be read from the watched folder ({exc.strerror or exc})")
        self.seen = current
        return taken

    def _look_at(self, path: Path, current: dict[str, tuple[int, float]]) -> int:
        stat = path.lstat()  # the entry itself: a link is never followed
        if not S_ISREG(stat.st_mode):
            raise NotAFile(_kind(path, stat.st_mode))
        signature = (stat.st_size, stat.st_mtime)
        current[path.name] = signature
        if self.seen.get(path.name) != signature or stat.st_size == 0:
            return 0
        current.pop(path.name)
        limit = settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES
        if stat.st_size > limit:  # never read into memory: moved aside, with an entry saying why
            self.refuse(path, f"{over_limit(path.name, stat.st_size, limit)}")
            return 0
        raw = _read(path, signature)
        return 0 if raw is None else self._take(path, raw)

    def _take(self, path: Path, raw: bytes) -> int:
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
        while os.path.lexists(target):  # a link already there counts, even a broken one
            target = target_dir / f"{path.stem}-{counter}{path.suffix}"
            counter += 1
        path.rename(target)

    def refuse(self, path: Path, reason: str) -> None:
        """Show staff something the watcher will not read (a link, a folder, a pipe, a device, a file
        over the size limit) and move it, unread, to `failed/` (a rename moves a link, not its target)."""
        problem = f"{path.name} was refused: {reason}"
        try:
            self._move(path, "failed")
        except FileNotFoundError:
            return
        except OSError as exc:
            unreadable(path, f"{problem}. It could not be moved to failed/ ({exc.strerror or exc})")
            return
        unreadable(path, f"{problem}. Nothing of it was read; it was moved to failed/", again=False)


class NotAFile(Exception):
    """A folder entry that is not a regular file (`what` says what it is)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _kind(path: Path, mode: int) -> str:
    if S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "somewhere"
        return f"a symbolic link (to {target})"
    kinds = {S_ISDIR: "a folder", S_ISFIFO: "a named pipe", S_ISCHR: "a character device",
             S_ISBLK: "a block device", S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _read(path: Path, signature: tuple[int, float]) -> bytes | None:
    """The file's bytes, read without following a link or blocking on a pipe swapped in since the
    look (O_NOFOLLOW, O_NONBLOCK, then fstat of what was opened); None when it changed meanwhile."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link since the look
            raise NotAFile(_kind(path, path.lstat().st_mode)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if not S_ISREG(stat.st_mode):
            raise NotAFile(_kind(path, stat.st_mode))
        if (stat.st_size, stat.st_mtime) != signature:
            return None  # still being written: taken at a later look
        raw = handle.read(stat.st_size + 1)
    return raw if len(raw) == stat.st_size else None


def unreadable(path: Path, problem: str, *, again: bool = True) -> None:
    """Show staff a file the watcher cannot take: one quarantine entry per file name, kept up to date."""
    error = f"{problem}; the watcher tries again at every look while the file is there" if again else problem
    row, created = receive(Inbound(channel=CHANNEL, raw=b"", format="file", external_id=UNREADABLE + path.name,
                                   meta={"filename": path.name, "unreadable": error}),
                           claimed_until=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
    if row.status == InboundMessage.Status.DISMISSED:  # staff saw it and said there is nothing to do
        return
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
