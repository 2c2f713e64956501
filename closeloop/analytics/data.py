"""The report's scope, and per-case rows computed straight from the materialised ledger.

The dashboard reads one facts row per case (`models.CaseFacts`, columns.py). The per-case
rows here compute the same milestones and held time another way, from the ledger
(`models.Interval`, kept by ledger.py): per-case conditional `Min`/`Max` give each
milestone's instant and the working seconds from opening to it; grouped `Sum`s give the time
held per party and stage, plus the intervals still running at `now`. They serve the
simulator's calibration (measure.py), the tests (as the reference the facts must equal) and
the benchmark's baseline. `spans` (a `Lead` window over the events) serves the simulator,
which wants wall-clock intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.db.models import F, Max, Min, Q, QuerySet, Sum, Window
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Lead
from django.utils import timezone

from closeloop.cases.access import visible_cases
from closeloop.cases.models import Case, Event, Message, Staff
from closeloop.cases.stages import WaitingOn
from closeloop.followups.calendar import ALWAYS_OPEN, calendar_for_team, zones

from .clock import Clock
from .models import Interval

COMPLETING = Q(to_stage="closed") & ~Q(from_stage="closed")
ARRIVING = Q(kind="opened") | (Q(from_stage="closed") & ~Q(to_stage="closed"))


def office_zone(staff: Staff | None, team_id: int | None = None) -> tzinfo:
    """Whose days a report counts in, as the pages read them (`web.zone`): the one office's zone; with
    offices in several zones the chosen team's calendar's, else the viewer's first team's; with no
    calendar, `CLOSELOOP_TIME_ZONE`."""
    configured = zones()
    if len(configured) <= 1:
        return next(iter(configured), timezone.get_default_timezone())
    if team_id is None and staff is not None:
        team_id = staff.teams.order_by("id").values_list("id", flat=True).first()
    calendar = calendar_for_team(team_id)
    return timezone.get_default_timezone() if calendar is ALWAYS_OPEN else calendar.tz


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
    ack_at: datetime | None
    first_reply_at: datetime | None
    marks: dict[str, float | None] = field(default_factory=dict)  # working seconds from opening
    held: dict[str, float] = field(default_factory=dict)
    dwell: dict[str, float] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.stage != "closed"

    @property
    def reference(self) -> str:
        return f"CL-{self.id:06d}"


CASE_FIELDS = ("id", "team_id", "owner_id", "request_type__slug", "channel", "priority", "stage", "waiting_on",
               "merged_into_id", "opened_at", "closed_at", "first_response_due_at", "resolution_due_at")
ACK, STAFF, REPLY = Q(kind="ack_sent"), Q(actor_kind="staff"), Q(kind="reply_sent")
CLOSING = Q(stage="closed") & ~Q(from_stage="closed")
MARKS = {
    "ack_at": Min("start", filter=ACK), "ack": Min("elapsed", filter=ACK),
    "human": Min("elapsed", filter=STAFF),
    "first_reply_at": Min("start", filter=REPLY), "answer": Min("elapsed", filter=REPLY),
    "answer_active": Min("active", filter=REPLY), "answer_paused": Min("paused", filter=REPLY),
    "close": Max("elapsed", filter=CLOSING), "close_active": Max("active", filter=CLOSING),
    "close_paused": Max("paused", filter=CLOSING),
}


def case_rows(cases: QuerySet[Case], clock: Clock | None = None) -> list[CaseRow]:
    """Every case with its milestones: three grouped queries, none of them per case."""
    clock = clock or Clock()
    ids = cases.values("id")
    marks: dict[int, dict[str, Any]] = {
        m["case_id"]: dict(m) for m in Interval.objects.filter(case_id__in=ids).values("case_id")
        .annotate(**MARKS).order_by()}
    acks = dict(Message.objects.filter(case_id__in=ids, direction=Message.Direction.OUTBOUND, purpose="ack")
                .exclude(status__in=["draft", "discarded", "failed"]).values("case_id")
                .annotate(first=Min("created_at")).order_by().values_list("case_id", "first"))
    return [_row(r, marks.get(r["id"], {}), acks.get(r["id"]), clock)
            for r in cases.values(*CASE_FIELDS).order_by("id")]


def _row(r: dict[str, Any], m: dict[str, Any], ack_message: datetime | None, clock: Clock) -> CaseRow:
    row = CaseRow(
        id=r["id"], team_id=r["team_id"], owner_id=r["owner_id"], request_type=r["request_type__slug"],
        channel=r["channel"], priority=r["priority"], stage=r["stage"], waiting_on=r["waiting_on"],
        merged=r["merged_into_id"] is not None, opened_at=r["opened_at"], closed_at=r["closed_at"],
        first_response_due_at=r["first_response_due_at"], resolution_due_at=r["resolution_due_at"],
        ack_at=m.get("ack_at"), first_reply_at=m.get("first_reply_at"),
        marks={k: m.get(k) for k in ("ack", "human", "answer", "answer_active", "answer_paused", "close",
                                     "close_active", "close_paused")},
    )
    if ack_message is not None and (row.ack_at is None or ack_message < row.ack_at):
        row.ack_at, row.marks["ack"] = ack_message, clock.seconds(row.team_id, row.opened_at, ack_message)
    if row.is_open or row.closed_at is None:
        row.marks.update(close=None, close_active=None, close_paused=None)
    return row


HELD = (WaitingOn.OWNER, WaitingOn.SPECIALIST, WaitingOn.REQUESTER, WaitingOn.EXTERNAL)


def attach_ledger(rows: list[CaseRow], cases: QuerySet[Case], now: datetime, clock: Clock) -> None:
    """Fill each row's time held per party and dwell per stage up to `now`: one grouped sum over
    the finished intervals, and the few still running at `now` measured here."""
    index = {r.id: r for r in rows}
    held = Interval.objects.filter(case_id__in=cases.values("id"), party__in=HELD)
    done = (held.filter(end__lte=now).values("case_id", "party", "stage").annotate(s=Sum("seconds")).order_by()
            .values_list("case_id", "party", "stage", "s"))
    running = (held.filter(start__lt=now).filter(Q(end__isnull=True) | Q(end__gt=now))
               .values_list("case_id", "party", "stage", "team_id", "start"))
    measured = [(c, p, st, clock.seconds(team, start, now) or 0.0) for c, p, st, team, start in running]
    for case_id, party, stage, seconds in [*done, *measured]:
        row = index.get(case_id)
        if row is None or not seconds:
            continue
        row.held[party] = row.held.get(party, 0.0) + seconds
        row.dwell[stage] = row.dwell.get(stage, 0.0) + seconds


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
                .annotate(was=_owner_key("from_owner"), now=_owner_key("to_owner"))
                .order_by("case_id", "at", "id").values_list("case_id", "was", "now"))
    for case_id, was, now in assigned.iterator(chunk_size=5000):
        chain = out.setdefault(case_id, [was])
        chain.append(now)
    return out


def _owner_key(name: str) -> KeyTransform:
    """One owner id out of an `assigned` event's data, picked in the database (not the whole JSON)."""
    return KeyTransform(name, "data")
