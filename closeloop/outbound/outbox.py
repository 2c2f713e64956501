"""The outbox: enqueue in the caller's transaction, deliver from a worker.

Delivery loop (`deliver_due`):
1. claim the earliest due pending rows (and `sending` rows whose claim expired: their
   worker died) by compare-and-set on (status, claimed_until), in one statement; a row
   another worker holds is skipped;
2. hand them to SMTP with their fixed Message-IDs, over several sessions at once
   (`CLOSELOOP_OUTBOX_CONNECTIONS`);
3. record accepted ones as sent in small bounded groups; a refusal or an error goes to
   `retries.py`: retried with capped backoff while it may pass (4xx, our server down), failed
   with a `mail_failed` event on the case when it cannot (5xx) or the retry time ran out;
4. after a batch that sent something, re-queue what failed while our server was down; when
   idle, now and then try one such message again to see whether the server answers.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import smtplib
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formatdate, make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from closeloop import bulk
from closeloop.cases.models import Case, Message

from . import retries
from .models import OutboxMessage

log = logging.getLogger(__name__)
CLAIM_SECONDS = 120
BACKOFF_BASE_SECONDS = retries.BACKOFF_BASE_SECONDS


def new_message_id() -> str:
    return make_msgid(idstring=uuid.uuid4().hex[:12], domain=settings.CLOSELOOP_MAIL_DOMAIN)


def thread_headers(case: Case) -> tuple[str, str]:
    """In-Reply-To and References so the requester's mail client threads our messages."""
    # Every queued message also has a cases.Message row with its Message-ID, so one query
    # over the conversation sees inbound and outbound alike.
    ids = list(
        Message.objects.filter(case=case).exclude(message_id="").order_by("-created_at", "-id")
        .values_list("message_id", flat=True)[:10]
    )[::-1]
    return (ids[-1] if ids else ""), " ".join(ids)


def enqueue(*, case: Case | None, purpose: str, to: Iterable[str], subject: str, body: str, sequence: int = 0,
            now: datetime | None = None, message: Message | None = None, headers: dict[str, str] | None = None,
            key: str | None = None, thread: tuple[str, str] | None = None) -> OutboxMessage:
    """Queue one message; the same (case, purpose, sequence) queues it only once.

    `thread` is (In-Reply-To, References) when the caller already knows them (intake,
    for a case it opened a moment ago); otherwise they are read from the case.
    """
    now = now or timezone.now()
    key = key or f"{case.pk if case else '-'}:{purpose}:{sequence}"
    in_reply_to, references = thread or (thread_headers(case) if case else ("", ""))
    if case is not None and "Reply-To" not in (headers or {}):
        from closeloop.intake.reply import reply_address

        # A signed address: a reply joins the case even when its headers are stripped.
        headers = {**(headers or {}), "Reply-To": reply_address(case.pk)}
    message_id = new_message_id()
    row, created = _insert_once(OutboxMessage(
        idempotency_key=key, case=case, case_message=message, purpose=purpose, message_id=message_id,
        in_reply_to=in_reply_to, references=references, from_email=settings.DEFAULT_FROM_EMAIL, to=list(to),
        subject=subject[:300], body=body, headers=headers or {}, due_at=now, created_at=now,
    ))
    if created and message is not None:
        Message.objects.filter(pk=message.pk).update(message_id=row.message_id)
    elif created and case is not None:
        Message.objects.create(
            case=case, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED, purpose=purpose,
            channel="email", recipients=list(to), subject=subject[:300], body=body, message_id=row.message_id,
            created_at=now,
        )
    return row


