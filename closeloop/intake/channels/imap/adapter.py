"""IMAP mailboxes an admin connects: IDLE where offered, else polling at most every 30 s.

Idempotency has two keys. Within one UIDVALIDITY, `last_uid` says what was fetched and
the row's external id `imap:<mailbox>:<uidvalidity>:<uid>` makes a refetch a no-op. When
the server renumbers the folder (UIDVALIDITY changes), every message is seen again: bytes
already received are then marked processed on the server without being stored twice
(a Message-ID alone is not enough: scanners and gateways reuse them).

Loop per mailbox (`MailboxRunner.run`):
1. connect (TLS, STARTTLS or plain), log in, select the folder;
2. fetch every UID above `last_uid`, receive and process each, flag or move it, advance `last_uid`
   (a message the server fails to hand over, flag or move is recorded for staff and skipped; one
   over which the connection is lost `LOSSES_BEFORE_SKIP` times in a row likewise, after reading
   what it can of it in pieces);
3. fetch again, on a connection of their own, the skipped messages that are due (`skipped.py`);
4. wait: IDLE until the server reports news (at most `poll_seconds`), else sleep `poll_seconds`;
5. on any connection error, record it on the mailbox, back off (1 s doubling to 30 s), go to 1.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import imaplib
import logging
import os
import ssl
import threading
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from imapclient import IMAPClient

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.parse import message_id_of
from closeloop.intake.pipeline import process, receive

from . import skipped
from .skipped import ConnectionLost, MessageFailed, refused

log = logging.getLogger(__name__)
CHANNEL = "imap"
MAX_WAIT_SECONDS = 30
MAX_SKIPS_PER_POLL = 20
LOSSES_BEFORE_SKIP = 3  # connections lost in a row over one UID before it counts as a poison message
SALVAGE_CHUNK = 64 * 1024  # a poison message is read in pieces this big: every whole piece is kept


class MailboxConfigError(Exception):
    """The mailbox cannot be used as configured (no password, unknown folder…)."""


def password(mailbox: Mailbox) -> str:
    if mailbox.password_file:
        try:
            return Path(mailbox.password_file).read_text().strip()
        except OSError as exc:
            raise MailboxConfigError(f"cannot read the password file {mailbox.password_file}: {exc}") from None
    if mailbox.password_env and os.environ.get(mailbox.password_env):
        return os.environ[mailbox.password_env]
    raise MailboxConfigError(f"mailbox {mailbox.name}: set {mailbox.password_env or 'a password variable'} "
                             "or a password file")


def connect(mailbox: Mailbox, timeout: float = 30) -> IMAPClient:
    context = ssl.create_default_context()
    client = IMAPClient(mailbox.host, port=mailbox.port, ssl=mailbox.security == Mailbox.Security.TLS,
                        ssl_context=context, timeout=timeout)
    try:
        if mailbox.security == Mailbox.Security.STARTTLS:
            client.starttls(context)
        client.login(mailbox.username, password(mailbox))
    except Exception:
        _close(client)
        raise
    return client


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone
        log.debug("IMAP logout failed", exc_info=True)


def _select(client: IMAPClient, mailbox: Mailbox) -> int:
    status = client.select_folder(mailbox.folder)
    uidvalidity = int(status[b"UIDVALIDITY"])
    if mailbox.uidvalidity != uidvalidity:
        if mailbox.uidvalidity is not None:
            log.warning("mailbox %s: UIDVALIDITY changed %s → %s; rescanning by Message-ID",
                        mailbox.name, mailbox.uidvalidity, uidvalidity)
            skipped.renumbered(mailbox, mailbox.uidvalidity, uidvalidity)
        mailbox.uidvalidity, mailbox.last_uid = uidvalidity, 0
        Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=uidvalidity, last_uid=0)
    return uidvalidity


def fetch_new(client: IMAPClient, mailbox: Mailbox) -> int:
    """Step 2: receive every message above `last_uid`; returns how many were stored.

    A message the server cannot hand over (or flag, or move) is recorded for staff and
    skipped: `last_uid` moves past it either way, so one bad message never holds up the rest.
    """
    uidvalidity = _select(client, mailbox)
    uids = sorted(u for u in client.search(["UID", f"{mailbox.last_uid + 1}:*"]) if u > mailbox.last_uid)
    stored = 0
    for uid in uids:
        try:
            stored += _step(client, mailbox, uidvalidity, uid)
        except (MessageFailed, ConnectionLost) as failed:  # the connection is gone: count what this look stored
            failed.stored += stored
            raise
    Mailbox.objects.filter(pk=mailbox.pk).update(last_checked_at=timezone.now(), last_error="")
    return stored


def _step(client: IMAPClient, mailbox: Mailbox, uidvalidity: int, uid: int) -> int:
    try:
        stored = _one(client, mailbox, uidvalidity, uid)
    except MessageFailed as failed:
        skipped.record(mailbox, uidvalidity, uid, failed.reason)
        _advance(mailbox, uid)
        if failed.connection_lost:
            raise
        return failed.stored
    except ConnectionLost as lost:
        if _count_loss(mailbox, uidvalidity, uid) < LOSSES_BEFORE_SKIP:
            raise  # maybe the network's: the runner reconnects (with back-off) and fetches it again
        poison = _poisoned(mailbox, uidvalidity, uid, lost)  # recorded (or stored) before last_uid moves past it
        _advance(mailbox, uid)
        _forget_losses(mailbox)
        poison.stored += lost.stored
        raise poison from lost
    _advance(mailbox, uid)
    if mailbox.lost_at:
        _forget_losses(mailbox)
    return stored


def _count_loss(mailbox: Mailbox, uidvalidity: int, uid: int) -> int:
    """One more lost connection over this UID; how many in a row (kept in the database: a restart keeps count)."""
    key = f"{uidvalidity}:{uid}"
    mailbox.lost_count = mailbox.lost_count + 1 if mailbox.lost_at == key else 1
    mailbox.lost_at = key
    Mailbox.objects.filter(pk=mailbox.pk).update(lost_at=key, lost_count=mailbox.lost_count)
    log.warning("mailbox %s: connection lost over UID %s (%s in a row)", mailbox.name, uid, mailbox.lost_count)
    return mailbox.lost_count


def _forget_losses(mailbox: Mailbox) -> None:
    mailbox.lost_at, mailbox.lost_count = "", 0
    Mailbox.objects.filter(pk=mailbox.pk).update(lost_at="", lost_count=0)


def _poisoned(mailbox: Mailbox, uidvalidity: int, uid: int, lost: ConnectionLost) -> MessageFailed:
    """The connection died over this UID `LOSSES_BEFORE_SKIP` times in a row: read what the server
    hands over in pieces, on a connection of its own. All of it: stored and processed as usual;
    a part: kept on the message's quarantine entry, and the mailbox tries the whole again later."""
    client, partial = _pieces(mailbox, uidvalidity, uid)
    try:
        if client is not None:  # all of it arrived
            try:
                stored = _keep(client, mailbox, uidvalidity, uid, partial, retrying=False)
            except MessageFailed as failed:  # stored, but the flag or move failed: recorded as usual
                skipped.record(mailbox, uidvalidity, uid, failed.reason)
                return failed
            done = MessageFailed("was read in pieces", connection_lost=True)  # the first connection is gone
            done.stored = stored
            return done
    finally:
        if client is not None:
            _close(client)
    kept = (f"; {len(partial):,} bytes of it arrived before that and are kept with this entry" if partial
            else "; nothing of it arrived")
    reason = f"{lost.what}: the connection to the server was lost {LOSSES_BEFORE_SKIP} times in a row over it " \
             f"(last: {_words(lost)}){kept}"
    skipped.record(mailbox, uidvalidity, uid, reason, partial)
    return MessageFailed(reason, connection_lost=True)


