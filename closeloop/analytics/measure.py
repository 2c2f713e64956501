"""Turn the recorded history into the simulator's inputs (see simulate.py)."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db.models import Exists, OuterRef

from closeloop.cases.models import Event, Role, Staff

from . import patterns
from .data import Scope, case_rows, spans
from .simulate import HOUR, Inputs, offsets
from .stats import percentile


def coordinators(scope: Scope) -> int:
    people = Staff.objects.filter(role=Role.COORDINATOR, is_active=True, auto_assign=True)
    if scope.team_id:
        people = people.filter(teams=scope.team_id)
    return max(1, people.distinct().count())


def _share(cases, kind: str) -> float:  # type: ignore[no-untyped-def]
    total = cases.count()
    if not total:
        return 0.0
    return cases.filter(Exists(Event.objects.filter(case=OuterRef("pk"), kind=kind))).count() / total


def recorded(scope: Scope) -> Inputs:
    cases = scope.cases()
    rows = [r for r in case_rows(cases) if not r.merged]
    answered = {r.id: r.first_reply_at for r in rows if r.first_reply_at}
    held: dict[int, dict[str, float]] = {i: {} for i in answered}
    triage: list[float] = []
    for span in spans(cases, scope.now):
        seconds = (span.end - span.start).total_seconds()
        if span.stage == "triage":
            if span.end < scope.now:  # a case still in triage says how long the queue is, not how long triage takes
                triage.append(seconds)
        elif span.case_id in answered and span.start < answered[span.case_id]:
            seconds = (min(span.end, answered[span.case_id]) - span.start).total_seconds()
            held[span.case_id][span.party] = held[span.case_id].get(span.party, 0.0) + seconds
    answers = [(r.first_reply_at - r.opened_at).total_seconds() for r in rows if r.first_reply_at]
    return Inputs(
        arrivals=offsets([r.opened_at for r in rows], scope.start), horizon=(scope.end - scope.start).total_seconds(),
        coordinators=coordinators(scope), triage_spans=triage, p_triage=_share(cases, "sent_to_triage"),
        profiles=[(h.get("owner", 0.0), h.get("requester", 0.0) + h.get("external", 0.0), h.get("specialist", 0.0))
                  for h in held.values()],
        measured_p50=percentile(answers, 0.5), measured_p90=percentile(answers, 0.9),
    )


def synthetic(scope: Scope, per_day: float, seed: int = 1) -> Inputs:
    rng = random.Random(seed)
    days = (scope.end - scope.start) / timedelta(days=1)
    return Inputs(
        arrivals=offsets(patterns.arrivals(rng, scope.start, days, per_day), scope.start),
        horizon=(scope.end - scope.start).total_seconds(), coordinators=coordinators(scope),
        profiles=[_synthetic_profile(rng) for _ in range(1000)], triage_spans=[], p_triage=0.15,
    )


def _synthetic_profile(rng: random.Random) -> tuple[float, float, float]:
    kind = patterns.request_type(rng)
    team = patterns.delay_hours(rng, (1.0, 6.0)) * HOUR
    requester = (patterns.delay_hours(rng, patterns.REQUESTER_DELAY_HOURS) * HOUR
                 if rng.random() < patterns.MISSING_INFO_RATE[kind] else 0.0)
    specialist = (patterns.delay_hours(rng, patterns.SPECIALIST_DELAY_HOURS) * HOUR
                  if rng.random() < patterns.SPECIALIST_RATE.get(kind, 0.0) else 0.0)
    return team, requester, specialist
