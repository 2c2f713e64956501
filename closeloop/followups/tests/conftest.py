from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_calendar_cache() -> Iterator[None]:
    """Calendars are cached per process; each test starts from the database as it stands."""
    from closeloop.followups.calendar import invalidate_cache

    invalidate_cache()
    yield
    invalidate_cache()
