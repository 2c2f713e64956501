"""Business calendars: working hours, time zone and holidays per team.

Pure arithmetic; all due-time maths in closeloop goes through `Calendar.add_hours`.
The follow-up engine (issue 5) extends this module; this first cut treats every hour
as working time, which `calendar_for_team` returns until calendars are configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Calendar:
    def add_hours(self, start: datetime, hours: float) -> datetime:
        return start + timedelta(hours=hours)


ALWAYS_OPEN = Calendar()


def calendar_for_team(team_id: int | None) -> Calendar:
    return ALWAYS_OPEN