def _insert_once(row: OutboxMessage) -> tuple[OutboxMessage, bool]:
    """`get_or_create` on the idempotency key, insert first: a new key (the common case) costs
    one INSERT, not a SELECT and an INSERT; a key already queued costs a rolled-back savepoint."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
        return row, True
    except IntegrityError:
        try:
            return OutboxMessage.objects.get(idempotency_key=row.idempotency_key), False
        except OutboxMessage.DoesNotExist:
            pass
        raise  # another constraint failed: as `get_or_create` does, the error stands


@dataclass(frozen=True)
class Outgoing:
    """One message for `enqueue_many`; `key` is its idempotency key."""

    case: Case | None
    purpose: str
    to: list[str]
    subject: str
    body: str
    key: str


def _thread_headers_many(cases: Sequence[Case]) -> dict[int, tuple[str, str]]:
    """`thread_headers` for many cases in one query."""
    ids: dict[int, list[str]] = defaultdict(list)
    rows = (Message.objects.filter(case_id__in=[c.pk for c in cases]).exclude(message_id="")
            .order_by("case_id", "-created_at", "-id").values_list("case_id", "message_id"))
    for case_id, message_id in rows:
        if len(ids[case_id]) < 10:
            ids[case_id].append(message_id)
    return {pk: (found[0], " ".join(found[::-1])) for pk, found in ids.items()}


def enqueue_many(items: Sequence[Outgoing], *, now: datetime | None = None) -> list[OutboxMessage]:
    """`enqueue` for many messages in a fixed number of queries, in the caller's transaction.

    A key already queued (or repeated in `items`) queues nothing again. Each message to a
    case also gets its `cases.Message` row. Returns the rows queued now."""
    now = now or timezone.now()
    fresh: dict[str, Outgoing] = {}
    for item in items:
        fresh.setdefault(item.key, item)  # the first of each key
    if not fresh:
        return []
    threads = _thread_headers_many([i.case for i in fresh.values() if i.case is not None])
    rows = []
    for item in fresh.values():
        in_reply_to, references = threads.get(item.case.pk, ("", "")) if item.case else ("", "")
        rows.append(OutboxMessage(
            case=item.case, purpose=item.purpose, idempotency_key=item.key, message_id=new_message_id(),
            in_reply_to=in_reply_to, references=references, from_email=settings.DEFAULT_FROM_EMAIL, to=list(item.to),
            subject=item.subject[:300], body=item.body, headers={}, due_at=now, created_at=now))
    rows = _insert_new(rows)
    Message.objects.bulk_create([
        Message(case=row.case, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED,
                purpose=row.purpose, channel="email", recipients=row.to, subject=row.subject, body=row.body,
                message_id=row.message_id, created_at=now)
        for row in rows if row.case is not None])
    return rows


def _insert_new(rows: list[OutboxMessage]) -> list[OutboxMessage]:
    """Insert the rows whose idempotency key is not queued yet; returns those, with their ids.

    One statement per batch (`ON CONFLICT (idempotency_key) DO NOTHING … RETURNING`), so a
    key needs no look-up first, and a key that a concurrent transaction queues meanwhile is
    skipped once that one commits instead of failing the whole batch."""
    fields = [f for f in OutboxMessage._meta.concrete_fields if not f.primary_key]
    values = [[f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields] for row in rows]
    qn = connection.ops.quote_name
    head = (f"INSERT INTO {qn(OutboxMessage._meta.db_table)} ({', '.join(qn(str(f.column)) for f in fields)}) ")
    tail = f" ON CONFLICT ({qn('idempotency_key')}) DO NOTHING RETURNING {qn('id')}, {qn('idempotency_key')}"
    if connection.vendor == "postgresql":
        # one array per column (as Django's own bulk insert does there): a handful of parameters per batch
        casts = ", ".join(f"%s::{t}[]" for t in bulk.array_types(fields))
        batches = [(f"SELECT * FROM UNNEST({casts})", [list(column) for column in zip(*values, strict=True)])]  # noqa: S608 - types from the model
    else:
        marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
        batches = [("VALUES " + ", ".join([marks] * len(chunk)), [v for one in chunk for v in one])
                   for chunk in bulk.sqlite_chunks(values, len(fields))]
    inserted: dict[str, int] = {}
    with connection.cursor() as cursor:
        for source, params in batches:
            cursor.execute(head + source + tail, params)  # identifiers from the model, values as parameters
            inserted.update((key, pk) for pk, key in cursor.fetchall())
    for row in rows:
        row.pk = inserted.get(row.idempotency_key)
    return [row for row in rows if row.pk is not None]


def _claim(now: datetime, limit: int) -> list[OutboxMessage]:
    """Claim up to `limit` due rows in one statement (a compare-and-set on their status and
    claim): on PostgreSQL the pick skips rows another worker is claiming, on SQLite the single
    writer makes the statement atomic. Returns the claimed rows, earliest due first."""
    qn, table = connection.ops.quote_name, connection.ops.quote_name(OutboxMessage._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    ready = (f"(({qn('status')} = %s AND {qn('due_at')} <= %s) OR "
             f"({qn('status')} = %s AND {qn('claimed_until')} < %s))")
    pending, sending = OutboxMessage.Status.PENDING.value, OutboxMessage.Status.SENDING.value
    # Identifiers come from the model, every value is a parameter.
    sql = (f"UPDATE {table} SET {qn('status')} = %s, {qn('claimed_until')} = %s, "  # noqa: S608
           f"{qn('attempts')} = {qn('attempts')} + 1 WHERE {qn('id')} IN (SELECT {qn('id')} FROM {table} "
           f"WHERE {ready} ORDER BY {qn('due_at')}, {qn('id')} LIMIT %s{lock}) AND {ready} RETURNING {qn('id')}")
    field = OutboxMessage._meta.get_field("due_at")
    at = field.get_db_prep_save(now, connection)
    until = field.get_db_prep_save(now + timedelta(seconds=CLAIM_SECONDS), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [sending, until, pending, at, sending, at, limit, pending, at, sending, at])
        ids = [pk for (pk,) in cursor.fetchall()]
    return list(OutboxMessage.objects.filter(pk__in=ids).order_by("due_at", "id")) if ids else []


def build_email(row: OutboxMessage, connection: object | None = None) -> EmailMessage:
    headers = {"Message-ID": row.message_id, "Date": formatdate(localtime=False), "Auto-Submitted": "auto-generated"
               if row.purpose not in ("reply", "missing_info", "outcome") else "no", **row.headers}
    if row.in_reply_to:
        headers["In-Reply-To"] = row.in_reply_to
        headers["References"] = row.references
    return EmailMessage(subject=row.subject, body=row.body, from_email=row.from_email, to=row.to,
                        headers=headers, connection=connection)  # type: ignore[arg-type]


def max_unrecorded() -> int:
    """The most messages a worker killed mid-delivery can have had accepted without recording them."""
    connections = settings.CLOSELOOP_OUTBOX_CONNECTIONS
    return settings.CLOSELOOP_OUTBOX_MARK_GROUP + (2 * connections if connections > 1 else 0)


def deliver_due(limit: int = 100, now: datetime | None = None) -> int:
    """Send up to `limit` due messages; returns how many the SMTP server accepted.

    The claimed rows are shared out over `CLOSELOOP_OUTBOX_CONNECTIONS` SMTP sessions, each
    in its own thread (the threads only talk SMTP; this thread does every database write).
    Accepted messages are recorded as sent in groups of at most `CLOSELOOP_OUTBOX_MARK_GROUP`
    rows or `CLOSELOOP_OUTBOX_MARK_MS` milliseconds, so a worker killed mid-batch resends at
    most `MARK_GROUP + 2 × CONNECTIONS` messages (`max_unrecorded()`), each with its fixed
    Message-ID; the rest of its claim is picked up by another worker when the claim runs out."""
    now = now or timezone.now()
    rows = _claim(now, limit)
    if not rows:
        retries.probe_after_outage(now)
        return 0
    sent = _deliver(rows)
    if sent:
        retries.requeue_after_outage(timezone.now())  # the server answers again: what failed while it was down goes
    return sent


def _deliver(rows: list[OutboxMessage]) -> int:
    lanes = min(settings.CLOSELOOP_OUTBOX_CONNECTIONS, len(rows))
    stop = threading.Event()
    if lanes == 1:
        return _record(_lane(rows, stop), stop)
    # Bounded: a lane waits while this thread records, so at most MARK_GROUP + 2 × lanes accepted
    # messages are ever unrecorded (the group, the queue, one more per lane).
    results: queue.Queue[tuple[OutboxMessage | None, Exception | None]] = queue.Queue(maxsize=lanes)
    threads = [threading.Thread(target=_lane_into, args=(rows[i::lanes], stop, results), daemon=True,
                                name=f"outbox-{i}") for i in range(lanes)]
    for thread in threads:
        thread.start()
    try:
        return _record(_gather(results, lanes), stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _lane(rows: Sequence[OutboxMessage], stop: threading.Event) -> Iterator[tuple[OutboxMessage, Exception | None]]:
    """One SMTP session sending `rows` in order: yields (row, None) when accepted, (row, error) otherwise."""
    smtp = get_connection(fail_silently=False)
    try:
        try:
            smtp.open()  # one session for the lane; a failed send reconnects for the next row
        except (OSError, smtplib.SMTPException):
            log.info("SMTP server unreachable; each message will retry", exc_info=True)
        for row in rows:
            if stop.is_set():
                return
            yield row, _send(row, smtp)
    finally:
        try:
            smtp.close()
        except Exception:
            log.debug("closing SMTP connection failed", exc_info=True)


def _lane_into(rows: Sequence[OutboxMessage], stop: threading.Event,
               results: queue.Queue[tuple[OutboxMessage | None, Exception | None]]) -> None:
    """A lane in its own thread; ends with (None, the error that stopped it, if any)."""
    error: Exception | None = None
    try:
        for outcome in _lane(rows, stop):
            _put(results, outcome, stop)
    except Exception as exc:  # noqa: BLE001 - a bug, not an SMTP refusal: re-raised by the recording thread
        error = exc
    finally:
        _put(results, (None, error), stop)


def _put(results: queue.Queue[tuple[OutboxMessage | None, Exception | None]],
         item: tuple[OutboxMessage | None, Exception | None], stop: threading.Event) -> None:
    """Hand an outcome to the recording thread, or drop it once that thread has stopped listening."""
    while not stop.is_set():
        try:
            results.put(item, timeout=0.05)
            return
        except queue.Full:
            continue


def _gather(results: queue.Queue[tuple[OutboxMessage | None, Exception | None]],
            lanes: int) -> Iterator[tuple[OutboxMessage, Exception | None] | None]:
    """The lanes' outcomes as they come; None now and then while none comes (time to record a group)."""
    done, first_error = 0, None
    wait = max(settings.CLOSELOOP_OUTBOX_MARK_MS, 1) / 1000
    while done < lanes:
        try:
            row, error = results.get(timeout=wait)
        except queue.Empty:
            yield None
            continue
        if row is None:
            done, first_error = done + 1, first_error or error
        else:
            yield row, error
    if first_error is not None:
        raise first_error


