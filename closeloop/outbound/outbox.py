"""The outbox: enqueue in the caller's transaction, deliver from a worker.

Delivery loop (`deliver_due`):
1. pick the earliest due pending row (or a `sending` row whose claim expired: its
   worker died);
2. claim it by compare-and-set on (status, claimed_until); zero rows means another
   worker has it;
3. hand it to SMTP with its fixed Message-ID;
4. mark it sent, or push `due_at` out with exponential backoff; after MAX_ATTEMPTS, or on
   a permanent refusal (5xx), mark it failed and record a `mail_failed` event on the case.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from closeloop.cases.models import Case, Message

from .models import OutboxMessage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
CLAIM_SECONDS = 120
BACKOFF_BASE_SECONDS = 30


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
    row, created = OutboxMessage.objects.get_or_create(
        idempotency_key=key,
        defaults=dict(
            case=case, case_message=message, purpose=purpose, message_id=message_id, in_reply_to=in_reply_to,
            references=references, from_email=settings.DEFAULT_FROM_EMAIL, to=list(to), subject=subject[:300],
            body=body, headers=headers or {}, due_at=now, created_at=now,
        ),
    )
    if created and message is not None:
        Message.objects.filter(pk=message.pk).update(message_id=row.message_id)
    elif created and case is not None:
        Message.objects.create(
            case=case, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED, purpose=purpose,
            channel="email", recipients=list(to), subject=subject[:300], body=body, message_id=row.message_id,
            created_at=now,
        )
    return row


def _claim(now: datetime) -> OutboxMessage | None:
    ready = Q(status=OutboxMessage.Status.PENDING, due_at__lte=now) | Q(
        status=OutboxMessage.Status.SENDING, claimed_until__lt=now
    )
    for row in OutboxMessage.objects.filter(ready).order_by("due_at", "id")[:5]:
        claimed = OutboxMessage.objects.filter(pk=row.pk, status=row.status, claimed_until=row.claimed_until).update(
            status=OutboxMessage.Status.SENDING, claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
            attempts=F("attempts") + 1,
        )
        if claimed == 1:
            row.refresh_from_db()
            return row
    return None


def build_email(row: OutboxMessage, connection: object | None = None) -> EmailMessage:
    headers = {"Message-ID": row.message_id, "Date": formatdate(localtime=False), "Auto-Submitted": "auto-generated"
               if row.purpose not in ("reply", "missing_info", "outcome") else "no", **row.headers}
    if row.in_reply_to:
        headers["In-Reply-To"] = row.in_reply_to
        headers["References"] = row.references
    return EmailMessage(subject=row.subject, body=row.body, from_email=row.from_email, to=row.to,
                        headers=headers, connection=connection)  # type: ignore[arg-type]


def deliver_due(limit: int = 100, now: datetime | None = None) -> int:
    """Send up to `limit` due messages over one SMTP connection; returns how many were sent."""
    sent = 0
    connection = None
    try:
        for _ in range(limit):
            row = _claim(now or timezone.now())
            if row is None:
                break
            if connection is None:
                connection = get_connection(fail_silently=False)
            sent += _deliver_one(row, connection)
    finally:
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("closing SMTP connection failed", exc_info=True)
    return sent


def _deliver_one(row: OutboxMessage, connection: object) -> int:
    try:
        build_email(row, connection).send()
    except smtplib.SMTPResponseException as exc:
        _failed(row, f"{exc.smtp_code} {exc.smtp_error!r}", permanent=500 <= exc.smtp_code < 600)
        return 0
    except smtplib.SMTPRecipientsRefused as exc:
        _failed(row, f"recipients refused: {exc.recipients!r}", permanent=True)
        return 0
    except (OSError, smtplib.SMTPException) as exc:
        _failed(row, f"{type(exc).__name__}: {exc}", permanent=False)
        if hasattr(connection, "connection"):
            connection.connection = None  # force a reconnect for the next message
        return 0
    now = timezone.now()
    OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.SENT, sent_at=now, claimed_until=None)
    if row.message_id:
        Message.objects.filter(message_id=row.message_id).update(status=Message.Status.SENT)
    return 1


def _failed(row: OutboxMessage, error: str, *, permanent: bool) -> None:
    now = timezone.now()
    if permanent or row.attempts >= MAX_ATTEMPTS:
        with transaction.atomic():
            OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.FAILED, last_error=error,
                                                           claimed_until=None)
            Message.objects.filter(message_id=row.message_id).update(status=Message.Status.FAILED)
            if row.case_id:
                from closeloop.cases.actions import Actor, record_event

                record_event(Case.objects.get(pk=row.case_id), Actor.system("outbox"), "mail_failed",
                             {"outbox": row.pk, "purpose": row.purpose, "to": row.to, "error": error}, now=now)
        log.warning("outbox %s failed permanently: %s", row.pk, error)
        return
    delay = BACKOFF_BASE_SECONDS * 2 ** (row.attempts - 1)
    OutboxMessage.objects.filter(pk=row.pk).update(
        status=OutboxMessage.Status.PENDING, last_error=error, claimed_until=None,
        due_at=now + timedelta(seconds=delay),
    )
    log.info("outbox %s will retry in %ss: %s", row.pk, delay, error)
