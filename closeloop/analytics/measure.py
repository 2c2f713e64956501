"""Turn the recorded history into the simulator's inputs (see simulate.py)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from closeloop.cases.models import Role, Staff

from . import patterns
from .data import Scope, Span, case_rows, spans
from .simulate import HOUR, Inputs, Trace, offsets
from .stats import percentile

TRIAGE_SHARE_SYNTHETIC = 0.15
WORK_CAP_PERCENTILE = 0.9


def coordinators(scope: Scope) -> int:
    """The team's coordinators on the roster (for a synthetic stream, which has no recorded owners)."""
    people = Staff.objects.filter(role=Role.COORDINATOR, is_active=True, auto_assign=True)
    if scope.team_id:
        people = people.filter(teams=scope.team_id)
    return max(1, people.distinct().count())


def attention(held: Iterable[Span]) -> dict[tuple[int, datetime], float]:
    """For each span an owner held, keyed (case, start): the seconds of the owner's time it received,
    counting 1/n for every second the owner held n cases at once."""
    by_owner: dict[int, list[Span]] = defaultdict(list)
    for span in held:
        if span.owner_id is not None:
            by_owner[span.owner_id].append(span)
    out: dict[tuple[int, datetime], float] = {}
    for owned in by_owner.values():
        changes = sorted([(s.start, 1) for s in owned] + [(s.end, -1) for s in owned])
        running, at, holding, prev = 0.0, {}, 0, None
        for t, step in changes:  # running = ∫ 1/n dt up to t
            if prev is not None and holding:
                running += (t - prev).total_seconds() / holding
            at[t], holding, prev = running, holding + step, t
        for s in owned:
            out[(s.case_id, s.start)] = out.get((s.case_id, s.start), 0.0) + at[s.end] - at[s.start]
    return out


def _picked_up(every: list[Span]) -> list[Span]:
    """A case waiting in the team's queue with no owner waits for the person who takes it: its unowned time
    counts as held by its first owner, so in the model it queues behind that person's other work (and more
    people shorten it) instead of being a fixed delay."""
    first: dict[int, int] = {}
    for span in sorted(every, key=lambda s: s.start):
        if span.owner_id is not None and span.party == "owner":
            first.setdefault(span.case_id, span.owner_id)
    return [replace(s, owner_id=first[s.case_id]) if s.party == "owner" and s.owner_id is None
            and s.stage != "triage" and s.case_id in first else s for s in every]


def recorded(scope: Scope) -> Inputs:
    """Each case of the period as a trace: when it arrived, who owned it and, up to its first answer (or
    up to now), how much of its owner's time it took and how long it waited on whom."""
    cases = scope.cases()
    rows = sorted((r for r in case_rows(cases) if not r.merged), key=lambda r: r.opened_at)
    until = {r.id: r.first_reply_at or scope.now for r in rows}
    in_triage = {r.id for r in rows if r.stage == "triage"}  # says how long the queue is, not how long triage takes
    every = _picked_up(spans(cases, scope.now))
    share = attention(s for s in every if s.party == "owner" and s.stage != "triage")
    held: dict[int, dict[str, float]] = defaultdict(dict)
    owners: dict[int, dict[int, float]] = defaultdict(dict)
    for span in every:
        if span.case_id not in until or span.start >= until[span.case_id]:
            continue
        seconds = (min(span.end, until[span.case_id]) - span.start).total_seconds()
        if span.stage == "triage":
            party = "" if span.case_id in in_triage else "triage"
        elif span.party == "owner" and span.owner_id is not None:
            party, whole = "work", (span.end - span.start).total_seconds()
            seconds = share.get((span.case_id, span.start), 0.0) * (seconds / whole if whole else 0.0)
            owners[span.case_id][span.owner_id] = owners[span.case_id].get(span.owner_id, 0.0) + seconds
        else:
            party = {"owner": "waiting", "external": "requester"}.get(span.party, span.party)
        if party:
            held[span.case_id][party] = held[span.case_id].get(party, 0.0) + seconds
    people = {o: i for i, o in enumerate(sorted({o for by in owners.values() for o in by}))}
    answers = [(r.first_reply_at - r.opened_at).total_seconds() for r in rows if r.first_reply_at]
    traces = [Trace(arrival=(r.opened_at - scope.start).total_seconds(), work=held[r.id].get("work", 0.0),
                    owner=people[max(owners[r.id], key=owners[r.id].__getitem__)] if owners[r.id] else -1,
                    waiting=held[r.id].get("waiting", 0.0), requester=held[r.id].get("requester", 0.0),
                    specialist=held[r.id].get("specialist", 0.0), triage=held[r.id].get("triage", 0.0),
                    answered=r.first_reply_at is not None) for r in rows]
    return Inputs(cases=_winsorised(traces), horizon=(scope.end - scope.start).total_seconds(),
                  coordinators=max(1, len(people)), triage_spans=[h["triage"] for h in held.values() if "triage" in h],
                  measured_p50=percentile(answers, 0.5), measured_p90=percentile(answers, 0.9))


def _winsorised(traces: list[Trace]) -> list[Trace]:
    """A case its owner held far longer than most (a week on someone's desk) was mostly not being worked:
    its work beyond the answered cases' 90th percentile counts as waiting, so it does not hold its owner
    in the model while other cases queue behind it."""
    cap = percentile([t.work for t in traces if t.answered], WORK_CAP_PERCENTILE)
    if cap is None:
        return traces
    return [t if t.work <= cap else replace(t, work=cap, waiting=t.waiting + t.work - cap) for t in traces]


def synthetic(scope: Scope, per_day: float, seed: int = 1) -> Inputs:
    rng = random.Random(seed)
    days = (scope.end - scope.start) / timedelta(days=1)
    people = coordinators(scope)
    traces = [_synthetic_profile(rng, t, rng.randrange(people))
              for t in offsets(patterns.arrivals(rng, scope.start, days, per_day), scope.start)]
    return Inputs(cases=_winsorised(traces), horizon=(scope.end - scope.start).total_seconds(), coordinators=people)


def _synthetic_profile(rng: random.Random, arrival: float, owner: int) -> Trace:
    kind = patterns.request_type(rng)
    requester = (patterns.delay_hours(rng, patterns.REQUESTER_DELAY_HOURS) * HOUR
                 if rng.random() < patterns.MISSING_INFO_RATE[kind] else 0.0)
    specialist = (patterns.delay_hours(rng, patterns.SPECIALIST_DELAY_HOURS) * HOUR
                  if rng.random() < patterns.SPECIALIST_RATE.get(kind, 0.0) else 0.0)
    triage = patterns.delay_hours(rng, (0.25, 2.0)) * HOUR if rng.random() < TRIAGE_SHARE_SYNTHETIC else 0.0
    return Trace(arrival=arrival, work=patterns.delay_hours(rng, (0.5, 2.0)) * HOUR, owner=owner,
                 requester=requester, specialist=specialist, triage=triage)
