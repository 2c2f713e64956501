"""SLA clocks that pause by party.

The clocks are derived from the ball-holder ledger (`cases/ledger.py`): business time
counts only while the case waits on the team (owner or specialist); time waiting on the
requester or an external party (`PAUSED_PARTIES`) does not. The first-response clock
stops at the first reply; the resolution clock at close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from closeloop.cases.ledger import PAUSED_PARTIES, Interval, intervals
from closeloop.cases.models import Case, Event

from .calendar import Calendar, calendar_for_team

PRIORITY_DIVISORS = {"urgent": 4.0, "high": 2.0}


@dataclass(frozen=True)
class Clock:
    target: str  # first_response | resolution
    target_seconds: float
    elapsed_seconds: float
    running: bool  # False when paused by party or stopped (met)
    stopped: bool

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self.target_seconds - self.elapsed_seconds)

    @property
    def breached(self) -> bool:
        return self.elapsed_seconds >= self.target_seconds

    @property
    def fraction(self) -> float:
        return self.elapsed_seconds / self.target_seconds if self.target_seconds > 0 else 1.0


@dataclass(frozen=True)
class SlaStatus:
    first_response: Clock | None
    resolution: Clock | None
    paused: bool

    @property
    def clocks(self) -> list[Clock]:
        return [c for c in (self.first_response, self.resolution) if c is not None]

    @property
    def breached(self) -> bool:
        return any(c.breached and not c.stopped for c in self.clocks)


def target_hours(case: Case) -> tuple[float, float] | None:
    """(first response, resolution) business hours for the case's type and priority."""
    rt = case.request_type
    if rt is None:
        return None
    by_priority = (rt.policy or {}).get("priority_targets", {}).get(case.priority)
    if isinstance(by_priority, dict):
        return (float(by_priority.get("first_response_hours", rt.first_response_hours)),
                float(by_priority.get("resolution_hours", rt.resolution_hours)))
    divisor = PRIORITY_DIVISORS.get(case.priority, 1.0)
    return rt.first_response_hours / divisor, rt.resolution_hours / divisor


def team_seconds(spans: Sequence[Interval], calendar: Calendar, until: datetime | None = None) -> float:
    """Business seconds the team held the ball in `spans`, up to `until`."""
    total = 0.0
    for span in spans:
        if span.party in PAUSED_PARTIES:
            continue
        end = min(span.end, until) if until else span.end
        total += calendar.seconds_between(span.start, end)
    return total


def sla_status(case: Case, now: datetime, events: Sequence[Event] | None = None) -> SlaStatus:
    """Elapsed, remaining, breached and paused for both targets, from the case's events."""
    paused = case.waiting_on in PAUSED_PARTIES
    targets = target_hours(case)
    if targets is None:
        return SlaStatus(None, None, paused)
    if events is None:
        events = list(Event.objects.filter(case_id=case.pk).order_by("at", "id").only(
            "case_id", "at", "waiting_on", "owner_id", "team_id", "to_stage", "kind"))
    end = case.closed_at or now
    spans = intervals(events, end)
    calendar = calendar_for_team(case.team_id)
    running = case.is_open and not paused
    responded = case.first_responded_at
    first = Clock("first_response", targets[0] * 3600, team_seconds(spans, calendar, responded),
                  running and responded is None, stopped=responded is not None)
    resolution = Clock("resolution", targets[1] * 3600, team_seconds(spans, calendar), running,
                       stopped=not case.is_open)
    return SlaStatus(first, resolution, paused)


def as_dict(status: SlaStatus) -> dict[str, object]:
    return {
        "paused": status.paused, "breached": status.breached,
        **{clock.target: {"target_seconds": clock.target_seconds, "elapsed_seconds": round(clock.elapsed_seconds, 1),
                          "remaining_seconds": round(clock.remaining_seconds, 1), "breached": clock.breached,
                          "running": clock.running, "stopped": clock.stopped} for clock in status.clocks},
    }
