"""What the latency figures read: one entry per case in scope, held column by column.

One query joins the cases in scope to their `CaseFacts` (kept at write time, facts.py) and
hands back plain numbers; they are laid into NumPy columns, and every table is then a
grouped pass over those columns (percentiles by the same interpolation as stats.py) rather
than a Python object per case. The few things that depend on the report's `now` are
settled here: the running interval of each open case is measured at `now` and added to its
party and stage; a case with events after `now` (a report looking back) has its held time
summed from the ledger up to `now` instead; an acknowledgement sent as a message before any
`ack_sent` event moves the acknowledgement milestone (acknowledgements come from messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, Min, Q, QuerySet, Sum
from django.db.models.functions import Substr, TruncDate
from django.utils import timezone

from closeloop.cases.models import Case, Message
from closeloop.cases.stages import Stage

from .clock import Clock
from .facts import HELD
from .models import CaseFacts, Interval
from .stats import _interpolate, hours

MARKS = ("ack", "human", "answer", "answer_active", "answer_paused", "close", "close_active", "close_paused")
STAGES = tuple(s.value for s in Stage)
NUMBERS = (*MARKS, *(f"held_{p}" for p in HELD), *(f"dwell_{s}" for s in STAGES), "fr_target", "res_target",
           "handoffs", "pongs")
CASE_FIELDS = ("id", "request_type__slug", "team_id", "owner_id", "channel", "is_merged", "finished", "chained", "day")


@dataclass
class Columns:
    """Per case in scope (ordered by id): its grouping keys and its numbers (NaN where absent)."""

    ids: np.ndarray
    types: list[str | None]
    teams: list[int | None]
    owners: list[int | None]
    channels: list[str]
    days: list[date]
    merged: np.ndarray
    chained: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def held(self, party: str) -> np.ndarray:
        return self.values[f"held_{party}"]

    def dwell(self, stage: str) -> np.ndarray:
        return self.values[f"dwell_{stage}"]

    def subset(self, mask: np.ndarray) -> Columns:
        keep = np.flatnonzero(mask).tolist()
        return Columns(self.ids[mask], [self.types[i] for i in keep], [self.teams[i] for i in keep],
                       [self.owners[i] for i in keep], [self.channels[i] for i in keep],
                       [self.days[i] for i in keep], self.merged[mask], self.chained[mask],
                       {k: v[mask] for k, v in self.values.items()})

    def kept(self) -> Columns:
        """Merged duplicates left out (the primary carries the work)."""
        return self.subset(~self.merged)

    def position(self, case_ids: Sequence[int]) -> np.ndarray:
        return np.searchsorted(self.ids, np.asarray(case_ids, dtype=np.int64))


def _flag(q: Q) -> ExpressionWrapper:
    return ExpressionWrapper(q, output_field=BooleanField())


def _fetch(cases: QuerySet[Case]) -> list[tuple[Any, ...]]:
    """The rows as the database driver hands them over: Django's per-value converters (booleans,
    dates) cost more than the fetch itself at 50,000 rows, and the columns need none of them."""
    zone = timezone.get_current_timezone()  # the office's days (the pages and the API activate its zone)
    sqlite = connections[cases.db].vendor == "sqlite"  # it keeps UTC datetimes as ISO text: the date leads
    # SQLite: the UTC minute, moved to the office's day in Python (`_days`); no zone's offset is finer
    day = Substr("opened_at", 1, 10 if str(zone) == "UTC" else 16) if sqlite else TruncDate("opened_at", tzinfo=zone)
    query = cases.annotate(
        is_merged=_flag(Q(merged_into__isnull=False)), finished=_flag(Q(stage=Stage.CLOSED, closed_at__isnull=False)),
        chained=_flag(Q(analytics_facts__chained=True)), day=day,
    ).order_by("id").values_list(*CASE_FIELDS, *(f"analytics_facts__{n}" for n in NUMBERS))
    sql, params = query.query.get_compiler(using=cases.db).as_sql()
    with connections[cases.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _days(raw: Sequence[Any]) -> list[date]:
    """Each case's opening day: a date (PostgreSQL, or SQLite in UTC) or a UTC minute (SQLite elsewhere)."""
    zone = timezone.get_current_timezone()

    def day(value: Any) -> date:
        text = str(value)
        if len(text) <= 10:
            return date.fromisoformat(text[:10])
        return datetime.fromisoformat(text).replace(tzinfo=UTC).astimezone(zone).date()

    known = {value: day(value) for value in set(raw)}
    return [known[value] for value in raw]


