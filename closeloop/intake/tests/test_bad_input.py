"""Each kind of bad input has a defined outcome, and the raw bytes are never lost."""

from __future__ import annotations

import struct

import pytest
from tnefparse import TNEF

from closeloop.cases.models import Case
from closeloop.intake.inbound import Inbound, read_raw
from closeloop.intake.parse import decode_bytes, header_text, parse_mime
from closeloop.intake.pipeline import receive_and_process

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _in(raw: bytes):
    row, _ = receive_and_process(Inbound(channel="import", raw=raw))
    row.refresh_from_db()
    assert read_raw(row.raw_path) == raw  # never lost, whatever happened
    return row


def _raw(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


def test_bogus_declared_charsets_fall_back_to_a_readable_decoding(practice):
    for charset in ("unknown-8bit", "DEFAULT_CHARSET", "x-user-defined"):
        raw = _raw(f"From: {charset}@example.com\nSubject: Test\nMessage-ID: <{charset}@x>\nMIME-Version: 1.0\n"
                   f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit\n",
                   "Caf\u00e9 au lait, se\u00f1or".encode("cp1252"))
        row = _in(raw)
        assert row.status == "processed", row.error
        assert row.case.summary == "Caf\u00e9 au lait, se\u00f1or"


def test_undeclared_utf8_in_8bit_headers_is_read_as_utf8(practice):
    raw = ("From: Jos\u00e9 P\u00e9rez <jose@example.com>\r\nSubject: Cita para ma\u00f1ana\r\n"
           "Message-ID: <8bit@x>\r\n\r\nHola").encode()
    row = _in(raw)
    assert row.subject == "Cita para ma\u00f1ana" and row.sender_name == "Jos\u00e9 P\u00e9rez"


def test_encoded_words_with_unknown_charsets_do_not_fail():
    assert header_text("=?unknown-8bit?q?Caf=E9?=") == "Caf\u00e9"
    assert decode_bytes(b"\xff\xfe\x00", "no-such-charset")  # latin-1 as the last resort


def test_malformed_mime_without_a_closing_boundary_keeps_what_it_can(practice):
    raw = _raw('From: a@example.com\nSubject: Broken\nMessage-ID: <broken@x>\nMIME-Version: 1.0\n'
               'Content-Type: multipart/mixed; boundary="XX"\n',
               b"--XX\r\nContent-Type: text/plain\r\n\r\nStill readable\r\n--XX\r\nContent-Type: application/pdf\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!")
    row = _in(raw)
    assert row.status == "processed" and "Still readable" in row.case.summary


def test_html_with_script_becomes_safe_text(practice):
    raw = _raw("From: a@example.com\nSubject: HTML\nMessage-ID: <html@x>\nMIME-Version: 1.0\n"
               "Content-Type: text/html; charset=utf-8\n",
               b"<html><head><style>p{}</style><script>steal()</script></head><body><p>Need an "
               b"<b>appointment</b></p><img src=x onerror=alert(1)><p>Thanks &amp; regards</p></body></html>")
    row = _in(raw)
    assert row.case.summary == "Need an appointment\nThanks & regards"


def test_an_empty_message_still_opens_a_case_and_is_acknowledged(practice):
    row = _in(_raw("From: quiet@example.com\nMessage-ID: <empty@x>\n", b""))
    assert row.result == "opened" and row.case.subject == "(no subject)"
    assert row.case.outbox.filter(purpose="ack").exists()


def test_garbage_is_quarantined_with_its_error():
    row = _in(b"")
    assert row.status == "quarantined" and "empty" in row.error


def test_executables_and_archives_are_refused_but_the_message_is_handled(practice):
    from closeloop.intake.tests.conftest import make_mail

    row = _in(make_mail(attachments=[("setup.exe", "application/octet-stream", b"MZ\x90\x00binary"),
                                     ("records.zip", "application/zip", b"PK\x03\x04zip"),
                                     ("referral.pdf", "application/pdf", PDF)]))
    assert row.result == "opened"
    assert list(row.case.documents.values_list("filename", flat=True)) == ["referral.pdf"]
    reasons = row.case.events.get(kind="attachments_rejected").data["reasons"]
    assert any("setup.exe" in r for r in reasons) and any("records.zip" in r for r in reasons)
    assert "could not accept some attachments" in row.case.outbox.get().body


def test_a_30_mb_attachment_over_the_limit_is_refused_and_the_message_kept(practice):
    from closeloop.intake.tests.conftest import make_mail

    big = b"%PDF-1.4\n" + b"0" * (30 * 1024 * 1024)
    row = _in(make_mail(attachments=[("huge.pdf", "application/pdf", big)]))
    assert row.result == "opened" and row.size > 30 * 1024 * 1024
    assert not row.case.documents.exists()
    assert "limit is 25 MB" in row.case.events.get(kind="attachments_rejected").data["reasons"][0]


def test_a_message_over_the_whole_message_limit_is_quarantined(practice, settings):
    from closeloop.intake.tests.conftest import make_mail

    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 10_000
    row = _in(make_mail(body="x" * 20_000))
    assert row.status == "quarantined" and "limit" in row.error
    assert not Case.objects.exists()


def _tnef_blob() -> bytes:
    def obj(level: int, name: int, kind: int, data: bytes) -> bytes:
        return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)

    return (struct.pack("<IH", TNEF.TNEF_SIGNATURE, 1) + obj(1, TNEF.ATTBODY, 7, b"Body from Outlook\x00")
            + obj(2, TNEF.ATTATTACHRENDDATA, 2, b"\x00" * 14) + obj(2, TNEF.ATTATTACHTITLE, 1, b"scan.pdf\x00")
            + obj(2, TNEF.ATTATTACHDATA, 6, PDF))


