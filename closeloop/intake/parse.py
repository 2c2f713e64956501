"""Parse stage: raw bytes to a `Parsed` message, whatever the sender's software did.

Uses the stdlib `email` package with the compat32 policy (it never raises on broken
headers) and decodes text itself: declared charsets that Python does not know
(`unknown-8bit`, `DEFAULT_CHARSET`, `x-user-defined`) and undeclared 8-bit text fall
back to UTF-8, then Windows-1252, then Latin-1, which cannot fail. HTML becomes plain
text through nh3, with scripts and styles dropped entirely.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import json
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import Any

import nh3

AUTO_SUBMITTED_OK = {"", "no"}
ID_RE = re.compile(r"<[^<>\s]+>")
MESSAGE_ID_RE = re.compile(rb"(?im)^message-id:((?:.*)(?:\r?\n[ \t].*)*)")
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")


class ParseError(ValueError):
    """The input cannot be read as a message at all."""


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class Parsed:
    subject: str = ""
    sender: str = ""
    sender_name: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    auto_reply: bool = False
    bounce: bool = False
    list_mail: bool = False
    loop: bool = False
    bounced_ids: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    request_type: str = ""

    @property
    def suppress_ack(self) -> bool:
        return self.auto_reply or self.bounce or self.list_mail or self.loop

    @property
    def thread_ids(self) -> list[str]:
        ids = [self.in_reply_to, *reversed(self.references)]
        return [i for i in dict.fromkeys(ids) if i][:30]


# ---------------------------------------------------------------- text decoding


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset when Python knows it, else the usual suspects."""
    candidates = []
    if charset:
        try:
            candidates.append(codecs.lookup(charset.strip().strip('"')).name)
        except LookupError:
            pass
    for name in [*candidates, "utf-8", "cp1252"]:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


def header_text(value: object) -> str:
    """A header as text: RFC 2047 words decoded, raw 8-bit bytes guessed, never an exception."""
    if value is None:
        return ""
    chunks: list[tuple[bytes | str, str | None]]
    if isinstance(value, Header):  # compat32 wraps raw 8-bit header bytes as charset unknown-8bit
        chunks = decode_header(value)
    else:
        raw = str(value)
        if any("\udc80" <= ch <= "\udcff" for ch in raw):
            raw = decode_bytes(raw.encode("utf-8", "surrogateescape"), None)
        try:
            chunks = decode_header(raw)
        except (ValueError, IndexError):  # malformed encoded words: keep the text as it came
            chunks = [(raw, None)]
    parts = [decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk for chunk, charset in chunks]
    return " ".join("".join(parts).split())


