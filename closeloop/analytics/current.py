"""Open cases now: who holds them, which have stalled, which follow-ups were missed.

Each is one query over the open cases in scope; stalls take each case's last event by
`Max` over the (case, at) index and keep, in the database, only cases idle for longer
than the limit in wall-clock time (working time never exceeds it), so the calendar is
consulted only for those candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Q, QuerySet

from closeloop.cases.models import Case
from closeloop.cases.stages import Stage

from .clock import Clock
from .data import Scope

FIELDS = ("id", "team_id", "owner_id", "waiting_on", "stage", "opened_at", "next_due_at")


@dataclass
class OpenCase:
    id: int
    team_id: int | None
    owner_id: int | None
    waiting_on: str
    stage: str
    opened_at: datetime
    next_due_at: datetime | None
    last_event_at: datetime | None = None
    idle: float = 0.0  # working seconds since the last event

    @property
    def reference(self) -> str:
        return f"CL-{self.id:06d}"


def _open(scope: Scope) -> QuerySet[Case]:
    return scope.visible().exclude(stage=Stage.CLOSED)


def open_cases(scope: Scope) -> list[OpenCase]:
    return [OpenCase(**r) for r in _open(scope).values(*FIELDS).order_by("id")]


def stalled(scope: Scope, limit_hours: float, clock: Clock) -> list[OpenCase]:
    """Open cases with no event for more than `limit_hours` working hours, longest idle first."""
    cutoff = scope.now - timedelta(hours=limit_hours)
    candidates = (_open(scope).annotate(last_event_at=Max("events__at", filter=Q(events__at__lte=scope.now)))
                  .filter(Q(last_event_at__lt=cutoff) | Q(last_event_at__isnull=True, opened_at__lt=cutoff))
                  .values(*FIELDS, "last_event_at").order_by())
    out = []
    for row in candidates:
        case = OpenCase(**row)
        case.idle = clock.seconds(case.team_id, case.last_event_at or case.opened_at, scope.now) or 0.0
        if case.idle > limit_hours * 3600:
            out.append(case)
    return sorted(out, key=lambda c: (-c.idle, c.id))


def missed(scope: Scope, cutoff: datetime) -> list[OpenCase]:
    """Open cases whose next step fell due before `cutoff` and was not taken."""
    rows = _open(scope).filter(next_due_at__lt=cutoff).values(*FIELDS).order_by("next_due_at", "id")
    return [OpenCase(**r) for r in rows]
