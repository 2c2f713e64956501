"""Latency figures from the ledger: where the time went, where cases stall, SLA with pauses.

`report(scope)` computes every table in a handful of grouped queries over the materialised
ledger (see data.py, ledger.py) and returns them with the headline numbers. Durations are
working seconds on the calendar of the team holding the case (measured once, when the
interval ends; clock.py for the ones still running); percentiles are p50/p90 by linear
interpolation over the per-case values the database summed (stats.py).
Merged duplicates are left out of latency figures: the primary case carries the work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings

from closeloop.cases.models import RequestType, Staff, Team
from closeloop.cases.stages import Stage, WaitingOn

from . import ledger
from .clock import Clock
from .current import OpenCase, missed, open_cases, stalled
from .data import CaseRow, Scope, attach_ledger, case_rows, ownership_changes
from .load import drowning
from .stats import hours, summary
from .tables import Table

MILESTONES: list[tuple[str, str]] = [
    ("ack", "Acknowledge"), ("human", "First human action"), ("answer", "First answer"), ("close", "Close"),
]
DIMENSIONS = [("type", "Request type"), ("team", "Team"), ("owner", "Owner"), ("channel", "Channel"),
              ("week", "Week opened")]


@dataclass
class Labels:
    teams: dict[int, str]
    staff: dict[int, str]
    types: dict[str, str]

    @classmethod
    def load(cls) -> Labels:
        return cls(dict(Team.objects.values_list("id", "name")),
                   {s.pk: s.display_name for s in Staff.objects.select_related("user")},
                   dict(RequestType.objects.values_list("slug", "name")))

    def holder(self, owner_id: int | None, team_id: int | None) -> str:
        if owner_id is not None:
            return self.staff.get(owner_id, f"staff {owner_id}")
        return f"{self.teams.get(team_id or 0, 'no team')} queue"


@dataclass
class Report:
    scope: Scope
    tables: dict[str, Table] = field(default_factory=dict)
    headline: dict[str, Any] = field(default_factory=dict)

    def add(self, table: Table) -> None:
        self.tables[table.name] = table


PERIODS = {"day": "Day opened", "week": "Week opened", "month": "Month opened"}
CURRENT_TABLES = ("holding", "stalls", "missed")
LOAD_TABLES = ("backlog", "flow", "forecast", "workload")
TABLES = (*(f"latency_{d}" for d, _ in DIMENSIONS), "held", "dwell", "handoffs", "sla", *CURRENT_TABLES,
          *LOAD_TABLES)


class Figures:
    """Builds any one table on demand, sharing the queries tables have in common."""

    def __init__(self, scope: Scope) -> None:
        self.scope, self.clock, self.labels = scope, Clock(), Labels.load()

    @cached_property
    def rows(self) -> list[CaseRow]:
        """Cases in scope with milestones and (summed from the ledger) time held and dwell."""
        rows = [r for r in case_rows(self.scope.cases(), self.clock) if not r.merged]
        attach_ledger(rows, self.scope.cases(), self.scope.now, self.clock)
        return rows

    @cached_property
    def load(self) -> dict[str, Table]:
        return drowning(self.scope)

    def latency(self, dimension: str) -> Table:
        titles = {**dict(DIMENSIONS), **PERIODS}
        if dimension not in titles:
            raise KeyError(dimension)
        return latency_table(dimension, titles[dimension], self.rows, self.labels)

    def table(self, name: str, stall_limit: float | None = None) -> Table:
        builders: dict[str, Callable[[], Table]] = {
            "held": lambda: held_table(self.rows), "dwell": lambda: dwell_table(self.rows),
            "handoffs": lambda: handoff_table(ownership_changes(self.scope.cases())),
            "sla": lambda: sla_table(self.rows, self.clock, self.labels),
            "holding": lambda: holding_table(open_cases(self.scope), self.labels, self.scope.now, self.clock),
            "stalls": lambda: stall_table(self.scope, self.labels, self.clock, stall_limit),
            "missed": lambda: missed_table(self.scope, self.labels),
        }
        if name.startswith("latency_"):
            return self.latency(name.removeprefix("latency_"))
        if name in LOAD_TABLES:
            return self.load[name]
        if name not in builders:
            raise KeyError(name)
        return builders[name]()


def report(scope: Scope) -> Report:
    figures, out = Figures(scope), Report(scope)
    for name in TABLES:
        out.add(figures.table(name))
    out.headline = headline(out.tables, figures.rows, len(open_cases(scope)))
    return out


def _key(row: CaseRow, dimension: str, labels: Labels) -> tuple[str, str]:
    if dimension == "type":
        slug = row.request_type or "untyped"
        return slug, labels.types.get(slug, "Untyped")
    if dimension == "team":
        return str(row.team_id or 0), labels.teams.get(row.team_id or 0, "No team")
    if dimension == "owner":
        return str(row.owner_id or 0), labels.holder(row.owner_id, row.team_id) if row.owner_id else "Unowned"
    if dimension == "channel":
        return row.channel or "unknown", row.channel or "unknown"
    if dimension == "day":
        return row.opened_at.date().isoformat(), row.opened_at.date().isoformat()
    if dimension == "month":
        return row.opened_at.strftime("%Y-%m"), row.opened_at.strftime("%Y-%m")
    year, week, _ = row.opened_at.isocalendar()
    return f"{year}-W{week:02d}", f"{year}-W{week:02d}"


def latency_table(dimension: str, title: str, rows: list[CaseRow], labels: Labels) -> Table:
    columns = [("label", title), ("cases", "Cases")]
    for name, heading in MILESTONES:
        columns += [(f"{name}_n", f"{heading} n"), (f"{name}_p50", f"{heading} p50 h"),
                    (f"{name}_p90", f"{heading} p90 h")]
    table = Table(f"latency_{dimension}", f"Response times by {title.lower()} (working hours)", columns)
    groups: dict[str, list[CaseRow]] = defaultdict(list)
    names: dict[str, str] = {}
    for row in rows:
        key, label = _key(row, dimension, labels)
        groups[key].append(row)
        names[key] = label
    for key in sorted(groups, key=lambda k: names[k]):
        members = groups[key]
        values: dict[str, Any] = {"label": names[key], "cases": len(members)}
        for name, _ in MILESTONES:
            s = summary(r.marks.get(name) for r in members)
            values.update({f"{name}_n": s["n"], f"{name}_p50": s["p50"], f"{name}_p90": s["p90"]})
        table.add(key, [r.id for r in members], **values)
    return table


def held_table(rows: list[CaseRow]) -> Table:
    table = Table("held", "Time held by each party (working hours)", [
        ("label", "Party"), ("cases", "Cases"), ("total", "Total h"), ("share", "Share %"),
        ("p50", "Per case p50 h"), ("p90", "Per case p90 h")])
    grand = sum(sum(r.held.values()) for r in rows) or 1.0
    for party in (WaitingOn.OWNER, WaitingOn.SPECIALIST, WaitingOn.REQUESTER, WaitingOn.EXTERNAL):
        holders = [r for r in rows if r.held.get(party)]
        total = sum(r.held[party] for r in holders)
        s = summary(r.held[party] for r in holders)
        table.add(str(party), [r.id for r in holders], label=WaitingOn(party).label, cases=len(holders),
                  total=hours(total), share=round(100 * total / grand, 1), p50=s["p50"], p90=s["p90"])
    return table


def dwell_table(rows: list[CaseRow]) -> Table:
    table = Table("dwell", "Dwell time per stage (working hours)", [
        ("label", "Stage"), ("cases", "Cases"), ("total", "Total h"), ("p50", "p50 h"), ("p90", "p90 h")])
    for stage in Stage:
        visited = [r for r in rows if r.dwell.get(stage)]
        if not visited:
            continue
        s = summary(r.dwell[stage] for r in visited)
        table.add(str(stage), [r.id for r in visited], label=stage.label, cases=len(visited),
                  total=hours(sum(r.dwell[stage] for r in visited)), p50=s["p50"], p90=s["p90"])
    return table


def handoffs(chain: list[int | None]) -> tuple[int, int]:
    """(handoffs, ping-pongs) in an owner chain: a handoff is a change between two people,
    a ping-pong is a return to the person who had it two owners before (A → B → A)."""
    people = [o for o in chain if o is not None]
    collapsed = [o for i, o in enumerate(people) if i == 0 or o != people[i - 1]]
    pongs = sum(1 for i in range(2, len(collapsed)) if collapsed[i] == collapsed[i - 2])
    return len(collapsed) - 1 if collapsed else 0, pongs


def handoff_table(chains: dict[int, list[int | None]]) -> Table:
    table = Table("handoffs", "Handoffs between people per case", [
        ("label", "Handoffs"), ("cases", "Cases"), ("ping_pong", "Cases with ping-pong (A→B→A)")])
    buckets: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for case_id, chain in chains.items():
        count, pongs = handoffs(chain)
        buckets[str(min(count, 3))].append((case_id, pongs))
    for key in sorted(buckets):
        members = buckets[key]
        table.add(key, [c for c, _ in members], label="3 or more" if key == "3" else key, cases=len(members),
                  ping_pong=sum(1 for _, p in members if p))
    pong_cases = [c for c, chain in chains.items() if handoffs(chain)[1]]
    table.cases["ping_pong"] = pong_cases
    return table


def sla_outcome(row: CaseRow, milestone: str, due: datetime | None, clock: Clock) -> tuple[str, float]:
    """met | breached | pending (not reached, within target) | none, and paused seconds: the clock
    counts team time (owner or specialist) until the milestone, or until now when not reached."""
    if due is None:
        return "none", 0.0
    target = clock.seconds(row.team_id, row.opened_at, due) or 0.0
    done = row.marks.get(milestone) is not None
    if done:
        used, paused = row.marks[f"{milestone}_active"] or 0.0, row.marks[f"{milestone}_paused"] or 0.0
    else:
        used = row.held.get(WaitingOn.OWNER, 0.0) + row.held.get(WaitingOn.SPECIALIST, 0.0)
        paused = row.held.get(WaitingOn.REQUESTER, 0.0) + row.held.get(WaitingOn.EXTERNAL, 0.0)
    if used > target:
        return "breached", paused
    return ("met" if done else "pending"), paused


def sla_table(rows: list[CaseRow], clock: Clock, labels: Labels) -> Table:
    table = Table("sla", "SLA compliance, paused while waiting on the requester or an external party", [
        ("label", "Request type"), ("fr_met", "First response met"), ("fr_breached", "breached"),
        ("fr_pending", "pending"), ("fr_pct", "met %"), ("res_met", "Resolution met"),
        ("res_breached", "breached"), ("res_pending", "pending"), ("res_pct", "met %"), ("paused", "Paused h")])
    groups: dict[str, list[CaseRow]] = defaultdict(list)
    for row in rows:
        groups[row.request_type or "untyped"].append(row)
    for slug in sorted(groups):
        counts: dict[str, int] = defaultdict(int)
        paused = 0.0
        breached: list[int] = []
        for row in groups[slug]:
            fr, _ = sla_outcome(row, "answer", row.first_response_due_at, clock)
            res, p = sla_outcome(row, "close", row.resolution_due_at, clock)
            counts[f"fr_{fr}"] += 1
            counts[f"res_{res}"] += 1
            paused += p
            if "breached" in (fr, res):
                breached.append(row.id)
        table.add(slug, breached, label=labels.types.get(slug, "Untyped"), paused=hours(paused),
                  fr_pct=_pct(counts["fr_met"], counts["fr_breached"]),
                  res_pct=_pct(counts["res_met"], counts["res_breached"]),
                  **{k: counts[k] for k, _ in table.columns if k[:3] in ("fr_", "res") and not k.endswith("pct")})
    return table


def _pct(met: int, breached: int) -> float | None:
    return round(100 * met / (met + breached), 1) if met + breached else None


def holding_table(current: list[OpenCase], labels: Labels, now: datetime, clock: Clock) -> Table:
    table = Table("holding", "Who holds the ball now (open cases)", [
        ("label", "Holder"), ("waiting_on", "Waiting on"), ("cases", "Cases"), ("oldest", "Oldest case, working h")])
    groups: dict[tuple[str, str], list[OpenCase]] = defaultdict(list)
    for case in current:
        groups[(case.waiting_on, labels.holder(case.owner_id, case.team_id))].append(case)
    for (party, holder), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        oldest = max(clock.seconds(c.team_id, c.opened_at, now) or 0.0 for c in members)
        table.add(f"{party}:{holder}", [c.id for c in members], label=holder, waiting_on=party,
                  cases=len(members), oldest=hours(oldest))
    return table


def stall_hours() -> float:
    return float(getattr(settings, "CLOSELOOP_ANALYTICS_STALL_HOURS", 8.0))


def stall_table(scope: Scope, labels: Labels, clock: Clock, limit_hours: float | None = None) -> Table:
    limit = stall_hours() if limit_hours is None else limit_hours
    table = Table("stalls", f"Stalled: open cases with no event for over {limit:g} working hours", [
        ("label", "Case"), ("holder", "Held by"), ("waiting_on", "Waiting on"), ("stage", "Stage"),
        ("idle", "Idle working h")])
    for case in stalled(scope, limit, clock):
        table.add(str(case.id), [case.id], label=case.reference, holder=labels.holder(case.owner_id, case.team_id),
                  waiting_on=case.waiting_on, stage=case.stage, idle=hours(case.idle))
    table.cases["all"] = [int(r["key"]) for r in table.rows]
    return table


def missed_cutoff() -> timedelta:
    return timedelta(minutes=float(getattr(settings, "CLOSELOOP_ANALYTICS_MISSED_MINUTES", 60.0)))


def missed_table(scope: Scope, labels: Labels) -> Table:
    table = Table("missed", "Missed follow-ups: due and not acted on past the cutoff (should be empty)", [
        ("label", "Case"), ("holder", "Held by"), ("waiting_on", "Waiting on"), ("due", "Due at"),
        ("late", "Late h")])
    for case in missed(scope, scope.now - missed_cutoff()):
        due = case.next_due_at or scope.now
        table.add(str(case.id), [case.id], label=case.reference, holder=labels.holder(case.owner_id, case.team_id),
                  waiting_on=case.waiting_on, due=due.isoformat(timespec="minutes"),
                  late=hours((scope.now - due).total_seconds()))
    table.cases["all"] = [int(r["key"]) for r in table.rows]
    return table


def headline(tables: dict[str, Table], rows: list[CaseRow], open_count: int) -> dict[str, Any]:
    chains = tables["handoffs"].cases
    handed = sum(len(ids) * (3 if key == "3" else int(key)) for key, ids in chains.items() if key != "ping_pong")
    return {
        "cases": len(rows), "open": open_count, "missed": len(tables["missed"].rows),
        "stalled": len(tables["stalls"].rows), "ping_pong": len(chains.get("ping_pong", [])),
        "handoffs_per_case": round(handed / len(rows), 2) if rows else None,
        "drowning": [r["label"] for r in tables["backlog"].rows if r["warning"]],
        "latency": {name: summary(r.marks.get(name) for r in rows) for name, _ in MILESTONES},
        "ledger_current": ledger.is_current(),
    }