def html_to_text(markup: str) -> str:
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h[1-6]|table)>", "\n", markup)
    cleaned = nh3.clean(markup, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    text = html.unescape(cleaned)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _ids(value: str) -> list[str]:
    return ID_RE.findall(value or "")


# ---------------------------------------------------------------- MIME


def parse_mime(raw: bytes) -> Parsed:
    if not raw.strip():
        raise ParseError("the message is empty")
    msg = message_from_bytes(raw, policy=email_policy.compat32)
    if not msg.keys():
        raise ParseError("no headers: this is not an internet message")
    name, address = parseaddr(header_text(msg.get("From")))
    parsed = Parsed(
        subject=header_text(msg.get("Subject"))[:300], sender=address.strip().lower()[:300],
        sender_name=name[:200], message_id=(_ids(str(msg.get("Message-ID", ""))) or [""])[0][:300],
        in_reply_to=(_ids(str(msg.get("In-Reply-To", ""))) or [""])[0][:300],
        references=_ids(str(msg.get("References", "")))[-30:],
        recipients=_recipients(msg),
    )
    _classify(msg, parsed)
    texts: list[str] = []
    htmls: list[str] = []
    _walk(msg, parsed, texts, htmls)
    parsed.body = "\n\n".join(t.strip() for t in texts if t.strip()) or html_to_text("\n".join(htmls))
    return parsed


def _recipients(msg: Message) -> list[str]:
    """Every address the message was for, as headers tell it (a reply address may be in any)."""
    values = [header_text(v) for name in RECIPIENT_HEADERS for v in msg.get_all(name, [])]
    return list(dict.fromkeys(a.strip().lower() for _, a in getaddresses(values) if a))[:100]


def _classify(msg: Message, parsed: Parsed) -> None:
    auto = header_text(msg.get("Auto-Submitted")).lower().split(";")[0].strip()
    precedence = header_text(msg.get("Precedence")).lower()
    parsed.auto_reply = (auto not in AUTO_SUBMITTED_OK or precedence == "auto_reply"
                         or bool(msg.get("X-Autoreply") or msg.get("X-Autorespond")))
    parsed.list_mail = precedence in {"bulk", "junk", "list"} or bool(msg.get("List-Id"))
    parsed.loop = bool(msg.get("X-Loop"))
    return_path = msg.get("Return-Path")
    report = msg.get_content_type() == "multipart/report" and "delivery-status" in str(
        msg.get_param("report-type", "")
    ).lower()
    daemon = parsed.sender.split("@")[0] in ("mailer-daemon", "postmaster")
    parsed.bounce = report or daemon or (return_path is not None and str(return_path).strip() in ("<>", ""))


def _walk(part: Message, parsed: Parsed, texts: list[str], htmls: list[str], depth: int = 0) -> None:
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or ctype == "text/rfc822-headers" or ctype == "message/delivery-status":
        _enclosed(part, parsed)
        return
    if part.is_multipart():
        payload = part.get_payload()
        if depth > 20:  # a message nested this deep is an attack, not a request
            raise ParseError("MIME parts nested more than 20 deep")
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                _walk(sub, parsed, texts, htmls, depth + 1)
        return
    filename = header_text(part.get_filename() or "")
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    if ctype == "application/ms-tnef" or filename.lower() == "winmail.dat":
        _tnef(data, parsed, texts, htmls)
    elif ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text = decode_bytes(data, part.get_content_charset())
        (texts if ctype == "text/plain" else htmls).append(text)
    else:
        parsed.attachments.append(Attachment(filename or _default_name(ctype), ctype, data))


def _enclosed(part: Message, parsed: Parsed) -> None:
    """A bounce report's copy of our message gives its Message-ID; a forwarded message is kept as .eml."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
        header_ids = _ids(str(inner.get("Message-ID", "")))
        data = inner.as_bytes() if hasattr(inner, "as_bytes") else b""
    else:
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", "surrogateescape")
        match = re.search(rb"(?im)^message-id:\s*(<[^>]+>)", data)
        header_ids = [match.group(1).decode("ascii", "replace")] if match else []
    if parsed.bounce:
        parsed.bounced_ids += header_ids
    elif part.get_content_type() == "message/rfc822":
        parsed.attachments.append(Attachment(header_text(part.get_filename() or "") or "forwarded.eml",
                                             "message/rfc822", data))


def _default_name(ctype: str) -> str:
    extension = {"image/png": ".png", "image/jpeg": ".jpg", "application/pdf": ".pdf", "image/tiff": ".tif",
                 "message/rfc822": ".eml", "image/gif": ".gif"}.get(ctype, ".bin")
    return f"attachment{extension}"


def _tnef(data: bytes, parsed: Parsed, texts: list[str], htmls: list[str]) -> None:
    from tnefparse import TNEF

    try:
        tnef = TNEF(data)
    except Exception as exc:  # noqa: BLE001  # tnefparse raises bare ValueErrors and struct errors alike
        parsed.attachments.append(Attachment("winmail.dat", "application/ms-tnef", data))
        parsed.fields.setdefault("_notes", []).append(f"winmail.dat could not be read: {exc}")
        return
    if tnef.body:
        texts.append((decode_bytes(tnef.body, None) if isinstance(tnef.body, bytes) else str(tnef.body)).strip("\x00"))
    elif tnef.htmlbody:
        htmls.append(decode_bytes(tnef.htmlbody, None) if isinstance(tnef.htmlbody, bytes) else str(tnef.htmlbody))
    for item in tnef.attachments:
        name = item.long_filename() or "attachment.bin"
        parsed.attachments.append(Attachment(name, "", bytes(item.data)))


# ---------------------------------------------------------------- web form, API, scanned files


def parse_json(raw: bytes) -> Parsed:
    """A web form or API submission: {subject, body, email, name, request_type, fields, attachments}."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParseError("the payload must be a JSON object")
    parsed = Parsed(
        subject=str(data.get("subject") or "")[:300], body=str(data.get("body") or ""),
        sender=str(data.get("email") or "").strip().lower()[:300], sender_name=str(data.get("name") or "")[:200],
        request_type=str(data.get("request_type") or ""),
        fields=dict(data["fields"]) if isinstance(data.get("fields"), dict) else {},
    )
    for item in data.get("attachments") or []:
        try:
            content = base64.b64decode(item["content_base64"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ParseError(f"attachment {item.get('filename', '?')!r} is not valid base64: {exc}") from None
        parsed.attachments.append(Attachment(str(item.get("filename") or "upload"),
                                             str(item.get("content_type") or ""), content))
    return parsed


def parse_file(raw: bytes, filename: str) -> Parsed:
    if not raw:
        raise ParseError(f"{filename} is empty")
    return Parsed(subject=f"Scanned document {filename}"[:300], attachments=[Attachment(filename, "", raw)])


def parse(raw: bytes, fmt: str, meta: dict[str, Any]) -> Parsed:
    if fmt == "json":
        return parse_json(raw)
    if fmt == "file":
        return parse_file(raw, str(meta.get("filename") or "document"))
    return parse_mime(raw)


def message_id_of(raw: bytes) -> str:
    """The Message-ID header's id, read before parsing (a channel's idempotency hint), else ""."""
    header = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    # Only the Message-ID header itself (with folded continuation lines): the first
    # <...> of the header block is usually the From address, shared by all its mail.
    found = MESSAGE_ID_RE.search(header)
    ids = ID_RE.findall(found.group(1).decode("ascii", "replace")) if found else []
    return ids[0] if ids else ""
