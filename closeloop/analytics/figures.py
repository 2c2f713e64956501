"""Latency figures from the ledger: where the time went, where cases stall, SLA with pauses.

`report(scope)` computes every table from one row of facts per case (`models.CaseFacts`,
kept at write time by facts.py beside the materialised ledger, read as columns by
columns.py) and a few queries over the open cases, and returns them with the headline
numbers. Durations are working seconds on the calendar of the team holding the case
(measured once, when the interval ends; clock.py for the ones still running); percentiles
are p50/p90 by linear interpolation over the per-case values (stats.py).
Merged duplicates are left out of latency figures: the primary case carries the work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings

from closeloop.cases.models import RequestType, Staff, Team
from closeloop.cases.stages import Stage, WaitingOn

from . import ledger
from .clock import Clock
from .columns import Columns, groups, load, summary
from .current import OpenCase, missed, open_cases, stalled
from .data import Scope
from .facts import HELD
from .load import drowning
from .stats import hours
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
    def every(self) -> Columns:
        """Every case in scope, merged duplicates included (handoffs count them)."""
        return load(self.scope.cases(), self.scope.now, self.clock)

    @cached_property
    def rows(self) -> Columns:
        """Cases in scope with milestones, time held and dwell; merged duplicates left out."""
        return self.every.kept()

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
            "handoffs": lambda: handoff_table(self.every),
            "sla": lambda: sla_table(self.rows, self.labels),
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


def _keys(cols: Columns, dimension: str, labels: Labels) -> tuple[list[str], dict[str, str]]:
    """Each case's group key in one dimension, and each key's label."""
    if dimension == "type":
        keys = [slug or "untyped" for slug in cols.types]
        return keys, {k: labels.types.get(k, "Untyped") if k != "untyped" else "Untyped" for k in set(keys)}
    if dimension == "team":
        keys = [str(team or 0) for team in cols.teams]
        return keys, {k: labels.teams.get(int(k), "No team") for k in set(keys)}
    if dimension == "owner":
        keys = [str(owner or 0) for owner in cols.owners]
        return keys, {k: labels.holder(int(k), None) if k != "0" else "Unowned" for k in set(keys)}
    if dimension == "channel":
        keys = [channel or "unknown" for channel in cols.channels]
        return keys, {k: k for k in set(keys)}
    period = {"day": lambda d: d.isoformat(), "month": lambda d: d.strftime("%Y-%m")}.get(
        dimension, lambda d: "{}-W{:02d}".format(*d.isocalendar()[:2]))
    names = {d: period(d) for d in set(cols.days)}
    keys = [names[d] for d in cols.days]
    return keys, {k: k for k in set(keys)}


def latency_table(dimension: str, title: str, cols: Columns, labels: Labels) -> Table:
    columns = [("label", title), ("cases", "Cases")]
    for name, heading in MILESTONES:
        columns += [(f"{name}_n", f"{heading} n"), (f"{name}_p50", f"{heading} p50 h"),
                    (f"{name}_p90", f"{heading} p90 h")]
    table = Table(f"latency_{dimension}", f"Response times by {title.lower()} (working hours)", columns)
    keys, names = _keys(cols, dimension, labels)
    members = groups(keys)
    for key in sorted(members, key=lambda k: names[k]):
        at = members[key]
        values: dict[str, Any] = {"label": names[key], "cases": len(at)}
        for name, _ in MILESTONES:
            s = summary(cols[name][at])
            values.update({f"{name}_n": s["n"], f"{name}_p50": s["p50"], f"{name}_p90": s["p90"]})
        table.add(key, cols.ids[at].tolist(), **values)
    return table


def held_table(cols: Columns) -> Table:
    table = Table("held", "Time held by each party (working hours)", [
        ("label", "Party"), ("cases", "Cases"), ("total", "Total h"), ("share", "Share %"),
        ("p50", "Per case p50 h"), ("p90", "Per case p90 h")])
    grand = float(sum(cols.held(p).sum() for p in HELD_ORDER)) or 1.0
    for party in HELD_ORDER:
        values = cols.held(party)
        holders = values > 0
        total = float(values[holders].sum())
        s = summary(values[holders])
        table.add(str(party), cols.ids[holders].tolist(), label=WaitingOn(party).label, cases=int(holders.sum()),
                  total=hours(total), share=round(100 * total / grand, 1), p50=s["p50"], p90=s["p90"])
    return table


HELD_ORDER = tuple(WaitingOn(party) for party in HELD)


def dwell_table(cols: Columns) -> Table:
    table = Table("dwell", "Dwell time per stage (working hours)", [
        ("label", "Stage"), ("cases", "Cases"), ("total", "Total h"), ("p50", "p50 h"), ("p90", "p90 h")])
    for stage in Stage:
        values = cols.dwell(stage)
        visited = values > 0
        if not visited.any():
            continue
        s = summary(values[visited])
        table.add(str(stage), cols.ids[visited].tolist(), label=stage.label, cases=int(visited.sum()),
                  total=hours(float(values[visited].sum())), p50=s["p50"], p90=s["p90"])
    return table


def handoffs(chain: list[int | None]) -> tuple[int, int]:
    """(handoffs, ping-pongs) in an owner chain: a handoff is a change between two people,
    a ping-pong is a return to the person who had it two owners before (A → B → A).
    `facts.advance` keeps the same counts as each `assigned` event is written."""
    people = [o for o in chain if o is not None]
    collapsed = [o for i, o in enumerate(people) if i == 0 or o != people[i - 1]]
    pongs = sum(1 for i in range(2, len(collapsed)) if collapsed[i] == collapsed[i - 2])
    return len(collapsed) - 1 if collapsed else 0, pongs


def handoff_table(cols: Columns) -> Table:
    """Cases with an owner chain (merged duplicates included), bucketed by handoffs."""
    table = Table("handoffs", "Handoffs between people per case", [
        ("label", "Handoffs"), ("cases", "Cases"), ("ping_pong", "Cases with ping-pong (A→B→A)")])
    chained = cols.subset(cols.chained)
    buckets = groups([str(min(int(n), 3)) for n in chained["handoffs"]])
    for key in sorted(buckets):
        at = buckets[key]
        table.add(key, chained.ids[at].tolist(), label="3 or more" if key == "3" else key, cases=len(at),
                  ping_pong=int((chained["pongs"][at] > 0).sum()))
    table.cases["ping_pong"] = chained.ids[chained["pongs"] > 0].tolist()
    return table


def sla_outcomes(cols: Columns, milestone: str, target: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per case: met | breached | pending (not reached, within target) masks, and paused seconds. The
    clock counts team time (owner or specialist) until the milestone, or until now when not reached;
    a case without a due time has none of the three."""
    done = ~np.isnan(cols[milestone])
    used = np.where(done, np.nan_to_num(cols[f"{milestone}_active"]), cols.held("owner") + cols.held("specialist"))
    paused = np.where(done, np.nan_to_num(cols[f"{milestone}_paused"]),
                      cols.held("requester") + cols.held("external"))
    due = ~np.isnan(cols[target])
    breached = due & (used > np.nan_to_num(cols[target]))
    return ({"met": due & ~breached & done, "breached": breached, "pending": due & ~breached & ~done},
            np.where(due, paused, 0.0))