def test_outlook_winmail_dat_is_unpacked(practice):
    from closeloop.intake.tests.conftest import make_mail

    row = _in(make_mail(body="", attachments=[("winmail.dat", "application/ms-tnef", _tnef_blob())]))
    assert row.result == "opened"
    assert list(row.case.documents.values_list("filename", flat=True)) == ["scan.pdf"]
    assert "Body from Outlook" in row.case.summary


def test_a_broken_winmail_dat_is_noted_not_fatal(practice):
    from closeloop.intake.tests.conftest import make_mail

    row = _in(make_mail(attachments=[("winmail.dat", "application/ms-tnef", b"not tnef at all")]))
    assert row.result == "opened"
    assert any("winmail.dat" in r for r in row.case.events.get(kind="attachments_rejected").data["reasons"])


def test_parse_reads_threading_headers():
    parsed = parse_mime(b"From: a@b.c\r\nIn-Reply-To: <x@y>\r\nReferences: <w@y> <x@y>\r\nSubject: s\r\n\r\nb")
    assert parsed.thread_ids == ["<x@y>", "<w@y>"]


def test_a_small_message_limit_is_stated_in_kilobytes_not_as_0_mb(practice, settings):
    from closeloop.intake.tests.conftest import make_mail

    settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = 300 * 1024
    row = _in(make_mail(body="x" * 400_000))
    assert row.status == "quarantined"
    assert "the limit is 300 KB" in row.error and "0 MB" not in row.error, row.error


def test_a_small_attachment_limit_is_stated_in_kilobytes_not_as_0_mb(practice, settings):
    from closeloop.intake.tests.conftest import make_mail

    settings.CLOSELOOP_MAX_UPLOAD_BYTES = 300 * 1024
    scan = b"%PDF-1.4\n" + b"0" * (400 * 1024 - 9)
    row = _in(make_mail(attachments=[("scan.pdf", "application/pdf", scan)]))
    reason = row.case.events.get(kind="attachments_rejected").data["reasons"][0]
    assert reason == "scan.pdf is 400 KB; the limit is 300 KB"
