"""Messages a mailbox skipped because the server would not hand them over, flag or move them.

One bad message must not hold up a mailbox: it is recorded as one quarantine entry
(external id `unreadable:imap:<mailbox>:<uidvalidity>:<uid>`, the reason in its error),
`last_uid` moves past it, and the mailbox fetches it again by itself at growing intervals
(1 minute doubling to 1 hour, at most `DUE_BATCH` a pass). When it finally comes in, the
message gets its own row as usual and the entry points at the message's case
(`duplicate`, result `read_later`), as the watched folder does with a file it could not read.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

from django.utils import timezone

from closeloop.intake.inbound import Inbound, store_raw
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.pipeline import CLAIM_SECONDS, quarantine, receive

log = logging.getLogger(__name__)
CHANNEL = "imap"
PREFIX = "unreadable:"
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
DUE_BATCH = 20
CANDIDATES = 200
Status = InboundMessage.Status


class MessageFailed(Exception):
    """The server refused one message (or dropped the connection over it: `connection_lost`)."""

    def __init__(self, reason: str, *, connection_lost: bool) -> None:
        super().__init__(reason)
        self.reason, self.connection_lost = reason, connection_lost
        self.stored = 0  # 1 when the message was stored before the failing flag or move


class ConnectionLost(Exception):
    """The connection ended while one message was being fetched, flagged or moved, without the
    server saying why (the stream ended without BYE, was reset, or timed out). Once it may be the
    network's; the same UID again and again is a message that kills the server (`adapter.LOSSES_BEFORE_SKIP`)."""

    def __init__(self, uid: int, what: str, error: Exception) -> None:
        super().__init__(f"message UID {uid} {what}: the connection was lost ({_server_words(error)})")
        self.uid, self.what, self.error = uid, what, error
        self.stored = 0


@contextmanager
def refused(what: str, uid: int) -> Iterator[None]:
    """Turn the server's answer to one message's command into `MessageFailed` or `ConnectionLost`.

    A NO or BAD (`IMAP4.error`) or a BYE in reply (`IMAP4.abort` with the server's words)
    is about this message. A socket error (the stream ended without BYE, a reset, a timeout:
    imaplib says "socket error", or lets the `OSError` through) is `ConnectionLost`: the
    adapter counts it against this UID and tries again, and skips the message only when it
    keeps happening.
    """
    try:
        yield
    except imaplib.IMAP4.abort as exc:
        if "socket error" in str(exc):
            raise ConnectionLost(uid, what, exc) from exc
        raise MessageFailed(f"{what} ({_server_words(exc)})", connection_lost=True) from exc
    except imaplib.IMAP4.error as exc:
        raise MessageFailed(f"{what} ({_server_words(exc)})", connection_lost=False) from exc
    except OSError as exc:
        raise ConnectionLost(uid, what, exc) from exc


def _server_words(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.split(" => ", 1)[-1] if text.startswith("command:") else text


def external_id(mailbox: Mailbox, uidvalidity: int, uid: int) -> str:
    return f"{PREFIX}{CHANNEL}:{mailbox.pk}:{uidvalidity}:{uid}"


def record(mailbox: Mailbox, uidvalidity: int, uid: int, reason: str, partial: bytes = b"") -> None:
    """One quarantine entry per skipped message, kept up to date at every try; `partial` is what
    arrived of it before the connection was lost (the most any try received is kept)."""
    error = (f"Message UID {uid} in mailbox {mailbox.name} {reason}. It was skipped so the rest of the mailbox "
             "comes in; the mailbox fetches it again by itself (at least hourly) until it succeeds")
    row, created = receive(Inbound(channel=CHANNEL, raw=partial, external_id=external_id(mailbox, uidvalidity, uid),
                                   sender=_sender(partial), meta={"mailbox": mailbox.pk, "uid": uid,
                                                                  "unreadable": error}),
                           claimed_until=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
    if row.status == Status.DISMISSED:  # staff saw it and said there is nothing to do
        return
    if created:
        log.warning("mailbox %s: %s", mailbox.name, error)
    elif len(partial) > row.size:
        digest = hashlib.sha256(partial).hexdigest()
        row.sha256, row.size, row.raw_path = digest, len(partial), store_raw(partial, digest)
        row.sender = _sender(partial)
        InboundMessage.objects.filter(pk=row.pk).update(sha256=row.sha256, size=row.size, raw_path=row.raw_path)
    row.subject = f"Message UID {uid} in mailbox {mailbox.name}"[:300]
    row.meta = {**row.meta, "unreadable": error}
    tries = 1 if created else min(row.attempts + 1, 1000)
    InboundMessage.objects.filter(pk=row.pk).update(meta=row.meta, attempts=tries)
    quarantine(row, error)  # also stamps processed_at: the time of this try


def _sender(partial: bytes) -> str:
    """The From address of what arrived of a message, so staff can tell whose it was."""
    if not partial:
        return ""
    headers = BytesHeaderParser(policy=compat32).parsebytes(partial[:65536])
    return parseaddr(str(headers.get("From", "")))[1].strip().lower()[:300]


def due(mailbox: Mailbox, now: datetime) -> list[int]:
    """The skipped UIDs (of the current UIDVALIDITY) whose next try has come, least recently tried first."""
    if mailbox.uidvalidity is None:
        return []
    prefix = f"{PREFIX}{CHANNEL}:{mailbox.pk}:{mailbox.uidvalidity}:"
    rows = (InboundMessage.objects.filter(channel=CHANNEL, status=Status.QUARANTINED, external_id__startswith=prefix)
            .order_by("processed_at", "id").values_list("external_id", "attempts", "processed_at")[:CANDIDATES])
    uids = []
    for ext, attempts, tried_at in rows:
        wait = min(FIRST_RETRY_SECONDS * 2 ** max(min(attempts, 20) - 1, 0), MAX_RETRY_SECONDS)
        if tried_at is None or tried_at <= now - timedelta(seconds=wait):
            uids.append(int(ext.rsplit(":", 1)[1]))
    return uids[:DUE_BATCH]


def read_at_last(mailbox: Mailbox, uidvalidity: int, uid: int, taken: InboundMessage) -> None:
    """A skipped message came in: its quarantine entry points at what it became."""
    InboundMessage.objects.filter(channel=CHANNEL, external_id=external_id(mailbox, uidvalidity, uid),
                                  status=Status.QUARANTINED).update(
        status=Status.DUPLICATE, result="read_later", case=taken.case_id, error="", processed_at=timezone.now())


def renumbered(mailbox: Mailbox, old: int, new: int) -> None:
    """The server renumbered the folder: the rescan fetches every message anew (and records any
    that still fail under its new UID), so the old UIDs' entries are closed."""
    prefix = f"{PREFIX}{CHANNEL}:{mailbox.pk}:{old}:"
    stale = InboundMessage.objects.filter(channel=CHANNEL, status=Status.QUARANTINED, external_id__startswith=prefix)
    for row in stale:
        row.meta = {**row.meta, "closed": f"UIDVALIDITY changed {old} → {new}; the message was fetched again anew"}
        InboundMessage.objects.filter(pk=row.pk, status=Status.QUARANTINED).update(
            status=Status.DUPLICATE, result="renumbered", error="", meta=row.meta, processed_at=timezone.now())