def _words(lost: ConnectionLost) -> str:
    return str(lost).rsplit("(", 1)[-1].rstrip(")")


def _pieces(mailbox: Mailbox, uidvalidity: int, uid: int) -> tuple[IMAPClient | None, bytes]:
    """Fetch the message `SALVAGE_CHUNK` bytes at a time: (the open client, every byte) when all of
    it arrived, else (None, the whole pieces that arrived before the connection failed)."""
    kept, limit = bytearray(), settings.CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES
    try:
        client = connect(mailbox)
    except Exception:  # the runner's own reconnect says what is wrong with the server
        log.info("mailbox %s: could not connect to read UID %s in pieces", mailbox.name, uid, exc_info=True)
        return None, b""
    try:
        if _select(client, mailbox) == uidvalidity:
            while len(kept) <= limit:
                data = client.fetch([uid], [f"BODY.PEEK[]<{len(kept)}.{SALVAGE_CHUNK}>"]).get(uid, {})
                part = next((bytes(v) for k, v in data.items() if k.startswith(b"BODY[]") and v is not None), b"")
                kept += part
                if len(part) < SALVAGE_CHUNK:
                    return client, bytes(kept)
    except (imaplib.IMAP4.error, OSError) as exc:
        log.info("mailbox %s: reading UID %s in pieces stopped after %s bytes: %s", mailbox.name, uid, len(kept), exc)
    _close(client)
    return None, bytes(kept)


