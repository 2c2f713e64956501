"""Storing documents: content-addressed files, type and size limits, nothing executable."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat

from .models import Case, Document

ALLOWED_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/tiff", "image/gif", "text/plain", "text/csv",
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/rtf", "message/rfc822",
}
BLOCKED_SUFFIXES = {".exe", ".bat", ".cmd", ".com", ".js", ".vbs", ".scr", ".msi", ".jar", ".ps1", ".sh",
                    ".dll", ".html", ".htm", ".svg", ".zip", ".rar", ".7z", ".iso"}


class DocumentRejected(ValueError):
    """The file is not accepted; the message says why in words a requester understands."""


def safe_filename(name: str) -> str:
    base = PurePath(name.replace("\\", "/")).name.strip().strip(".") or "document"
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in base)[:200]


def sniff_type(content: bytes, declared: str, filename: str) -> str:
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content.startswith((b"MZ", b"\x7fELF", b"PK\x03\x04", b"Rar!", b"7z\xbc\xaf")):
        return "application/octet-stream"
    guessed = mimetypes.guess_type(filename)[0]
    return (declared or guessed or "application/octet-stream").split(";")[0].strip().lower()


def human_size(size: int) -> str:
    """1 byte, 300 KB, 1.5 MB: Django's filesizeformat, with a plain space and no trailing `.0`."""
    return filesizeformat(size).replace("\xa0", " ").replace(".0 ", " ")


def over_limit(what: str, size: int, limit: int) -> str:
    """`what is 400 KB; the limit is 300 KB`, in bytes where the human sizes would read the same."""
    shown, allowed = human_size(size), human_size(limit)
    if shown == allowed:
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
    return f"{what} is {shown}; the limit is {allowed}"


def check(content: bytes, filename: str, content_type: str) -> str:
    """The accepted content type, or DocumentRejected."""
    limit = settings.CLOSELOOP_MAX_UPLOAD_BYTES
    if len(content) > limit:
        raise DocumentRejected(over_limit(filename, len(content), limit))
    if not content:
        raise DocumentRejected(f"{filename} is empty")
    if PurePath(filename.lower()).suffix in BLOCKED_SUFFIXES:
        raise DocumentRejected(f"{filename}: this kind of file is not accepted")
    kind = sniff_type(content, content_type, filename)
    if kind not in ALLOWED_TYPES:
        raise DocumentRejected(f"{filename}: files of type {kind} are not accepted")
    return kind


def store_document(content: bytes, filename: str, content_type: str = "", *, source: str,
                   case: Case | None = None) -> Document:
    """Check and store a file; the same bytes are stored once on disk."""
    filename = safe_filename(filename)
    kind = check(content, filename, content_type)
    digest = hashlib.sha256(content).hexdigest()
    doc = Document(case=case, filename=filename, content_type=kind, size=len(content), sha256=digest, source=source)
    # Any stored copy will do (the same bytes); one column, no ordering to build.
    stored = list(Document.objects.filter(sha256=digest).exclude(file="").values_list("file", flat=True)[:1])
    if stored:
        doc.file.name = stored[0]
        doc.save()
    else:
        doc.file.save(digest, ContentFile(content), save=True)
    return doc
