from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from closeloop.intake.channels.folder.adapter import Watcher
from closeloop.intake.inbound import raw_dir, read_raw
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import retry
from closeloop.intake.quarantine import quarantine_count

from .privileges import without_file_permission_override

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TIFF = b"II*\x00" + b"\x00" * 64


def test_it_takes_a_file_only_once_it_stops_growing(tmp_path, practice):
    watcher = Watcher(tmp_path, request_type="records")
    scan = tmp_path / "fax-0001.pdf"
    scan.write_bytes(PDF[:10])
    assert watcher.look() == 0
    scan.write_bytes(PDF)  # still being written: changed since the last look
    assert watcher.look() == 0
    assert watcher.look() == 1
    assert (tmp_path / "processed" / "fax-0001.pdf").read_bytes() == PDF
    row = InboundMessage.objects.get(channel="folder")
    assert row.result == "opened" and row.case.channel == "fax" and row.case.request_type.slug == "records"
    assert row.case.documents.get().content_type == "application/pdf"
    assert not row.case.outbox.exists()  # nobody to acknowledge


def test_other_files_and_broken_scans_go_to_failed(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.tif").write_bytes(b"MZ this is a program")
    watcher.look()
    watcher.look()
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == ["fake.tif", "notes.txt"]


def test_the_same_scan_dropped_twice_is_one_case(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "a.tiff").write_bytes(TIFF)
    watcher.look()
    watcher.look()
    (tmp_path / "a.tiff").write_bytes(TIFF)
    watcher.look()
    watcher.look()
    assert InboundMessage.objects.count() == 1
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["a-1.tiff", "a.tiff"]


def test_a_file_that_is_not_a_scan_is_kept_and_shown_in_the_quarantine(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "referral.docx").write_bytes(b"PK\x03\x04 a word document")
    watcher.look()
    watcher.look()
    assert [p.name for p in (tmp_path / "failed").iterdir()] == ["referral.docx"]
    row = InboundMessage.objects.get(channel="folder")  # staff see it, with why, and the bytes are kept
    assert row.status == "quarantined" and "referral.docx" in row.error and "PDF or TIFF" in row.error
    assert read_raw(row.raw_path) == b"PK\x03\x04 a word document"


def _unreadable(path: Path) -> None:
    """A file this process cannot read: mode 000 (root reads it anyway: see `_look_twice`)."""
    path.write_bytes(PDF)
    path.chmod(0)


def _look_twice(watcher: Watcher) -> None:
    """Two looks, as the unprivileged service user the watcher runs as (root's file-permission
    override dropped for this thread: mode 000 then stops root as it stops anyone)."""
    with without_file_permission_override():
        watcher.look()
        watcher.look()


def test_an_unreadable_file_is_shown_in_the_quarantine_and_the_others_are_taken(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "a.pdf").write_bytes(PDF)
    _unreadable(tmp_path / "b.pdf")
    (tmp_path / "c.tiff").write_bytes(TIFF)
    _look_twice(watcher)
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["a.pdf", "c.tiff"]
    _look_twice(watcher)  # still unreadable: tried again, and still one entry for staff
    failed = InboundMessage.objects.get(status="quarantined")
    assert "b.pdf" in failed.error and "could not be read" in failed.error and "Permission denied" in failed.error
    assert quarantine_count() == 1 and InboundMessage.objects.filter(result="opened").count() == 2
    again = retry(failed)  # a retry by staff says why, and loses nothing
    assert again.status == "quarantined" and "b.pdf could not be read" in again.error
    assert "every look" in again.error


def test_a_file_that_becomes_readable_is_taken_once_and_leaves_the_quarantine(tmp_path, practice):
    watcher = Watcher(tmp_path)
    _unreadable(tmp_path / "b.pdf")
    _look_twice(watcher)
    assert quarantine_count() == 1
    (tmp_path / "b.pdf").unlink()  # the fax server fixes the permissions (or rewrites the file)
    (tmp_path / "b.pdf").write_bytes(PDF)
    _look_twice(watcher)
    _look_twice(watcher)
    assert quarantine_count() == 0
    assert [p.name for p in (tmp_path / "processed").iterdir()] == ["b.pdf"]
    opened = InboundMessage.objects.get(result="opened")
    stand_in = InboundMessage.objects.get(result="read_later")  # the failure, kept in the history, points at it
    assert stand_in.case == opened.case and stand_in.status == "duplicate"


def test_a_broken_link_is_shown_in_the_quarantine_and_does_not_stop_the_others(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "a.pdf").symlink_to(tmp_path / "gone.pdf")
    (tmp_path / "b.pdf").write_bytes(PDF)
    _look_twice(watcher)
    _look_twice(watcher)
    assert [p.name for p in (tmp_path / "processed").iterdir()] == ["b.pdf"]
    failed = InboundMessage.objects.get(status="quarantined")
    assert "a.pdf was refused" in failed.error and f"symbolic link (to {tmp_path / 'gone.pdf'})" in failed.error
    assert (tmp_path / "failed" / "a.pdf").is_symlink()


def _entries() -> dict[str, str]:
    return dict(InboundMessage.objects.filter(status="quarantined").values_list("meta__filename", "error"))


def test_links_are_refused_unread_whatever_they_point_at(tmp_path, practice):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(PDF + b"root:x:0:0:secret")  # would pass as a scan if it were followed
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "passwd.pdf").symlink_to(secret)
    (scans / "zero.tif").symlink_to("/dev/zero")  # endless: reading it would never finish
    (scans / "elsewhere.pdf").symlink_to(outside)
    (scans / "real.pdf").write_bytes(PDF)
    watcher = Watcher(scans)
    _look_twice(watcher)
    _look_twice(watcher)
    assert [p.name for p in (scans / "processed").iterdir()] == ["real.pdf"]
    entries = _entries()
    assert sorted(entries) == ["elsewhere.pdf", "passwd.pdf", "zero.tif"]
    assert f"a symbolic link (to {secret})" in entries["passwd.pdf"]
    assert "Nothing of it was read" in entries["passwd.pdf"]
    assert "(to /dev/zero)" in entries["zero.tif"]
    assert InboundMessage.objects.filter(size__gt=0).count() == 1  # only the real scan's bytes were stored
    stored = [f.read_bytes() for f in raw_dir().rglob("*") if f.is_file()]
    assert not any(b"secret" in content for content in stored)
    assert sorted(p.name for p in (scans / "failed").iterdir()) == ["elsewhere.pdf", "passwd.pdf", "zero.tif"]
    assert secret.read_bytes().endswith(b"secret") and outside.is_dir()  # the targets are untouched
    again = retry(InboundMessage.objects.get(meta__filename="passwd.pdf"))  # a staff retry reads nothing either
    assert again.status == "quarantined" and "symbolic link" in again.error


