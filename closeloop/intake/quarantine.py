"""What staff see of intake's failures: the quarantine list and its retry."""

from __future__ import annotations

from typing import Any

from .models import InboundMessage

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
