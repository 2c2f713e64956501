"""Keep the materialised ledger (`models.Interval`) in step with the event log.

Design: each event's interval is written in the transaction that writes the event (a
`post_save` receiver, connected in apps.py), with the case row locked, so the table can
never miss an event or see one twice. A worker job that catches up by an event-id
watermark was the alternative; on PostgreSQL ids are handed out before commit, so a
watermark can pass an event whose transaction commits late, and the figures would lose it
silently. Writing in the same transaction costs one read, one update and one insert per
event.

Bulk-loaded history (no signals) and calendar edits are handled by `rebuild_cases` and
the worker job `remeasure`: when the calendars' fingerprint changes it walks every case,
a batch at a time, and measures its intervals again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction

from closeloop.bulk import update_rows
from closeloop.cases.ledger import PAUSED_PARTIES
from closeloop.cases.models import Case, Event, Team
from closeloop.cases.stages import WaitingOn
from closeloop.followups.calendar import calendar_for_team

from . import facts
from .clock import Clock, shared_timeline
from .models import CaseFacts, Interval, LedgerState

ACTIVE_PARTIES = frozenset({WaitingOn.OWNER, WaitingOn.SPECIALIST})
BATCH = 5000
EVENT_FIELDS = ("id", "case_id", "kind", "actor_kind", "from_stage", "to_stage", "waiting_on", "owner_id",
                "team_id", "at")


def _measure(team_id: int | None, start: datetime, end: datetime) -> float:
    return shared_timeline(calendar_for_team(team_id)).seconds(start, end)


def _interval(event: Event | dict[str, Any], elapsed: float, active: float, paused: float) -> Interval:
    values: dict[str, Any] = event if isinstance(event, dict) else {
        name: getattr(event, "pk" if name == "id" else name) for name in EVENT_FIELDS}
    get = values.__getitem__
    return Interval(event_id=get("id"), case_id=get("case_id"), kind=get("kind"), actor_kind=get("actor_kind"),
                    from_stage=get("from_stage"), stage=get("to_stage"), party=get("waiting_on"),
                    owner_id=get("owner_id"), team_id=get("team_id"), start=get("at"),
                    elapsed=elapsed, active=active, paused=paused)


def _totals(previous: Interval, seconds: float) -> tuple[float, float, float]:
    return (previous.elapsed + seconds,
            previous.active + (seconds if previous.party in ACTIVE_PARTIES else 0.0),
            previous.paused + (seconds if previous.party in PAUSED_PARTIES else 0.0))


def extend(event: Event) -> None:
    """Close the case's open interval at this event and open the event's own."""
    if event.kind == "opened":  # a new case's first event: nothing to close, nobody else sees it yet
        with transaction.atomic():
            first = _interval(event, 0.0, 0.0, 0.0)
            first.save(force_insert=True)
            facts.start(first, facts.case_of(event), _measure).save(force_insert=True)
        return
    with transaction.atomic():
        # Locking the open interval serialises two events of one case: the second waits, then finds no
        # open row (the first closed it) and measures the case again from its events.
        previous = (Interval.objects.select_for_update().filter(case_id=event.case_id, end__isnull=True)
                    .order_by("-start", "-event_id").first())
        if previous is None or (previous.start, previous.event_id) > (event.at, event.pk):
            rebuild_cases([event.case_id])  # the first event, or one that arrived out of time order
            return
        previous.end, previous.seconds = event.at, _measure(previous.team_id, previous.start, event.at)
        Interval.objects.filter(pk=previous.pk).update(end=previous.end, seconds=previous.seconds)
        current = _interval(event, *_totals(previous, previous.seconds))
        Interval.objects.create(**_fields(current))
        if not step_facts(event, previous, current):
            rebuild_cases([event.case_id])  # a case from before the facts table: measure it whole


def step_facts(event: Event, previous: Interval, current: Interval) -> bool:
    """Move the case's facts on by one interval; False when the case has none yet."""
    known = CaseFacts.objects.filter(pk=event.case_id).first()
    if known is None:
        return False
    _advance(known, previous, current, event)
    known.save(force_update=True)
    return True


def _advance(known: CaseFacts, previous: Interval, current: Interval, event: Event) -> None:
    facts.set_targets(known, facts.case_of(event), _measure)
    facts.advance(known, previous, current, facts.owners_of(event.data) if event.kind == "assigned" else None)


