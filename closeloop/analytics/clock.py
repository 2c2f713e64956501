"""The one place analytics asks how much working time lies between two instants.

Business-hours arithmetic belongs to `closeloop.followups.calendar`; this adapter lays each
team's opening intervals (`Calendar.openings`) on a timeline with running totals once per
report, so `seconds(team, a, b)` is two binary searches instead of a walk over the days in
between. A team on an always-open calendar counts wall-clock time. The result equals
`Calendar.seconds_between` (tested against it).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timedelta

from closeloop.followups.calendar import ALWAYS_OPEN, Calendar, calendar_for_team

MARGIN_DAYS = 62


class Timeline:
    """Working seconds from a fixed origin to any instant, on one calendar. Safe to share
    between threads: the laid-out range is replaced whole, never edited in place."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.wall = calendar.week == ALWAYS_OPEN.week and not calendar.holidays and not calendar.country
        self._laid: tuple[date, date, list[datetime], list[datetime], list[float]] | None = None

    def _cover(self, at: datetime) -> tuple[list[datetime], list[datetime], list[float]]:
        day = at.astimezone(self.calendar.tz).date()
        laid = self._laid
        if laid is not None and laid[0] < day < laid[1]:
            return laid[2], laid[3], laid[4]
        first = min(laid[0] if laid else day, day) - timedelta(days=MARGIN_DAYS)
        last = max(laid[1] if laid else day, day) + timedelta(days=MARGIN_DAYS)
        openings = sorted(o for n in range((last - first).days + 1)
                          for o in self.calendar.openings(first + timedelta(days=n)))
        starts, ends, before = [], [], []
        total = 0.0
        for opening, closing in openings:
            starts.append(opening)
            ends.append(closing)
            before.append(total)
            total += (closing - opening).total_seconds()
        self._laid = (first, last, starts, ends, before)
        return starts, ends, before

    def at(self, instant: datetime) -> float:
        if self.wall:
            return instant.timestamp()
        starts, ends, before = self._cover(instant)
        i = bisect_right(starts, instant) - 1
        if i < 0:
            return 0.0
        return before[i] + max(0.0, (min(instant, ends[i]) - starts[i]).total_seconds())

    def seconds(self, start: datetime, end: datetime) -> float:
        return 0.0 if end <= start else max(0.0, self.at(end) - self.at(start))


_shared: dict[int, Timeline] = {}


def shared_timeline(calendar: Calendar) -> Timeline:
    """A process-wide timeline per calendar object; the calendar cache hands out a new object
    when calendars change, so a stale timeline is never used."""
    timeline = _shared.get(id(calendar))
    if timeline is None or timeline.calendar is not calendar:
        if len(_shared) > 64:
            _shared.clear()
        timeline = _shared[id(calendar)] = Timeline(calendar)
    return timeline


class Clock:
    """Working seconds per team, with each team's calendar looked up once per report."""

    def __init__(self) -> None:
        self._timelines: dict[int | None, Timeline] = {}

    def timeline(self, team_id: int | None) -> Timeline:
        if team_id not in self._timelines:
            self._timelines[team_id] = Timeline(calendar_for_team(team_id))
        return self._timelines[team_id]

    def seconds(self, team_id: int | None, start: datetime | None, end: datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return self.timeline(team_id).seconds(start, end)