def load(cases: QuerySet[Case], now: datetime, clock: Clock) -> Columns:
    """The cases' columns, with held and dwell up to `now` (see the module docstring)."""
    rows = _fetch(cases)
    raw: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * (len(CASE_FIELDS) + len(NUMBERS))
    cols = Columns(np.array(raw[0], dtype=np.int64), list(raw[1]), list(raw[2]), list(raw[3]), list(raw[4]),
                   _days(raw[8]), np.array(raw[5], dtype=bool), np.array(raw[7], dtype=bool))
    for name, values in zip(NUMBERS, raw[len(CASE_FIELDS):], strict=True):
        column = np.array(values, dtype=float)
        if not name.startswith(MARKS):
            column = np.nan_to_num(column, nan=0.0)
        cols.values[name] = column
    unfinished = ~np.array(raw[6], dtype=bool)
    for name in ("close", "close_active", "close_paused"):
        cols.values[name][unfinished] = np.nan
    _acknowledged_by_message(cols, cases, clock)
    _held_until(cols, cases, now, clock)
    return cols


def _acknowledged_by_message(cols: Columns, cases: QuerySet[Case], clock: Clock) -> None:
    acks = dict(Message.objects.filter(case_id__in=cases.values("id"), direction=Message.Direction.OUTBOUND,
                                       purpose="ack")
                .exclude(status__in=["draft", "discarded", "failed"]).values("case_id")
                .annotate(first=Min("created_at")).order_by().values_list("case_id", "first"))
    if not acks:
        return
    found = cases.filter(id__in=list(acks)).values_list("id", "team_id", "opened_at", "analytics_facts__ack_at")
    for case_id, team_id, opened_at, ack_at in found:
        sent = acks[case_id]
        at = cols.position([case_id])[0]
        if (ack_at is None or sent < ack_at) and at < len(cols) and cols.ids[at] == case_id:
            cols["ack"][at] = clock.seconds(team_id, opened_at, sent)


def _held_until(cols: Columns, cases: QuerySet[Case], now: datetime, clock: Clock) -> None:
    """Add the running intervals measured at `now`; re-sum cases that have events after `now`."""
    facts = CaseFacts.objects.filter(case__in=cases.values("id"))
    running = (facts.filter(last_party__in=HELD, last_at__lt=now)
               .values_list("case_id", "last_party", "last_stage", "last_team_id", "last_at"))
    _add(cols, [(c, p, st, clock.seconds(team, start, now) or 0.0) for c, p, st, team, start in running])
    later = list(facts.filter(last_at__gt=now).values_list("case_id", flat=True))
    if not later:
        return
    where = cols.position(later)
    where = where[(where < len(cols)) & (cols.ids[np.minimum(where, len(cols) - 1)] == np.asarray(later))]
    for name, column in cols.values.items():
        if name.startswith(("held_", "dwell_")):
            column[where] = 0.0
    held = Interval.objects.filter(case_id__in=later, party__in=HELD)
    done = (held.filter(end__lte=now).values("case_id", "party", "stage").annotate(s=Sum("seconds")).order_by()
            .values_list("case_id", "party", "stage", "s"))
    cut = (held.filter(start__lt=now, end__gt=now).values_list("case_id", "party", "stage", "team_id", "start"))
    _add(cols, [*done, *[(c, p, st, clock.seconds(team, start, now) or 0.0) for c, p, st, team, start in cut]])


def _add(cols: Columns, pieces: list[tuple[int, str, str, float]]) -> None:
    for case_id, party, stage, seconds in pieces:
        at = cols.position([case_id])[0]
        if not seconds or at >= len(cols) or cols.ids[at] != case_id:  # a case that came into scope since the fetch
            continue
        cols.held(party)[at] += seconds
        if f"dwell_{stage}" in cols.values:
            cols.dwell(stage)[at] += seconds


def groups(keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Positions (ascending) of each distinct key."""
    if not keys:
        return {}
    distinct, inverse = np.unique(np.array(keys, dtype=str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(distinct)))[:-1]
    return {str(k): part for k, part in zip(distinct, np.split(order, bounds), strict=True)}


def summary(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, p50 and p90 in hours of the values present: stats.summary over a column."""
    present = np.sort(values[~np.isnan(values)])
    if not present.size:
        return {"n": 0, "p50": None, "p90": None}
    ordered = present.tolist()
    return {"n": len(ordered), "p50": hours(_interpolate(ordered, 0.5)), "p90": hours(_interpolate(ordered, 0.9))}
