"""Waiting in tests for something another thread or process does (a listener, a worker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = "") -> T:
    """Poll `predicate` until it returns something truthy and return that; fail after `timeout`
    seconds, saying what was awaited (`what` may be a function, called only on failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