def sla_table(cols: Columns, labels: Labels) -> Table:
    table = Table("sla", "SLA compliance, paused while waiting on the requester or an external party", [
        ("label", "Request type"), ("fr_met", "First response met"), ("fr_breached", "breached"),
        ("fr_pending", "pending"), ("fr_pct", "met %"), ("res_met", "Resolution met"),
        ("res_breached", "breached"), ("res_pending", "pending"), ("res_pct", "met %"), ("paused", "Paused h")])
    fr, _ = sla_outcomes(cols, "answer", "fr_target")
    res, paused = sla_outcomes(cols, "close", "res_target")
    members = groups([slug or "untyped" for slug in cols.types])
    for slug in sorted(members):
        at = members[slug]
        counts = {f"{prefix}_{k}": int(mask[at].sum()) for prefix, outcome in (("fr", fr), ("res", res))
                  for k, mask in outcome.items()}
        breached = at[fr["breached"][at] | res["breached"][at]]
        table.add(slug, cols.ids[breached].tolist(), label=labels.types.get(slug, "Untyped"),
                  paused=hours(float(paused[at].sum())),
                  fr_pct=_pct(counts["fr_met"], counts["fr_breached"]),
                  res_pct=_pct(counts["res_met"], counts["res_breached"]), **counts)
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


def headline(tables: dict[str, Table], rows: Columns, open_count: int) -> dict[str, Any]:
    chains = tables["handoffs"].cases
    handed = sum(len(ids) * (3 if key == "3" else int(key)) for key, ids in chains.items() if key != "ping_pong")
    return {
        "cases": len(rows), "open": open_count, "missed": len(tables["missed"].rows),
        "stalled": len(tables["stalls"].rows), "ping_pong": len(chains.get("ping_pong", [])),
        "handoffs_per_case": round(handed / len(rows), 2) if rows else None,
        "drowning": [r["label"] for r in tables["backlog"].rows if r["warning"]],
        "latency": {name: summary(rows[name]) for name, _ in MILESTONES},
        "ledger_current": ledger.is_current(),
    }
