from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

NY = ZoneInfo("America/New_York")


@pytest.fixture
def office(practice: Any) -> Any:
    """Every demo team works Monday to Friday, 09:00-17:00 New York time, US holidays off."""
    from closeloop.followups.models import BusinessCalendar, TeamCalendar

    calendar = BusinessCalendar.objects.create(name="Lakeside", time_zone="America/New_York", country="US")
    for team in practice.teams.values():
        TeamCalendar.objects.create(team=team, calendar=calendar)
    return calendar


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: multi-process crash tests (kept under ~60 s; they run in CI)")
