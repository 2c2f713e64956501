"""Business calendars: working hours, time zone and holidays per team.

All due-time arithmetic in closeloop goes through this module. `Calendar` is pure (no
database): opening hours are local wall-clock times in the calendar's zone, turned into
aware instants day by day, so a DST change shortens or lengthens only the hours that
really move (an 09:00-17:00 day is 8 real hours on either side of a change; a 24-hour
calendar has 23 or 25 on the change days). Durations are real elapsed time.

`calendar_for_team(team_id)` returns the team's calendar from a per-process cache that
is reloaded in one query every `CLOSELOOP_CALENDAR_CACHE_SECONDS`, so the worker's hot
loop never queries for it. A team without a configured calendar is always open (the
behaviour before calendars existed); see docs/followups.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SEARCH_DAYS = 3 * 366  # a calendar closed for three years is a configuration error
WEEKDAYS_9_TO_5: dict[str, list[tuple[str, str]]] = {d: [("09:00", "17:00")] for d in DAY_NAMES[:5]}


class CalendarError(ValueError):
    """The calendar cannot be built or never opens."""


Span = tuple[int, int]  # minutes since local midnight, end exclusive, 0 <= start < end <= 1440


def _minutes(text: str) -> int:
    try:
        hours, minutes = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise CalendarError(f"opening hours must look like 09:00, got {text!r}") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or hours * 60 + minutes > 1440:
        raise CalendarError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def parse_hours(hours: Mapping[str, Iterable[Sequence[str]]]) -> tuple[tuple[Span, ...], ...]:
    """{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...} → seven tuples of minute spans."""
    unknown = set(hours) - set(DAY_NAMES)
    if unknown:
        raise CalendarError(f"unknown day names {sorted(unknown)}; use {', '.join(DAY_NAMES)}")
    week: list[tuple[Span, ...]] = []
    for day in DAY_NAMES:
        spans = []
        for pair in hours.get(day, ()):
            if len(pair) != 2:
                raise CalendarError(f"{day}: each opening is [start, end], got {pair!r}")
            start, end = _minutes(pair[0]), _minutes(pair[1])
            if start >= end:
                raise CalendarError(f"{day}: {pair[0]}-{pair[1]} ends before it starts")
            spans.append((start, end))
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise CalendarError(f"{day}: opening hours overlap")
        week.append(tuple(spans))
    if not any(week):
        raise CalendarError("the calendar has no opening hours at all")
    return tuple(week)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Calendar:
    """Opening hours in a time zone, minus holidays (explicit dates and/or a country's)."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    week: tuple[tuple[Span, ...], ...] = tuple(((0, 1440),) for _ in range(7))
    holidays: frozenset[date] = frozenset()
    country: str = ""
    subdivision: str = ""
    _country_years: dict[int, frozenset[date]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, *, time_zone: str = "UTC", hours: Mapping[str, Iterable[Sequence[str]]] | None = None,
              holidays: Iterable[date | str] = (), country: str = "", subdivision: str = "") -> Calendar:
        days = frozenset(d if isinstance(d, date) else _parse_date(d) for d in holidays)
        calendar = cls(zone(time_zone), parse_hours(WEEKDAYS_9_TO_5 if hours is None else hours), days,
                       country.upper(), subdivision.upper())
        if calendar.country:
            calendar._country_holidays(2000)  # fail now, not in the worker, on an unknown country
        return calendar

    # ---------------------------------------------------------------- days and openings

    def _country_holidays(self, year: int) -> frozenset[date]:
        if not self.country:
            return frozenset()
        if year not in self._country_years:
            import holidays as holidays_lib

            if self.country not in holidays_lib.list_supported_countries():
                raise CalendarError(f"no holiday calendar for country {self.country!r}")
            found = holidays_lib.country_holidays(self.country, subdiv=self.subdivision or None, years=year)
            self._country_years[year] = frozenset(found)
        return self._country_years[year]

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or day in self._country_holidays(day.year)

    def openings(self, day: date) -> list[tuple[datetime, datetime]]:
        """The opening intervals of one local day as aware UTC instants."""
        if self.is_holiday(day):
            return []
        return [(self._instant(day, start), self._instant(day, end)) for start, end in self.week[day.weekday()]]

    def _instant(self, day: date, minutes: int) -> datetime:
        if minutes == 1440:
            day, minutes = day + timedelta(days=1), 0
        local = datetime.combine(day, dtime(minutes // 60, minutes % 60), tzinfo=self.tz)
        # A wall time skipped by a DST change (02:30 in March) maps forward, by PEP 495's fold=0.
        return local.astimezone(UTC)

    def _from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals that end after `start`, in time order (raises past MAX_SEARCH_DAYS)."""
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(MAX_SEARCH_DAYS):
            for opening, closing in self.openings(day):
                if closing > start:
                    yield max(opening, start), closing
            day += timedelta(days=1)
        raise CalendarError(f"the calendar is closed for {MAX_SEARCH_DAYS} days after {start.isoformat()}")

    # ---------------------------------------------------------------- arithmetic

    def add_hours(self, start: datetime, hours: float) -> datetime:
        return self.add(start, timedelta(hours=hours))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of working time has passed after `start`."""
        _aware(start)
        if duration < timedelta(0):
            raise CalendarError("cannot add negative business time")
        if duration == timedelta(0):
            return start
        remaining = duration
        for opening, closing in self._from(start):
            available = closing - opening
            if remaining <= available:
                return opening + remaining
            remaining -= available
        raise AssertionError("unreachable: _from raises when it runs out")  # pragma: no cover

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end); zero when end is not after start."""
        _aware(start)
        _aware(end)
        total = 0.0
        if end <= start:
            return total
        for opening, closing in self._from(start):
            if opening >= end:
                break
            total += (min(closing, end) - opening).total_seconds()
        return total

    def is_open_at(self, at: datetime) -> bool:
        _aware(at)
        day = at.astimezone(self.tz).date()
        return any(o <= at < c for d in (day - timedelta(days=1), day) for o, c in self.openings(d))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the next opening."""
        _aware(at)
        for opening, _closing in self._from(at):
            return opening
        raise AssertionError("unreachable")  # pragma: no cover


def _aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(f"aware datetimes only, got naive {value.isoformat()}")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise CalendarError(f"holidays are ISO dates like 2026-12-25, got {text!r}") from None


ALWAYS_OPEN = Calendar()


# ---------------------------------------------------------------- the pure functions by name


def add_business_hours(calendar: Calendar, start: datetime, hours: float) -> datetime:
    return calendar.add_hours(start, hours)


def business_seconds_between(calendar: Calendar, start: datetime, end: datetime) -> float:
    return calendar.seconds_between(start, end)


def is_open_at(calendar: Calendar, at: datetime) -> bool:
    return calendar.is_open_at(at)


# ---------------------------------------------------------------- per-team calendars, cached


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded_at = float("-inf")
        self.by_team: dict[int, Calendar] = {}
        self.default: Calendar = ALWAYS_OPEN

    def get(self, team_id: int | None) -> Calendar:
        from django.conf import settings

        ttl = float(getattr(settings, "CLOSELOOP_CALENDAR_CACHE_SECONDS", 60))
        if time.monotonic() - self.loaded_at > ttl:
            self.reload()
        return self.by_team.get(team_id, self.default) if team_id is not None else self.default

    def reload(self) -> None:
        from .models import BusinessCalendar

        by_team: dict[int, Calendar] = {}
        default = ALWAYS_OPEN
        for row in BusinessCalendar.objects.prefetch_related("team_links"):
            calendar = row.to_calendar()
            if row.is_default:
                default = calendar
            for link in row.team_links.all():
                by_team[link.team_id] = calendar
        with self.lock:
            self.by_team, self.default, self.loaded_at = by_team, default, time.monotonic()

    def clear(self) -> None:
        with self.lock:
            self.loaded_at = float("-inf")


_cache = _Cache()


def calendar_for_team(team_id: int | None) -> Calendar:
    """The team's calendar, else the default calendar, else always open."""
    return _cache.get(team_id)


def invalidate_cache() -> None:
    """Forget cached calendars in this process (called when a calendar is saved)."""
    _cache.clear()


def zones() -> set[tzinfo]:
    """The time zones of every configured calendar (teams' and the default); empty when none is."""
    default = _cache.get(None)  # reloads when stale
    return {c.tz for c in (*_cache.by_team.values(), default) if c is not ALWAYS_OPEN}
