"""Keep one `CaseFacts` row per case in step with its ledger (`models.Interval`).

`ledger.py` calls these as it writes intervals, in the same transaction and with the case
locked: `start` for a case's first interval, `advance` when an interval closes and the next
opens, and `fold` to measure a case again from scratch (rebuilds, late events, calendar
changes): the same `advance`, applied to every interval in order. So a facts row always
equals the fold of its case's intervals, which is what the tests check.

The figures this serves (figures.py, columns.py) are the ones the per-case rows computed:
milestones are the first `ack_sent`, staff action and `reply_sent` and the last move into
`closed`; held and dwell sum the finished intervals whose party holds the ball; the owner
chain follows `assigned` events (`data.from_owner` of the first, then each `to_owner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from closeloop.cases.models import Case, Event
from closeloop.cases.stages import WaitingOn

from .models import CaseFacts, Interval

HELD = (WaitingOn.OWNER.value, WaitingOn.SPECIALIST.value, WaitingOn.REQUESTER.value, WaitingOn.EXTERNAL.value)
Measure = Callable[[int | None, datetime, datetime], float]
Owners = tuple[Any, Any]  # an assigned event's (from_owner, to_owner)


def owners_of(data: Mapping[str, Any] | None) -> Owners:
    data = data or {}
    return data.get("from_owner"), data.get("to_owner")


def start(first: Interval, case: Case | None, measure: Measure, owners: Owners | None = None) -> CaseFacts:
    """The facts of a case whose first interval is `first`."""
    facts = CaseFacts(case_id=first.case_id, last_at=first.start)
    set_targets(facts, case, measure)
    _opened(facts, first, owners)
    return facts


def set_targets(facts: CaseFacts, case: Case | None, measure: Measure) -> None:
    """SLA targets as working seconds on the case's team calendar (as `sla_outcome` measured them)."""
    if case is None:
        return
    for name, due in (("fr_target", case.first_response_due_at), ("res_target", case.resolution_due_at)):
        setattr(facts, name, None if due is None else measure(case.team_id, case.opened_at, due) or 0.0)


def advance(facts: CaseFacts, closed: Interval, opened: Interval, owners: Owners | None = None) -> None:
    """`closed` has just ended (its `seconds` measured) and `opened` begins."""
    if closed.party in HELD and closed.seconds:
        name = f"held_{closed.party}"
        setattr(facts, name, getattr(facts, name) + closed.seconds)
        stage = f"dwell_{closed.stage}"
        if hasattr(facts, stage):
            setattr(facts, stage, getattr(facts, stage) + closed.seconds)
    _opened(facts, opened, owners)


def _opened(facts: CaseFacts, interval: Interval, owners: Owners | None) -> None:
    facts.last_at, facts.last_party = interval.start, interval.party
    facts.last_stage, facts.last_team_id = interval.stage, interval.team_id
    if interval.kind == "ack_sent" and facts.ack is None:
        facts.ack, facts.ack_at = interval.elapsed, interval.start
    if interval.actor_kind == "staff" and facts.human is None:
        facts.human = interval.elapsed
    if interval.kind == "reply_sent" and facts.answer is None:
        facts.answer, facts.answer_active, facts.answer_paused = interval.elapsed, interval.active, interval.paused
    if interval.stage == "closed" and interval.from_stage != "closed":
        facts.close, facts.close_active, facts.close_paused = interval.elapsed, interval.active, interval.paused
    if interval.kind == "assigned":
        was, now = owners or (None, None)
        if not facts.chained:
            facts.chained = True
            _person(facts, was)
        _person(facts, now)


def _person(facts: CaseFacts, person: Any) -> None:
    """Extend the owner chain by one entry (see figures.handoffs for the definition)."""
    if person is None or person == facts.chain_current:
        return
    if facts.chain_current is not None:
        facts.handoffs += 1
        if person == facts.chain_previous:
            facts.pongs += 1
    facts.chain_previous, facts.chain_current = facts.chain_current, person


def fold(intervals: Iterable[Interval], cases: Mapping[int, Case], owners: Mapping[int, Owners],
         measure: Measure) -> list[CaseFacts]:
    """Facts of every case from its intervals (ordered by case, start, event), measured afresh."""
    out: list[CaseFacts] = []
    previous: Interval | None = None
    for interval in intervals:
        got = owners.get(interval.event_id)
        if previous is not None and previous.case_id == interval.case_id:
            advance(out[-1], previous, interval, got)
        else:
            out.append(start(interval, cases.get(interval.case_id), measure, got))
        previous = interval
    return out


def assigned_owners(case_ids: list[int]) -> dict[int, Owners]:
    """(from_owner, to_owner) of every assigned event of these cases, by event id."""
    rows = Event.objects.filter(case_id__in=case_ids, kind="assigned").values_list("id", "data")
    return {pk: owners_of(data) for pk, data in rows}


def case_of(event: Event) -> Case:
    """The event's case as it was written (actions pass the saved case along), else from the database."""
    if Event._meta.get_field("case").is_cached(event):
        return event.case
    return Case.objects.get(pk=event.case_id)


FIELDS = [f.attname for f in CaseFacts._meta.concrete_fields if f.attname != "case_id"]
