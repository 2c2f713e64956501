"""The Quarantine page reads intake's failures through one small, optional interface.

When `closeloop.intake.quarantine` provides `quarantine_count() -> int` and
`quarantine_items(limit: int) -> list[dict]` (keys: id, received_at, channel, sender, error),
the page lists them; until then it says intake is not configured.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def _source() -> ModuleType | None:
    try:
        module = importlib.import_module("closeloop.intake.quarantine")
    except ImportError:
        return None
    if not (hasattr(module, "quarantine_count") and hasattr(module, "quarantine_items")):
        return None
    return module


def configured() -> bool:
    return _source() is not None


def count() -> int | None:
    source = _source()
    return int(source.quarantine_count()) if source else None


def items(limit: int = 100) -> list[dict[str, Any]]:
    source = _source()
    return list(source.quarantine_items(limit)) if source else []
