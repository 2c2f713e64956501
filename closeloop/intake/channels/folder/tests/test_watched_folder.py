from __future__ import annotations

import os
from pathlib import Path

import pytest

from closeloop.intake.channels.folder.adapter import Watcher
from closeloop.intake.inbound import read_raw
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import retry
from closeloop.intake.quarantine import quarantine_count

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
    """A file this process cannot read: mode 000, or (root reads anything) a link to a write-only kernel file."""
    if os.geteuid() != 0:
        path.write_bytes(PDF)
        path.chmod(0)
        return
    target = Path("/sys/bus/pci/rescan")
    if not target.exists():
        pytest.skip("no write-only kernel file to stand for an unreadable scan")
    path.symlink_to(target)


def _look_twice(watcher: Watcher) -> None:
    watcher.look()
    watcher.look()


def test_an_unreadable_file_is_shown_in_the_quarantine_and_the_others_are_taken(tmp_path, practice):
    watcher = Watcher(tmp_path)
    (tmp_path / "a.pdf").write_bytes(PDF)
    _unreadable(tmp_path / "b.pdf")
    (tmp_path / "c.tiff").write_bytes(TIFF)
    _look_twice(watcher)
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["a.pdf", "c.tiff"]
    watcher.look()  # still unreadable: tried again, and still one entry for staff
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
    assert "a.pdf could not be read" in failed.error and "link to a missing file" in failed.error