def _record(outcomes: Iterable[tuple[OutboxMessage, Exception | None] | None], stop: threading.Event) -> int:
    """Record the outcomes: accepted rows as sent in bounded groups, refusals and errors as failures."""
    accepted: list[OutboxMessage] = []
    since, sent = 0.0, 0
    group, wait = settings.CLOSELOOP_OUTBOX_MARK_GROUP, settings.CLOSELOOP_OUTBOX_MARK_MS / 1000
    try:
        for outcome in outcomes:
            if outcome is not None:
                row, error = outcome
                if isinstance(error, PartlyRefused):
                    _partly_refused(row, error)
                    error = None
                if error is None:
                    since = since if accepted else time.monotonic()
                    accepted.append(row)
                    sent += 1
                else:
                    retries.failed_with(row, error)
            if accepted and (len(accepted) >= group or time.monotonic() - since >= wait):
                _mark_sent(accepted, timezone.now())
                accepted = []
    except BaseException:
        stop.set()  # the lanes send nothing more; what they sent unrecorded is resent with its Message-ID
        raise
    if accepted:
        _mark_sent(accepted, timezone.now())
    return sent


class PartlyRefused(Exception):
    """The server took the message for some recipients and refused the others ({address: (code, reply)})."""

    def __init__(self, refused: dict[str, tuple[int, bytes]]) -> None:
        super().__init__(", ".join(f"{address}: {code} {reply!r}" for address, (code, reply) in refused.items()))
        self.refused = refused


