"""What the outbox does with a message the server did not take.

A failure is one of three kinds (`OutboxMessage.Failure`):
- refused: a 5xx for the message or every recipient, or an address SMTP cannot take. Retrying
  would not help: failed at once, with a `mail_failed` event on the case;
- deferred: a 4xx ("not now": greylisting, a full mailbox);
- unreachable: our own SMTP server did not answer, dropped the session, or refused us (our
  login, our HELO, our sender): nothing about the message itself.
Deferred and unreachable messages are retried with the delay doubling from 30 s up to
`CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS`, for `CLOSELOOP_OUTBOX_RETRY_HOURS` from the first failure;
after `CLOSELOOP_OUTBOX_DELAY_NOTICE_MINUTES` the case shows a `mail_delayed` event. When the time
runs out the message fails with a `mail_failed` event; one that failed because our server was
down is re-queued as soon as it answers again (`requeue_after_outage`, after any message goes
through; `probe_after_outage` tries one such message again now and then while nothing else is
due). Staff may retry any failed message (`retry_by_hand`). Every retry reuses the row: the
same Message-ID and idempotency key, so a message is never sent twice under two identities.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from closeloop.cases.models import Case, Message, Staff

from .models import OutboxMessage

log = logging.getLogger(__name__)
BACKOFF_BASE_SECONDS = 30
Failure = OutboxMessage.Failure
# Our own server turned us away: its configuration or state, not the message or its recipient.
OUR_SERVER = (smtplib.SMTPConnectError, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError,
              smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError)


def classify(exc: Exception) -> tuple[str, str]:
    """(failure kind, the error in words) of what `_send` returned."""
    if isinstance(exc, ValueError):  # Django refuses the address or a header: it never will send it
        return Failure.REFUSED, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OUR_SERVER):
        return Failure.UNREACHABLE, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = Failure.REFUSED if 500 <= exc.smtp_code < 600 else Failure.DEFERRED
        return kind, f"{exc.smtp_code} {exc.smtp_error!r}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # 4xx at RCPT TO (greylisting, a full mailbox, a busy server) is "not now", as it is at DATA.
        codes = [code for code, _ in exc.recipients.values()]
        kind = Failure.REFUSED if all(500 <= c < 600 for c in codes) else Failure.DEFERRED
        return kind, f"recipients refused: {exc.recipients!r}"
    return Failure.UNREACHABLE, f"{type(exc).__name__}: {exc}"


def failed_with(row: OutboxMessage, exc: Exception) -> None:
    kind, error = classify(exc)
    failed(row, error, kind, timezone.now())


def failed(row: OutboxMessage, error: str, kind: str, now: datetime) -> None:
    """Retry `row` later, or fail it for good: refused at once, anything else once its retry time ran out."""
    since = row.failing_since or now
    if row.failure == Failure.UNREACHABLE and kind == Failure.UNREACHABLE:
        # A probe of a message that failed during an outage: the server is still away; nothing new to tell.
        OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.FAILED, last_error=error,
                                                       claimed_until=None, due_at=now)
        return
    if kind == Failure.REFUSED or now - since >= timedelta(hours=settings.CLOSELOOP_OUTBOX_RETRY_HOURS):
        _fail(row, error, kind, since, now)
        return
    delay = min(BACKOFF_BASE_SECONDS * 2 ** min(max(row.attempts - 1, 0), 20),
                settings.CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS)
    notice = row.failure != Failure.DELAYED and now - since >= timedelta(
        minutes=settings.CLOSELOOP_OUTBOX_DELAY_NOTICE_MINUTES)
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=row.pk).update(
            status=OutboxMessage.Status.PENDING, last_error=error, claimed_until=None, failing_since=since,
            due_at=now + timedelta(seconds=delay), failure=Failure.DELAYED if notice else row.failure)
        if notice and row.case_id:
            until = since + timedelta(hours=settings.CLOSELOOP_OUTBOX_RETRY_HOURS)
            _event(row, "mail_delayed", now, error=error, message=(
                f"Not delivered yet ({error[:200]}); closeloop keeps trying until {until:%Y-%m-%d %H:%M} UTC"))
    log.info("outbox %s will retry in %ss: %s", row.pk, delay, error)


def _fail(row: OutboxMessage, error: str, kind: str, since: datetime, now: datetime) -> None:
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.FAILED, last_error=error,
                                                       claimed_until=None, failure=kind, failing_since=since,
                                                       due_at=now)
        Message.objects.filter(message_id=row.message_id).update(status=Message.Status.FAILED)
        if row.case_id:
            _failed_on_case(row, error, kind, now)
    log.warning("outbox %s failed (%s): %s", row.pk, kind, error)


def _event(row: OutboxMessage, kind: str, now: datetime, actor_staff: Staff | None = None, **data: object) -> None:
    from closeloop.cases.actions import Actor, record_event

    case = Case.objects.get(pk=row.case_id or 0)
    actor = Actor.of(actor_staff) if actor_staff is not None else Actor.system("outbox")
    record_event(case, actor, kind, {"outbox": row.pk, "purpose": row.purpose, "to": row.to, **data}, now=now)


def _failed_on_case(row: OutboxMessage, error: str, kind: str, now: datetime) -> None:
    """Show the failure on the case; if the address was refused (5xx, or 4xx until the retry time ran out:
    not our own server) and the case waits on the requester this mail was for, hand it back to the owner."""
    from closeloop.cases.actions import Actor, requester_unreachable
    from closeloop.cases.stages import Stage

    requeue = kind == Failure.UNREACHABLE
    _event(row, "mail_failed", now, error=error, failure=kind, requeue=requeue, message=(
        "our mail server was not reachable; it will be sent when the server answers again" if requeue else ""))
    case = Case.objects.select_related("requester").get(pk=row.case_id or 0)
    email = case.requester.email.lower() if case.requester else ""
    to_requester = bool(email) and email in {address.lower() for address in row.to}
    if not requeue and to_requester and case.stage in (Stage.AWAITING_INFO, Stage.ANSWERED):
        requester_unreachable(case, Actor.system("outbox"), error=error, now=now)


def requeue_after_outage(now: datetime, limit: int = 1000) -> int:
    """Our server took a message: queue again what failed because it was down. One index look-up when
    there is none (the common case: this runs after every batch that sent something)."""
    gone = OutboxMessage.objects.filter(status=OutboxMessage.Status.FAILED, failure=Failure.UNREACHABLE)
    rows = list(gone.order_by("due_at")[:limit])
    if not rows:
        return 0
    with transaction.atomic():
        done = [row for row in rows if _queue_again(row, now)]
        for row in done:
            if row.case_id:
                _event(row, "mail_requeued", now, message="our mail server answers again: sending it now")
    log.info("re-queued %d messages that failed while the SMTP server was down", len(done))
    return len(done)


def probe_after_outage(now: datetime) -> None:
    """While nothing else is due, try one message that failed during an outage again, at most once per
    backoff cap: if it goes through, `requeue_after_outage` brings the rest. A probe that fails goes back
    to failed quietly (`failed`)."""
    gone = OutboxMessage.objects.filter(status=OutboxMessage.Status.FAILED, failure=Failure.UNREACHABLE)
    recently = now - timedelta(seconds=settings.CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS)
    if gone.filter(due_at__gt=recently).exists():
        return
    oldest = gone.order_by("due_at").values_list("pk", "due_at").first()
    if oldest is not None:
        gone.filter(pk=oldest[0], due_at=oldest[1]).update(status=OutboxMessage.Status.PENDING, due_at=now)


def retry_by_hand(row: OutboxMessage, staff: Staff, now: datetime | None = None) -> OutboxMessage:
    """A person asks for a failed message to be sent again (the address was fixed, the server is back)."""
    now = now or timezone.now()
    if row.status != OutboxMessage.Status.FAILED:
        raise ValueError(f"message {row.pk} is {row.status}, not failed: only a failed message can be retried")
    with transaction.atomic():
        if not _queue_again(row, now):
            raise ValueError(f"message {row.pk} changed meanwhile; reload it")
        if row.case_id:
            _event(row, "mail_retried", now, actor_staff=staff, message=f"{staff} asked to send it again")
    row.refresh_from_db()
    return row


def _queue_again(row: OutboxMessage, now: datetime) -> bool:
    """Failed → pending now, with a fresh retry time; the row keeps its Message-ID and key."""
    if not OutboxMessage.objects.filter(pk=row.pk, status=OutboxMessage.Status.FAILED).update(
            status=OutboxMessage.Status.PENDING, due_at=now, attempts=0, failing_since=None, failure="",
            claimed_until=None):
        return False
    Message.objects.filter(message_id=row.message_id).update(status=Message.Status.QUEUED)
    return True
