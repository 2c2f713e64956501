"""The one place analytics asks how much working time lies between two instants.

Business-hours arithmetic belongs to `closeloop.followups.calendar`; this adapter asks the
team's calendar (`Calendar.seconds_between`), one lookup per team per report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from closeloop.followups.calendar import calendar_for_team

Counter = Callable[[datetime, datetime], float]


class Clock:
    """Working seconds per team, with each team's calendar looked up once per report."""

    def __init__(self) -> None:
        self._counters: dict[int | None, Counter] = {}

    def counter(self, team_id: int | None) -> Counter:
        if team_id not in self._counters:
            self._counters[team_id] = calendar_for_team(team_id).seconds_between
        return self._counters[team_id]

    def seconds(self, team_id: int | None, start: datetime | None, end: datetime | None) -> float | None:
        if start is None or end is None:
            return None
        if end <= start:
            return 0.0
        return max(0.0, float(self.counter(team_id)(start, end)))
