"""What staff see of intake's failures: the quarantine list, its retry and dismissal, and mailboxes
that do not connect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from closeloop.cases.access import can
from closeloop.cases.models import AuditEntry, Staff

from .models import InboundMessage, Mailbox

Status = InboundMessage.Status
REASON_MAX = 300


class CannotDismiss(Exception):
    """The entry cannot be dismissed (not in quarantine any more, no reason, a role that may not)."""


def quarantine_count() -> int:
    return InboundMessage.objects.filter(status=Status.QUARANTINED).count()


def queue_depth() -> int:
    """Inputs stored but not yet processed."""
    return InboundMessage.objects.filter(status=Status.RECEIVED).count()


def quarantine_items(limit: int = 100, *, dismissed: bool = False) -> list[dict[str, Any]]:
    """The open quarantine, newest first; `dismissed`: the entries staff dismissed instead, each with
    who dismissed it, when and why (`meta["dismissed"]`)."""
    status = Status.DISMISSED if dismissed else Status.QUARANTINED
    rows = (InboundMessage.objects.filter(status=status).order_by("-received_at", "-id")
            .values("id", "received_at", "channel", "sender", "subject", "error", "size", "attempts", "meta")[:limit])
    items = []
    for row in rows:
        item: dict[str, Any] = dict(row)
        item["dismissed"] = _dismissal((item.pop("meta") or {}).get("dismissed"))
        items.append(item)
    return items


def _dismissal(note: Any) -> dict[str, Any] | None:
    if not isinstance(note, dict):
        return None
    try:
        at = datetime.fromisoformat(str(note.get("at")))
    except ValueError:
        at = None
    return {**note, "at": at}


def dismissed_count() -> int:
    return InboundMessage.objects.filter(status=Status.DISMISSED).count()


def dismiss(inbound_id: int, staff: Staff, reason: str, ip: str | None = None) -> InboundMessage:
    """Staff say "seen, nothing to do": the entry leaves the open quarantine (and the mailbox or folder
    stops trying it again) but is kept, raw bytes and all, with who, when and why, and an audit entry."""
    if not can(staff, "work"):
        raise CannotDismiss("only coordinators, supervisors and admins work the quarantine")
    reason = " ".join(reason.split())
    if not reason:
        raise CannotDismiss("say why it needs nothing (for example: spam, a test, handled by phone)")
    if len(reason) > REASON_MAX:
        raise CannotDismiss(f"the reason is {len(reason)} characters; at most {REASON_MAX}")
    now = timezone.now()
    with transaction.atomic():
        row = InboundMessage.objects.select_for_update().filter(pk=inbound_id).first()
        if row is None or row.status != Status.QUARANTINED:
            raise CannotDismiss(f"inbound {inbound_id} is not in quarantine" +
                                (f" (it is {row.status})" if row is not None else ""))
        row.status = Status.DISMISSED
        row.meta = {**row.meta, "dismissed": {"by": staff.user.get_username(), "at": now.isoformat(),
                                              "reason": reason, "error": row.error}}
        row.save(update_fields=["status", "meta"])
        AuditEntry.objects.create(user=staff.user, action="quarantine_dismiss", at=now,
                                  detail=f"inbound {row.pk}: {reason}"[:300], ip=ip or None)
    return row


def _failing() -> Any:
    # The runner records every failed connection (wrong password, server down, unknown folder)
    # in `last_error` and a good poll clears it; a mailbox switched off is not failing.
    return Mailbox.objects.filter(is_active=True).exclude(last_error="")


def failing_mailbox_count() -> int:
    return _failing().count()


def attention_count() -> int:
    """Quarantined inputs plus failing mailboxes, in one query (it is in every page's navigation)."""
    inputs = InboundMessage.objects.filter(status=Status.QUARANTINED).order_by().values("id")
    return inputs.union(_failing().order_by().values("id"), all=True).count()


def failing_mailboxes() -> list[dict[str, Any]]:
    """Active mailboxes whose last connection failed, with the error and when they last worked."""
    rows = _failing().order_by("name").values("id", "name", "host", "folder", "last_error", "last_checked_at")
    return [dict(row) for row in rows]