def test_pipes_devices_and_folders_are_refused_without_blocking(tmp_path, practice):
    os.mkfifo(tmp_path / "fax.pdf")  # opening a pipe with no writer would block the watcher for good
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "inside.pdf").write_bytes(PDF)
    kinds = {"fax.pdf": "a named pipe", "batch": "a folder"}
    try:
        os.mknod(tmp_path / "null.tif", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        kinds["null.tif"] = "a character device"
    except PermissionError:  # no CAP_MKNOD here: the pipe and the folder still stand for the rest
        pass
    watcher = Watcher(tmp_path)
    _look_twice(watcher)
    entries = _entries()
    assert sorted(entries) == sorted(kinds)
    for name, kind in kinds.items():
        assert f"{name} was refused: it is {kind}" in entries[name]
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == sorted(kinds)
    assert InboundMessage.objects.filter(size__gt=0).count() == 0


def test_a_file_over_the_limit_is_moved_aside_unread(tmp_path, practice, settings):
    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 1000
    (tmp_path / "huge.pdf").write_bytes(PDF + b"x" * 5000)
    watcher = Watcher(tmp_path)
    _look_twice(watcher)
    entry = InboundMessage.objects.get(status="quarantined")
    assert "huge.pdf was refused: huge.pdf is 4.9 KB; the limit is 1000 bytes" in entry.error
    assert entry.size == 0 and [p.name for p in (tmp_path / "failed").iterdir()] == ["huge.pdf"]


def test_a_dismissed_entry_stays_dismissed_while_the_file_stays_unreadable(tmp_path, practice):
    from closeloop.intake.quarantine import dismiss

    watcher = Watcher(tmp_path)
    _unreadable(tmp_path / "b.pdf")
    _look_twice(watcher)
    entry = InboundMessage.objects.get(status="quarantined")
    dismiss(entry.pk, practice.supervisor, "the fax server's test page")
    _look_twice(watcher)  # still there, still unreadable: staff said there is nothing to do
    entry.refresh_from_db()
    assert entry.status == "dismissed" and quarantine_count() == 0