def _advance(mailbox: Mailbox, uid: int) -> None:
    mailbox.last_uid = uid
    Mailbox.objects.filter(pk=mailbox.pk).update(last_uid=uid)


def _one(client: IMAPClient, mailbox: Mailbox, uidvalidity: int, uid: int, *, retrying: bool = False) -> int:
    """Fetch, store and process one message, then flag or move it; 1 if it was stored now."""
    with refused("could not be fetched", uid):
        body = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
    if body is None:  # expunged by someone else meanwhile
        if retrying:
            raise MessageFailed("is no longer in the folder (deleted or moved by someone else); nothing of it "
                                "was stored", connection_lost=False)
        return 0
    return _keep(client, mailbox, uidvalidity, uid, bytes(body), retrying=retrying)


def _keep(client: IMAPClient, mailbox: Mailbox, uidvalidity: int, uid: int, raw: bytes, *, retrying: bool) -> int:
    """Store and process one fetched message, then flag or move it; 1 if it was stored now."""
    # Known: these very bytes were received before (a rescan after a UIDVALIDITY change, or a
    # retry after the flag or move failed). A Message-ID alone is no proof: a different
    # message reusing one is a new input.
    row = InboundMessage.objects.filter(sha256=hashlib.sha256(raw).hexdigest()).exclude(
        external_id__startswith=skipped.PREFIX).order_by("id").first()
    stored = 0
    if row is None:
        row, created = receive(Inbound(
            channel=CHANNEL, raw=raw, external_id=f"imap:{mailbox.pk}:{uidvalidity}:{uid}",
            message_id=message_id_of(raw), meta={**_route(mailbox), "mailbox": mailbox.pk, "uid": uid},
        ))
        if created:
            process(row)
            row.refresh_from_db(fields=["case"])
            stored = 1
    where = f"moved to {mailbox.move_to}" if _moves(mailbox) else "marked as seen"
    try:
        with refused(f"was stored but could not be {where}", uid):
            _after(client, mailbox, uid)
    except (MessageFailed, ConnectionLost) as failed:
        failed.stored = stored
        raise
    if retrying:
        skipped.read_at_last(mailbox, uidvalidity, uid, row)
    return stored


def _route(mailbox: Mailbox) -> dict[str, str]:
    route = {}
    if mailbox.request_type_id:
        route["request_type"] = mailbox.request_type.slug  # type: ignore[union-attr]
    if mailbox.team_id:
        route["team"] = mailbox.team.slug  # type: ignore[union-attr]
    return route


def _moves(mailbox: Mailbox) -> bool:
    return mailbox.after_processing == Mailbox.AfterProcessing.MOVE and bool(mailbox.move_to)


def _after(client: IMAPClient, mailbox: Mailbox, uid: int) -> None:
    """Flag or move the message the way the admin chose; stored mail is safe either way."""
    if _moves(mailbox):
        if not client.folder_exists(mailbox.move_to):
            client.create_folder(mailbox.move_to)
        if client.has_capability("MOVE"):
            client.move([uid], mailbox.move_to)
        else:
            client.copy([uid], mailbox.move_to)
            client.delete_messages([uid])
            client.uid_expunge([uid]) if client.has_capability("UIDPLUS") else client.expunge()
    else:
        client.add_flags([uid], [b"\\Seen"])


