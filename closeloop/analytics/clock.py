"""The one place analytics asks how much working time lies between two instants.

Business-hours arithmetic belongs to `closeloop.followups.calendar`; this adapter calls
its `business_seconds_between(start, end)` on the team's calendar when the calendar
offers it, and counts wall-clock seconds otherwise (the always-open calendar).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from closeloop.followups.calendar import calendar_for_team

Counter = Callable[[datetime, datetime], float]


def _wall(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


class Clock:
    """Working seconds per team, with each team's calendar looked up once per report."""

    def __init__(self) -> None:
        self._counters: dict[int | None, Counter] = {}

    def counter(self, team_id: int | None) -> Counter:
        if team_id not in self._counters:
            calendar = calendar_for_team(team_id)
            between = getattr(calendar, "business_seconds_between", None)
            self._counters[team_id] = between if callable(between) else _wall
        return self._counters[team_id]

    def seconds(self, team_id: int | None, start: datetime | None, end: datetime | None) -> float | None:
        if start is None or end is None:
            return None
        if end <= start:
            return 0.0
        return max(0.0, float(self.counter(team_id)(start, end)))
