"""IMAP mailboxes an admin connects: IDLE where offered, else polling at most every 30 s.

Idempotency has two keys. Within one UIDVALIDITY, `last_uid` says what was fetched and
the row's external id `imap:<mailbox>:<uidvalidity>:<uid>` makes a refetch a no-op. When
the server renumbers the folder (UIDVALIDITY changes), every message is seen again: bytes
already received are then marked processed on the server without being stored twice
(a Message-ID alone is not enough: scanners and gateways reuse them).

Loop per mailbox (`MailboxRunner.run`):
1. connect (TLS, STARTTLS or plain), log in, select the folder;
2. fetch every UID above `last_uid`, receive and process each, flag or move it, advance `last_uid`;
3. wait: IDLE until the server reports news (at most `poll_seconds`), else sleep `poll_seconds`;
4. on any connection error, record it on the mailbox, back off (1 s doubling to 30 s), go to 1.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
from pathlib import Path
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from imapclient import IMAPClient

from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage, Mailbox
from closeloop.intake.parse import ID_RE
from closeloop.intake.pipeline import process, receive

log = logging.getLogger(__name__)
CHANNEL = "imap"
MAX_WAIT_SECONDS = 30
FETCH_BATCH = 50


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
        mailbox.uidvalidity, mailbox.last_uid = uidvalidity, 0
        Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=uidvalidity, last_uid=0)
    return uidvalidity


def fetch_new(client: IMAPClient, mailbox: Mailbox) -> int:
    """Steps 2: receive every message above `last_uid`; returns how many were stored."""
    uidvalidity = _select(client, mailbox)
    uids = sorted(u for u in client.search(["UID", f"{mailbox.last_uid + 1}:*"]) if u > mailbox.last_uid)
    stored = 0
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start:start + FETCH_BATCH]
        headers = client.fetch(batch, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        for uid in batch:
            stored += _one(client, mailbox, uidvalidity, uid, headers.get(uid, {}))
    Mailbox.objects.filter(pk=mailbox.pk).update(last_checked_at=timezone.now(), last_error="")
    return stored


def _one(client: IMAPClient, mailbox: Mailbox, uidvalidity: int, uid: int, header: dict[bytes, Any]) -> int:
    raw_header = next((v for k, v in header.items() if k.startswith(b"BODY[HEADER")), b"") or b""
    ids = ID_RE.findall(raw_header.decode("ascii", "replace"))
    message_id = ids[0] if ids else ""
    stored = 0
    body = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
    if body is None:  # expunged by someone else meanwhile
        return 0
    # Known: these very bytes were received before (a rescan after a UIDVALIDITY change). A
    # Message-ID alone is no proof: a different message reusing one is a new input.
    known = InboundMessage.objects.filter(sha256=hashlib.sha256(bytes(body)).hexdigest()).exists()
    if not known:
        row, created = receive(Inbound(
            channel=CHANNEL, raw=bytes(body), external_id=f"imap:{mailbox.pk}:{uidvalidity}:{uid}",
            message_id=message_id, meta={**_route(mailbox), "mailbox": mailbox.pk, "uid": uid},
        ))
        if created:
            process(row)
            stored = 1
    _after(client, mailbox, uid)
    mailbox.last_uid = uid
    Mailbox.objects.filter(pk=mailbox.pk).update(last_uid=uid)
    return stored


def _route(mailbox: Mailbox) -> dict[str, str]:
    route = {}
    if mailbox.request_type_id:
        route["request_type"] = mailbox.request_type.slug  # type: ignore[union-attr]
    if mailbox.team_id:
        route["team"] = mailbox.team.slug  # type: ignore[union-attr]
    return route


def _after(client: IMAPClient, mailbox: Mailbox, uid: int) -> None:
    """Flag or move the message the way the admin chose; stored mail is safe either way."""
    if mailbox.after_processing == Mailbox.AfterProcessing.MOVE and mailbox.move_to:
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


def poll_once(mailbox: Mailbox) -> int:
    client = connect(mailbox)
    try:
        return fetch_new(client, mailbox)
    finally:
        _close(client)


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
            except Exception as exc:  # noqa: BLE001  # any failure: record, back off, reconnect
                log.warning("mailbox %s: %s; reconnecting in %.0f s", self.mailbox_id, exc, backoff)
                Mailbox.objects.filter(pk=self.mailbox_id).update(last_error=f"{type(exc).__name__}: {exc}"[:2000])
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
