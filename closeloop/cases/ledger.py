"""The ball-holder ledger: who held each case, from when to when, and why.

Derived from the append-only events, so every report agrees with the timeline: each
event records the party the case waits on after it (`waiting_on`) and the owner and team
at that moment; an interval runs from one event to the next, and the last one runs to
the case's close (or `until`, for open cases).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .models import Event
from .stages import WaitingOn


@dataclass(frozen=True)
class Interval:
    case_id: int
    party: str  # requester | owner | specialist | external
    owner_id: int | None
    team_id: int | None
    stage: str
    start: datetime
    end: datetime
    reason: str  # the kind of event that handed the ball over

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


# Time waiting on these parties does not count against the team's service targets.
PAUSED_PARTIES = frozenset({WaitingOn.REQUESTER, WaitingOn.EXTERNAL})


def intervals(events: Iterable[Event], until: datetime) -> list[Interval]:
    """Intervals for one case's events in time order; closed spans are dropped."""
    out: list[Interval] = []
    previous: Event | None = None
    for event in events:
        if previous is not None:
            _append(out, previous, event.at)
        previous = event
    if previous is not None:
        _append(out, previous, until)
    return out


def _append(out: list[Interval], event: Event, end: datetime) -> None:
    if event.waiting_on in ("", WaitingOn.NONE) or end <= event.at:
        return
    out.append(Interval(event.case_id, event.waiting_on, event.owner_id, event.team_id, event.to_stage,
                        event.at, end, event.kind))


def for_case(case_id: int, until: datetime) -> list[Interval]:
    events = Event.objects.filter(case_id=case_id).order_by("at", "id").only(
        "case_id", "at", "waiting_on", "owner_id", "team_id", "to_stage", "kind")
    return intervals(events, until)


def held_seconds(spans: Iterable[Interval]) -> dict[str, float]:
    """Total seconds each party held the ball."""
    totals: dict[str, float] = {}
    for span in spans:
        totals[span.party] = totals.get(span.party, 0.0) + span.seconds
    return totals