def _hand_over(email: EmailMessage, smtp: Any) -> dict[str, tuple[int, bytes]]:
    """Send `email`; returns the recipients the server refused while it accepted the rest.

    Django's SMTP backend drops that list (`sendmail`'s return value), so for it we make the same
    call ourselves and keep it; any other backend is asked to send as usual."""
    if not isinstance(smtp, SMTPBackend):
        email.send()
        return {}
    smtp.open()  # a no-op while the session is open
    if smtp.connection is None:
        raise smtplib.SMTPServerDisconnected("no SMTP session")
    encoding = email.encoding or settings.DEFAULT_CHARSET
    recipients = [sanitize_address(address, encoding) for address in email.recipients()]
    body = email.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]  # Django's SafeMIME takes it
    return smtp.connection.sendmail(sanitize_address(email.from_email, encoding), recipients, body) or {}


def _send(row: OutboxMessage, smtp: Any) -> Exception | None:
    """Hand one row to SMTP; None when the server accepted it, else what went wrong (`PartlyRefused`:
    accepted, but not for everyone)."""
    try:
        refused = _hand_over(build_email(row, smtp), smtp)
        if refused:
            return PartlyRefused(refused)
    except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
        return exc
    except ValueError as exc:  # Django refuses the address or a header (BadHeaderError): it never will send it
        return exc
    except (OSError, smtplib.SMTPException) as exc:
        if hasattr(smtp, "connection"):
            smtp.connection = None  # force a reconnect for the next message
        return exc
    return None