def extend_many(events: Sequence[Event]) -> None:
    """`extend` for events written together (one per case): a fixed handful of queries."""
    by_case = {event.case_id: event for event in events}
    if len(by_case) != len(events):
        rebuild_cases(sorted(by_case))
        return
    with transaction.atomic():
        list(Case.objects.select_for_update().filter(pk__in=by_case).values_list("pk"))
        open_rows = {row.case_id: row for row in
                     Interval.objects.filter(case_id__in=by_case, end__isnull=True).order_by("start", "event_id")}
        known = {row.case_id: row for row in CaseFacts.objects.filter(case_id__in=by_case)}
        late = {pk for pk, event in by_case.items() if pk not in open_rows or pk not in known
                or (open_rows[pk].start, open_rows[pk].event_id) > (event.at, event.pk)}
        closed: list[tuple[int, dict[str, Any]]] = []
        opened, moved = [], []
        for case_id, previous in open_rows.items():
            if case_id in late:
                continue
            event = by_case[case_id]
            previous.end, previous.seconds = event.at, _measure(previous.team_id, previous.start, event.at)
            closed.append((previous.event_id, {"end": previous.end, "seconds": previous.seconds}))
            opened.append(_interval(event, *_totals(previous, previous.seconds)))
            row = known[case_id]
            before = [getattr(row, name) for name in facts.FIELDS]
            _advance(row, previous, opened[-1], event)
            # only the columns this event moved (a chase: the running interval and the requester's time)
            moved.append((case_id, {name: getattr(row, name) for name, was in zip(facts.FIELDS, before, strict=True)
                                    if getattr(row, name) != was}))
        update_rows(Interval, "event_id", closed)
        Interval.objects.bulk_create(opened)
        update_rows(CaseFacts, "case_id", moved)
        if late:
            rebuild_cases(sorted(late))


def on_events_appended(sender: type[Event], events: Sequence[Event], **_: Any) -> None:
    extend_many(events)


def _fields(interval: Interval) -> dict[str, Any]:
    return {f.attname: getattr(interval, f.attname) for f in Interval._meta.concrete_fields}


def on_event_saved(sender: type[Event], instance: Event, created: bool, raw: bool = False, **_: Any) -> None:
    if created and not raw:
        extend(instance)


def rebuild_cases(case_ids: Sequence[int], clock: Clock | None = None) -> int:
    """Measure these cases' intervals again from their events; returns how many were written."""
    clock = clock or Clock()
    written = 0
    for first in range(0, len(case_ids), 500):
        chunk = list(case_ids[first:first + 500])
        with transaction.atomic():
            Interval.objects.filter(case_id__in=chunk).delete()
            CaseFacts.objects.filter(case_id__in=chunk).delete()
            events = (Event.objects.filter(case_id__in=chunk).order_by("case_id", "at", "id")
                      .values(*EVENT_FIELDS))
            rows = list(_chain(events.iterator(chunk_size=BATCH), clock))
            Interval.objects.bulk_create(rows, batch_size=BATCH)
            cases = Case.objects.only("id", "team_id", "opened_at", "first_response_due_at", "resolution_due_at")
            measure = lambda team, a, b: clock.seconds(team, a, b) or 0.0  # noqa: E731
            CaseFacts.objects.bulk_create(facts.fold(rows, cases.in_bulk(chunk), facts.assigned_owners(chunk),
                                                     measure), batch_size=BATCH)
            written += len(rows)
    return written


def _chain(events: Iterable[dict[str, Any]], clock: Clock) -> Iterable[Interval]:
    previous: Interval | None = None
    for event in events:
        if previous is not None and previous.case_id == event["case_id"]:
            seconds = clock.seconds(previous.team_id, previous.start, event["at"]) or 0.0
            previous.end, previous.seconds = event["at"], seconds
            current = _interval(event, *_totals(previous, seconds))
        else:
            current = _interval(event, 0.0, 0.0, 0.0)
        if previous is not None:
            yield previous
        previous = current
    if previous is not None:
        yield previous


def fingerprint() -> str:
    """What the intervals were measured on: every team's calendar and the default."""
    parts = []
    for team_id in [None, *Team.objects.order_by("pk").values_list("pk", flat=True)]:
        c = calendar_for_team(team_id)
        parts.append(f"{team_id}|{c.tz.key}|{c.week}|{sorted(c.holidays)}|{c.country}|{c.subdivision}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def is_current() -> bool:
    state = LedgerState.objects.filter(pk=1).first()
    return state is not None and state.fingerprint == fingerprint() and state.remeasured_through is None


def remeasure(limit: int = 500) -> int:
    """Worker job: after a calendar change (or on a database that predates the ledger), measure
    every case again, `limit` cases per call, claiming each batch by compare-and-set."""
    state, _ = LedgerState.objects.get_or_create(pk=1)
    current = fingerprint()
    if state.fingerprint != current:
        cursor = 0
    elif state.remeasured_through is None:
        return 0
    else:
        cursor = state.remeasured_through
    ids = list(Case.objects.filter(pk__gt=cursor).order_by("pk").values_list("pk", flat=True)[:limit])
    with transaction.atomic():
        claimed = LedgerState.objects.filter(
            pk=1, fingerprint=state.fingerprint, remeasured_through=state.remeasured_through,
        ).update(fingerprint=current, remeasured_through=ids[-1] if len(ids) == limit else None)
        if claimed != 1:
            return 0
        rebuild_cases(ids)
    return len(ids)


def rebuild_all() -> int:
    """Measure every case again now (the `closeloop analytics-rebuild` command)."""
    ids = list(Case.objects.order_by("pk").values_list("pk", flat=True))
    written = rebuild_cases(ids)
    LedgerState.objects.update_or_create(pk=1, defaults={"fingerprint": fingerprint(), "remeasured_through": None})
    return written
