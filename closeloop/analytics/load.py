"""Is the team drowning? Arrivals against completions, backlog and its age, work owed per
person against capacity, an early warning, and a two-week forecast from recent rates.

Arrivals are `opened` events and reopenings (a closed case moving to an open stage);
completions are moves into `closed` (closed or merged). Both are grouped by the case's
current team so that they add up to the backlog each team holds now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from closeloop.cases.models import Case, Event, Staff, Team
from closeloop.cases.stages import Stage

from .data import ARRIVING, COMPLETING, Scope
from .stats import percentile
from .tables import Table

FORECAST_DAYS = 14


@dataclass
class Flow:
    team_id: int
    days: list[date]
    arrivals: list[int]
    completions: list[int]
    backlog: list[int]  # at the end of each day
    open_ids: list[int]

    @property
    def surplus_run(self) -> int:
        """Consecutive days, ending with the last, on which arrivals exceeded completions."""
        run = 0
        for a, c in zip(reversed(self.arrivals), reversed(self.completions), strict=True):
            if a <= c:
                break
            run += 1
        return run

    def rates(self, window: int = FORECAST_DAYS) -> tuple[float, float]:
        n = min(window, len(self.days)) or 1
        return sum(self.arrivals[-n:]) / n, sum(self.completions[-n:]) / n


def warn_days() -> int:
    return int(getattr(settings, "CLOSELOOP_ANALYTICS_WARN_DAYS", 3))


def flows(scope: Scope, days: int = 28) -> dict[int, Flow]:
    """Per team, the last `days` days (today included) of arrivals, completions and backlog."""
    today = timezone.localtime(scope.now).date()  # days on the office's clock, as TruncDate groups them
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    visible = scope.visible()
    counts = (Event.objects.filter(case__in=visible, at__gte=timezone.make_aware(datetime.combine(span[0], time.min)),
                                   at__lte=scope.now)
              .filter(ARRIVING | COMPLETING).annotate(day=TruncDate("at"))
              .values("case__team_id", "day")
              .annotate(arrivals=Count("id", filter=ARRIVING), completions=Count("id", filter=COMPLETING)))
    by_team: dict[int, dict[date, tuple[int, int]]] = defaultdict(dict)
    for row in counts:
        by_team[row["case__team_id"] or 0][row["day"]] = (row["arrivals"], row["completions"])
    open_ids: dict[int, list[int]] = defaultdict(list)
    for case_id, team_id in visible.exclude(stage=Stage.CLOSED).values_list("id", "team_id"):
        open_ids[team_id or 0].append(case_id)
    return {team: _flow(team, span, by_team.get(team, {}), open_ids.get(team, []))
            for team in sorted(set(by_team) | set(open_ids))}


def _flow(team: int, span: list[date], counts: dict[date, tuple[int, int]], open_ids: list[int]) -> Flow:
    arrivals = [counts.get(d, (0, 0))[0] for d in span]
    completions = [counts.get(d, (0, 0))[1] for d in span]
    backlog, level = [0] * len(span), len(open_ids)
    for i in range(len(span) - 1, -1, -1):
        backlog[i] = level
        level -= arrivals[i] - completions[i]
    return Flow(team, span, arrivals, completions, backlog, open_ids)


def forecast(flow: Flow, days: int = FORECAST_DAYS) -> list[tuple[date, float, float | None]]:
    """(day, expected backlog, expected days to completion by Little's law) for the next `days` days,
    assuming the last two weeks' arrival and completion rates hold."""
    arrive, complete = flow.rates()
    start, level = flow.days[-1], float(flow.backlog[-1])
    out = []
    for k in range(1, days + 1):
        backlog = max(0.0, level + (arrive - complete) * k)
        out.append((start + timedelta(days=k), round(backlog, 1), round(backlog / complete, 1) if complete else None))
    return out


def team_names() -> dict[int, str]:
    return {0: "No team", **dict(Team.objects.values_list("id", "name"))}


def backlog_table(scope: Scope, team_flows: dict[int, Flow]) -> Table:
    names = team_names()
    table = Table("backlog", "Backlog and the flow through it, per team", [
        ("label", "Team"), ("open", "Open"), ("age_p50", "Age p50 days"), ("age_max", "Oldest days"),
        ("arrive", "Arrivals/day (14d)"), ("complete", "Completions/day (14d)"), ("run", "Days arrivals > completions"),
        ("warning", "Warning"), ("in_14", "Backlog in 14 days"), ("wait_14", "Days to clear then")])
    opened = dict(Case.objects.filter(stage__in=[s for s in Stage if s != Stage.CLOSED],
                                      id__in=[i for f in team_flows.values() for i in f.open_ids])
                  .values_list("id", "opened_at"))
    for team, flow in team_flows.items():
        ages = [(scope.now - opened[i]).total_seconds() / 86400 for i in flow.open_ids if i in opened]
        arrive, complete = flow.rates()
        ahead = forecast(flow)[-1]
        age_p50 = percentile(ages, 0.5)
        table.add(str(team), flow.open_ids, label=names.get(team, str(team)), open=len(flow.open_ids),
                  age_p50=round(age_p50, 1) if age_p50 is not None else None,
                  age_max=round(max(ages), 1) if ages else None, arrive=round(arrive, 2),
                  complete=round(complete, 2), run=flow.surplus_run,
                  warning="DROWNING" if flow.surplus_run >= warn_days() else "",
                  in_14=ahead[1], wait_14=ahead[2])
    return table


def flow_table(team_flows: dict[int, Flow]) -> Table:
    """Arrivals, completions and backlog per day, all teams in scope together."""
    table = Table("flow", "Arrivals against completions per day", [
        ("label", "Day"), ("arrivals", "Arrivals"), ("completions", "Completions"), ("backlog", "Backlog")])
    if not team_flows:
        return table
    first = next(iter(team_flows.values()))
    for i, day in enumerate(first.days):
        table.add(day.isoformat(), [], label=day.isoformat(),
                  arrivals=sum(f.arrivals[i] for f in team_flows.values()),
                  completions=sum(f.completions[i] for f in team_flows.values()),
                  backlog=sum(f.backlog[i] for f in team_flows.values()))
    return table


def forecast_table(team_flows: dict[int, Flow]) -> Table:
    table = Table("forecast", "Two-week forecast from the last 14 days' rates (all teams in scope)", [
        ("label", "Day"), ("backlog", "Expected backlog"), ("wait", "Expected days to complete")])
    per_team = [forecast(f) for f in team_flows.values()]
    if not per_team:
        return table
    complete = sum(f.rates()[1] for f in team_flows.values())
    for k, (day, _, _) in enumerate(per_team[0]):
        backlog = round(sum(p[k][1] for p in per_team), 1)
        table.add(day.isoformat(), [], label=day.isoformat(), backlog=backlog,
                  wait=round(backlog / complete, 1) if complete else None)
    return table


def workload_table(scope: Scope) -> Table:
    """Open cases each person owns (and is briefed on as specialist) against their capacity."""
    table = Table("workload", "Work owed per person against capacity", [
        ("label", "Person"), ("owned", "Open cases owned"), ("briefed", "Awaiting their answer"),
        ("capacity", "Capacity"), ("load", "Load %")])
    open_visible = scope.visible().exclude(stage=Stage.CLOSED)
    owned = dict(open_visible.filter(owner__isnull=False).values("owner_id").annotate(n=Count("id"))
                 .values_list("owner_id", "n"))
    briefed = dict(open_visible.filter(stage=Stage.AWAITING_SPECIALIST, specialist__isnull=False)
                   .values("specialist_id").annotate(n=Count("id")).values_list("specialist_id", "n"))
    people = Staff.objects.filter(Q(pk__in=owned) | Q(pk__in=briefed) | Q(is_active=True, auto_assign=True,
                                                                          role="coordinator"))
    if scope.staff is not None and scope.staff.role == "coordinator":
        people = people.filter(teams__in=scope.staff.teams.all()).distinct()
    for person in people.select_related("user").order_by("user__username"):
        mine = owned.get(person.pk, 0) + briefed.get(person.pk, 0)
        ids = list(open_visible.filter(Q(owner=person) | Q(specialist=person, stage=Stage.AWAITING_SPECIALIST))
                   .values_list("id", flat=True)) if mine else []
        table.add(str(person.pk), ids, label=person.display_name, owned=owned.get(person.pk, 0),
                  briefed=briefed.get(person.pk, 0), capacity=person.capacity,
                  load=round(100 * mine / person.capacity, 0) if person.capacity else None)
    return table


def drowning(scope: Scope, days: int = 28) -> dict[str, Table]:
    team_flows = flows(scope, days)
    return {t.name: t for t in (backlog_table(scope, team_flows), flow_table(team_flows),
                                forecast_table(team_flows), workload_table(scope))}
