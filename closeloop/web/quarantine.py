"""The Quarantine page's data: intake's failures, with the error and a retry."""

from __future__ import annotations

from typing import Any

from closeloop.intake import quarantine as source


def count() -> int:
    return source.quarantine_count()


def items(limit: int = 100) -> list[dict[str, Any]]:
    return source.quarantine_items(limit)