def poll_once(mailbox: Mailbox, now: datetime | None = None) -> int:
    """One look at the mailbox: new messages, then the skipped ones that are due again."""
    stored = 0
    for _attempt in range(MAX_SKIPS_PER_POLL):
        client = connect(mailbox)
        try:
            stored += fetch_new(client, mailbox)
            break
        except MessageFailed as failed:  # that message took the connection down; it is recorded: go on
            stored += failed.stored
        finally:
            _close(client)
    return stored + retry_skipped(mailbox, now)


def retry_skipped(mailbox: Mailbox, now: datetime | None = None) -> int:
    """Fetch again the skipped messages whose next try is due, on a connection of their own
    (a message that breaks the connection must not break the mailbox's); returns how many were stored."""
    due, before = skipped.due(mailbox, now or timezone.now()), mailbox.uidvalidity
    if not due:
        return 0
    stored = 0
    client = connect(mailbox)
    try:
        uidvalidity = _select(client, mailbox)
        for uid in due if uidvalidity == before else []:  # renumbered: the rescan fetches everything anew
            try:
                stored += _one(client, mailbox, uidvalidity, uid, retrying=True)
            except MessageFailed as failed:
                skipped.record(mailbox, uidvalidity, uid, failed.reason)
                stored += failed.stored
                if failed.connection_lost:
                    break
            except ConnectionLost as lost:  # a message skipped already: its own try, counted on its entry
                skipped.record(mailbox, uidvalidity, uid,
                               f"{lost.what}: the connection to the server was lost ({_words(lost)})")
                stored += lost.stored
                break
    finally:
        _close(client)
    return stored


def describe(exc: Exception) -> str:
    """The error as staff read it: imapclient gives the server's words as a bytes literal."""
    text = str(exc)
    if text[:2] in ("b'", 'b"'):
        with contextlib.suppress(ValueError, SyntaxError):
            text = ast.literal_eval(text).decode("utf-8", "replace")
    return f"{type(exc).__name__}: {text}"


class MailboxRunner:
    """One mailbox's connection loop, resilient to server restarts."""

    def __init__(self, mailbox_id: int, *, max_backoff: float = 30) -> None:
        self.mailbox_id, self.max_backoff = mailbox_id, max_backoff

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                self._session(stop)
                backoff = 1.0
            except MessageFailed as failed:  # one message took the connection down; it is recorded
                log.info("mailbox %s: %s; reconnecting", self.mailbox_id, failed.reason)
            except Exception as exc:  # noqa: BLE001  # any failure: record, back off, reconnect
                log.warning("mailbox %s: %s; reconnecting in %.0f s", self.mailbox_id, exc, backoff)
                Mailbox.objects.filter(pk=self.mailbox_id).update(last_error=describe(exc)[:2000])
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                close_old_connections()

    def _session(self, stop: threading.Event) -> None:
        mailbox = Mailbox.objects.select_related("request_type", "team").get(pk=self.mailbox_id)
        if not mailbox.is_active:
            stop.wait(MAX_WAIT_SECONDS)
            return
        client = connect(mailbox)
        try:
            idle = client.has_capability("IDLE")
            wait = min(mailbox.poll_seconds or MAX_WAIT_SECONDS, MAX_WAIT_SECONDS)
            while not stop.is_set():
                fetch_new(client, mailbox)
                retry_skipped(mailbox)
                close_old_connections()
                if idle:
                    client.idle()
                    try:
                        client.idle_check(timeout=wait)
                    finally:
                        client.idle_done()
                else:
                    stop.wait(wait)
                    client.noop()
        finally:
            _close(client)


def service(stop: threading.Event) -> None:
    """Worker service: one thread per active mailbox; new mailboxes are picked up within a minute."""
    running: dict[int, threading.Thread] = {}
    while not stop.is_set():
        for pk in Mailbox.objects.filter(is_active=True).values_list("pk", flat=True):
            if pk not in running or not running[pk].is_alive():
                thread = threading.Thread(target=MailboxRunner(pk).run, args=(stop,), name=f"imap-{pk}", daemon=True)
                thread.start()
                running[pk] = thread
        close_old_connections()
        stop.wait(60)
