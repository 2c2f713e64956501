"""What staff see of intake's failures: the quarantine list and its retry, and mailboxes that do not connect."""

from __future__ import annotations

from typing import Any

from .models import InboundMessage, Mailbox

Status = InboundMessage.Status


def quarantine_count() -> int:
    return InboundMessage.objects.filter(status=Status.QUARANTINED).count()


def queue_depth() -> int:
    """Inputs stored but not yet processed."""
    return InboundMessage.objects.filter(status=Status.RECEIVED).count()


def quarantine_items(limit: int = 100) -> list[dict[str, Any]]:
    rows = (InboundMessage.objects.filter(status=Status.QUARANTINED).order_by("-received_at", "-id")
            .values("id", "received_at", "channel", "sender", "subject", "error", "size", "attempts")[:limit])
    return [dict(row) for row in rows]


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
