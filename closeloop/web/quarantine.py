"""The Quarantine page's data: intake's failures, with the error and a retry."""

from __future__ import annotations

from typing import Any

from closeloop.intake import quarantine as source


def count() -> int:
    """Inputs in quarantine plus mailboxes that do not connect: both need a person."""
    return source.attention_count()


def failing_mailbox_count() -> int:
    return source.failing_mailbox_count()


def mailboxes() -> list[dict[str, Any]]:
    return source.failing_mailboxes()


def items(limit: int = 100, *, dismissed: bool = False) -> list[dict[str, Any]]:
    return source.quarantine_items(limit, dismissed=dismissed)


def dismissed_count() -> int:
    return source.dismissed_count()