def _mark_sent(rows: Sequence[OutboxMessage], now: datetime) -> None:
    """The rows and their conversation messages are sent: one statement on PostgreSQL (one
    round trip per group matters at hundreds a second), two in one transaction on SQLite."""
    ids, message_ids = [row.pk for row in rows], [row.message_id for row in rows]
    if connection.vendor != "postgresql":
        with transaction.atomic():
            OutboxMessage.objects.filter(pk__in=ids).update(status=OutboxMessage.Status.SENT, sent_at=now,
                                                            claimed_until=None)
            Message.objects.filter(message_id__in=message_ids).update(status=Message.Status.SENT)
        return
    qn = connection.ops.quote_name
    outbox, messages = qn(OutboxMessage._meta.db_table), qn(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH sent AS (UPDATE {outbox} SET status = %s, sent_at = %s, claimed_until = NULL "  # noqa: S608
            f"WHERE id = ANY(%s) RETURNING message_id) UPDATE {messages} SET status = %s "
            f"WHERE message_id IN (SELECT message_id FROM sent)",
            [OutboxMessage.Status.SENT.value, now, ids, Message.Status.SENT.value])


def _partly_refused(row: OutboxMessage, refused: PartlyRefused) -> None:
    """Accepted for some, refused for others: the row is sent (its Message-ID went out), the refusal is kept on
    it; a recipient refused for now gets a copy of its own, queued once (a stable key), and one refused for
    good is named on the case, as a wholly refused message is."""
    now = timezone.now()
    later = sorted(a for a, (code, _) in refused.refused.items() if not 500 <= code < 600)
    never = sorted(a for a in refused.refused if a not in later)
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=row.pk).update(last_error=f"recipients refused: {refused}")
        if later:
            copy = enqueue(case=row.case, purpose=row.purpose, to=later, subject=row.subject, body=row.body,
                           headers=row.headers, thread=(row.in_reply_to, row.references), now=now,
                           key=_copy_key(row, later))
            OutboxMessage.objects.filter(pk=copy.pk, attempts=0).update(
                due_at=now + timedelta(seconds=BACKOFF_BASE_SECONDS))
        if never and row.case_id:
            from closeloop.cases.actions import Actor, record_event

            record_event(Case.objects.get(pk=row.case_id), Actor.system("outbox"), "mail_failed", {
                "outbox": row.pk, "purpose": row.purpose, "to": never, "partial": True,
                "error": "; ".join(f"{a}: {refused.refused[a][0]} {refused.refused[a][1]!r}" for a in never)}, now=now)
    log.warning("outbox %s partly refused: %s", row.pk, refused)


def _copy_key(row: OutboxMessage, to: list[str]) -> str:
    digest = hashlib.sha256("\n".join([row.idempotency_key, *to]).encode()).hexdigest()[:16]
    return f"{row.idempotency_key[:160]}:resend:{digest}"
