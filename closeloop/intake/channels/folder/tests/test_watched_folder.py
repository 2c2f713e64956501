from __future__ import annotations

import pytest

from closeloop.intake.channels.folder.adapter import Watcher
from closeloop.intake.inbound import read_raw
from closeloop.intake.models import InboundMessage

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
