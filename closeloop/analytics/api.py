"""The dashboard's figures as JSON, at /api/analytics/.

Every endpoint takes the same scope parameters: `days` (cases opened in the last 1–366
days, default 28) or `start` and `end` (ISO dates, end inclusive), and `team` (a team
slug). The figures cover only cases the caller may see (`cases.access.visible_cases`):
coordinators their teams' and their own, specialists theirs, supervisors and admins all.
Authentication is the API's: a bearer token or a staff session.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError

from closeloop.api.ratelimit import PerToken
from closeloop.cases.models import Staff, Team

from . import cache
from .current import open_cases
from .data import Scope, office_zone
from .figures import TABLES, Figures, headline
from .tables import Table

router = Router(tags=["analytics"], throttle=PerToken("analytics", "CLOSELOOP_API_ANALYTICS_RATE_LIMIT"))


class ScopeQuery(Schema):
    days: int = Field(28, ge=1, le=366, description="cases opened in the last N days")
    start: date | None = Field(None, description="first day opened (with end instead of days)")
    end: date | None = Field(None, description="last day opened, inclusive")
    team: str | None = Field(None, description="team slug")


class LatencyQuery(ScopeQuery):
    by: Literal["type", "team", "owner", "channel", "period"] = "type"
    period: Literal["day", "week", "month"] = "week"


class StallQuery(ScopeQuery):
    hours: float | None = Field(None, gt=0, le=10000, description="working hours idle; default the setting")


class Column(Schema):
    key: str
    heading: str


class TableOut(Schema):
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]


class CaseOut(Schema):
    id: int
    reference: str
    subject: str
    stage: str
    waiting_on: str


def _staff(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]


def _scope(request: HttpRequest, q: ScopeQuery) -> Scope:
    now = timezone.now()
    team_id = None
    if q.team:
        team = Team.objects.filter(slug=q.team).first()
        if team is None:
            raise HttpError(400, f"no team {q.team!r}")
        team_id = team.pk
    zone = office_zone(_staff(request), team_id)
    timezone.activate(zone)  # days, weeks and months in the answer are the office's (ZoneMiddleware resets it)
    if q.start is None and q.end is None:
        return Scope.last_days(_staff(request), now, q.days, team_id)
    if q.start is None or q.end is None:
        raise HttpError(400, "give both start and end, or days")
    if q.end < q.start or (q.end - q.start).days > 366:
        raise HttpError(400, "end must be on or after start, at most 366 days later")
    if q.end >= date.max:  # the day after it, where the period ends, does not exist
        raise HttpError(400, f"end must be before {date.max.isoformat()}")
    if q.start <= date.min:  # east of UTC its midnight is the day before in UTC, which does not exist
        raise HttpError(400, f"start must be after {date.min.isoformat()}")
    # the office's midnights (a day around a DST change is 23 or 25 hours long)
    start = datetime.combine(q.start, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(q.end + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return Scope(_staff(request), start, end, now, team_id)


def _out(table: Table) -> dict[str, Any]:
    rows = [{**row, "cases": row.get("cases", len(table.cases.get(row["key"], []))),
             "case_count": len(table.cases.get(row["key"], []))} for row in table.rows]
    return {"name": table.name, "title": table.title,
            "columns": [{"key": k, "heading": h} for k, h in table.columns], "rows": rows}


def _table(figures: Figures, name: str, **options: Any) -> Table:
    try:
        return figures.table(name, **options)
    except KeyError:
        raise HttpError(404, f"no figure {name!r}; try one of {', '.join(TABLES)}") from None


@router.get("/summary", summary="Headline numbers: cases, open, missed, stalled, latency p50/p90, drowning")
def summary(request: HttpRequest, q: Query[ScopeQuery]) -> dict[str, Any]:
    scope = _scope(request, q)
    remembered = cache.report(scope)
    if remembered is not None:
        return remembered.headline
    figures = Figures(scope)
    tables = {name: figures.table(name) for name in ("handoffs", "missed", "stalls", "backlog")}
    return headline(tables, figures.rows, len(open_cases(figures.scope)))


@router.get("/latency", response=TableOut, summary="Response times p50/p90 by type, team, owner, channel or period")
def latency(request: HttpRequest, q: Query[LatencyQuery]) -> dict[str, Any]:
    scope, dimension = _scope(request, q), q.period if q.by == "period" else q.by
    return _out(cache.table(scope, f"latency_{dimension}") or Figures(scope).latency(dimension))


@router.get("/stalls", response=TableOut, summary="Open cases idle longer than `hours` working hours, with holder")
def stalls(request: HttpRequest, q: Query[StallQuery]) -> dict[str, Any]:
    return _out(_table(Figures(_scope(request, q)), "stalls", stall_limit=q.hours))


@router.get("/figures", response=list[str], summary="Names of every figure")
def names(request: HttpRequest) -> list[str]:
    return list(TABLES)


@router.get("/figures/{name}", response=TableOut, summary="One figure: held, dwell, handoffs, sla, missed, backlog…")
def figure(request: HttpRequest, name: str, q: Query[ScopeQuery]) -> dict[str, Any]:
    scope = _scope(request, q)
    return _out(cache.table(scope, name) or _table(Figures(scope), name))


@router.get("/figures/{name}/{key}/cases", response=list[CaseOut], summary="The cases behind one row of a figure")
def cases(request: HttpRequest, name: str, key: str, q: Query[ScopeQuery]) -> list[dict[str, Any]]:
    scope = _scope(request, q)
    table = cache.table(scope, name) or _table(Figures(scope), name)
    if key not in table.cases:
        raise HttpError(404, f"no row {key!r} in {name}")
    found = scope.visible().filter(pk__in=table.cases[key]).order_by("opened_at")
    return [{"id": c.pk, "reference": c.reference, "subject": c.subject, "stage": c.stage,
             "waiting_on": c.waiting_on} for c in found]
