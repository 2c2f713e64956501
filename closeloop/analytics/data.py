"""What the figures read: one row per case with its milestones, and the ball-holder intervals.

Both come from database aggregates over the event log: per-case conditional `Min`/`Max`
for the milestones, and a `Lead` window over each case's events for the intervals (the
same intervals `closeloop.cases.ledger` derives in Python, computed by the database).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Max, Min, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Lead

from closeloop.cases.access import visible_cases
from closeloop.cases.models import Case, Event, Message, Staff
from closeloop.cases.stages import WaitingOn

COMPLETING = Q(to_stage="closed") & ~Q(from_stage="closed")
ARRIVING = Q(kind="opened") | (Q(from_stage="closed") & ~Q(to_stage="closed"))


@dataclass(frozen=True)
class Scope:
    """Which cases a report covers: those a person may see, opened in [start, end), optionally one team."""

    staff: Staff | None
    start: datetime
    end: datetime
    now: datetime
    team_id: int | None = None

    @classmethod
    def last_days(cls, staff: Staff | None, now: datetime, days: int = 28, team_id: int | None = None) -> Scope:
        return cls(staff, now - timedelta(days=days), now, now, team_id)

    def visible(self) -> QuerySet[Case]:
        cases = visible_cases(self.staff)
        return cases.filter(team_id=self.team_id) if self.team_id else cases

    def cases(self) -> QuerySet[Case]:
        return self.visible().filter(opened_at__gte=self.start, opened_at__lt=self.end)


@dataclass
class CaseRow:
    id: int
    team_id: int | None
    owner_id: int | None
    request_type: str | None
    channel: str
    priority: str
    stage: str
    waiting_on: str
    merged: bool
    opened_at: datetime
    closed_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    next_due_at: datetime | None
    ack_at: datetime | None
    first_staff_at: datetime | None
    first_reply_at: datetime | None
    last_event_at: datetime | None
    held: dict[str, float] = field(default_factory=dict)
    dwell: dict[str, float] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.stage != "closed"

    @property
    def reference(self) -> str:
        return f"CL-{self.id:06d}"


def _first_ack_message() -> Subquery:
    acks = Message.objects.filter(case=OuterRef("pk"), direction=Message.Direction.OUTBOUND, purpose="ack")
    return Subquery(acks.exclude(status__in=["draft", "discarded", "failed"])
                    .order_by("created_at").values("created_at")[:1])


def case_rows(cases: QuerySet[Case]) -> list[CaseRow]:
    """One query: every case with its milestones aggregated from its events."""
    rows = cases.values(
        "id", "team_id", "owner_id", "request_type__slug", "channel", "priority", "stage", "waiting_on",
        "merged_into_id", "opened_at", "closed_at", "first_response_due_at", "resolution_due_at", "next_due_at",
    ).annotate(
        ack_event=Min("events__at", filter=Q(events__kind="ack_sent")),
        first_staff=Min("events__at", filter=Q(events__actor_kind="staff")),
        first_reply=Min("events__at", filter=Q(events__kind="reply_sent")),
        last_event=Max("events__at"),
        ack_message=_first_ack_message(),
    ).order_by("id")
    return [_row(r) for r in rows]


def _row(r: Any) -> CaseRow:
    acks = [a for a in (r["ack_event"], r["ack_message"]) if a is not None]
    return CaseRow(
        id=r["id"], team_id=r["team_id"], owner_id=r["owner_id"], request_type=r["request_type__slug"],
        channel=r["channel"], priority=r["priority"], stage=r["stage"], waiting_on=r["waiting_on"],
        merged=r["merged_into_id"] is not None, opened_at=r["opened_at"], closed_at=r["closed_at"],
        first_response_due_at=r["first_response_due_at"], resolution_due_at=r["resolution_due_at"],
        next_due_at=r["next_due_at"], ack_at=min(acks) if acks else None, first_staff_at=r["first_staff"],
        first_reply_at=r["first_reply"], last_event_at=r["last_event"],
    )


@dataclass(frozen=True)
class Span:
    """One stretch of a case's life: who held the ball, in which stage, from start to end."""

    case_id: int
    party: str
    owner_id: int | None
    team_id: int | None
    stage: str
    start: datetime
    end: datetime


def spans(cases: QuerySet[Case], until: datetime) -> list[Span]:
    """Ball-holder intervals of the given cases; the last one of an open case runs to `until`."""
    following = Window(Lead("at"), partition_by=[F("case_id")], order_by=[F("at").asc(), F("id").asc()])
    events = (Event.objects.filter(case_id__in=cases.values("id"))
              .annotate(next_at=following)
              .values_list("case_id", "waiting_on", "owner_id", "team_id", "to_stage", "at", "next_at"))
    out = []
    for case_id, party, owner_id, team_id, stage, start, end in events.iterator(chunk_size=5000):
        end = end or until
        if party in ("", WaitingOn.NONE) or end <= start:
            continue
        out.append(Span(case_id, party, owner_id, team_id, stage, start, min(end, until)))
    return out


def ownership_changes(cases: QuerySet[Case]) -> dict[int, list[int | None]]:
    """Per case, the owners it passed through by `assigned` events, first one included."""
    out: dict[int, list[int | None]] = {}
    assigned = (Event.objects.filter(case_id__in=cases.values("id"), kind="assigned")
                .order_by("case_id", "at", "id").values_list("case_id", "data"))
    for case_id, data in assigned.iterator(chunk_size=5000):
        chain = out.setdefault(case_id, [(data or {}).get("from_owner")])
        chain.append((data or {}).get("to_owner"))
    return out
