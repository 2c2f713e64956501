"""The follow-up worker job: claim due cases, re-evaluate them, act, set the next due time.

`run_due(limit)`:
1. claim up to `limit` open cases whose `next_due_at` has passed, earliest first, by
   compare-and-set of (id, next_due_at) to a lease (`now + CLOSELOOP_FOLLOWUP_LEASE_SECONDS`).
   On PostgreSQL the pick uses FOR UPDATE SKIP LOCKED so concurrent workers take disjoint
   rows; the CAS is the same on both databases. A worker that dies holding a lease frees
   the case when the lease runs out;
2. load the claimed cases in one query;
3. for each, re-read the state (reply arrived? snoozed? reassigned? closed? outside
   business hours?) and act through `cases.actions`, in one transaction per case; the
   action's version check makes a concurrent staff edit win, never a double action;
4. a case whose evaluation raises gets its due time pushed forward (fail forward), the
   rest of the batch still runs, and the first error is re-raised at the end.

Due times always count from *now*, so a follow-up due long ago (the worker was down) is
performed once and the next one is scheduled from the moment it was performed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.deadlines import cadence_days, policy
from closeloop.cases.models import Case, Event, Staff
from closeloop.cases.stages import NextAction, Stage, WaitingOn

from . import noise
from .assignment import chain_target, on_duty, pick_owner, stale_owner
from .calendar import calendar_for_team
from .clocks import Clock, sla_status
from .models import Reminder

log = logging.getLogger(__name__)
SYSTEM = actions.Actor.system("follow-ups")
FAIL_FORWARD = timedelta(minutes=15)
DEFAULT_FRACTIONS = [0.5, 0.9]
DEFAULT_CHAIN = ["team_lead", "supervisor"]
DEFAULT_BREACH_REPEAT_HOURS = 8.0
MAX_LOOK_AHEAD_HOURS = 8.0  # staff-held cases are looked at at least once a business day
OWNER_HELD = {WaitingOn.OWNER, WaitingOn.SPECIALIST, WaitingOn.EXTERNAL}


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.CLOSELOOP_FOLLOWUP_LEASE_SECONDS)


def claim(limit: int, now: datetime, lease: datetime) -> list[int]:
    """Lease up to `limit` due open cases to this worker (next_due_at = lease) in one statement.

    The UPDATE re-checks that each row is still due, so it is a compare-and-set: on
    PostgreSQL the pick skips rows another worker is claiming (FOR UPDATE SKIP LOCKED), on
    SQLite the single writer makes the statement atomic. Returns the ids claimed.
    """
    qn, table = connection.ops.quote_name, connection.ops.quote_name(Case._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    due = f"{qn('next_due_at')} <= %s AND NOT ({qn('stage')} = %s)"
    # Identifiers come from the model, every value is a parameter.
    sql = (f"UPDATE {table} SET {qn('next_due_at')} = %s WHERE {qn('id')} IN (SELECT {qn('id')} "  # noqa: S608
           f"FROM {table} WHERE {due} ORDER BY {qn('next_due_at')}, {qn('id')} LIMIT %s{lock}) AND {due} "
           f"RETURNING {qn('id')}")
    field = Case._meta.get_field("next_due_at")
    at, until = field.get_db_prep_save(now, connection), field.get_db_prep_save(lease, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [until, at, Stage.CLOSED.value, limit, at, Stage.CLOSED.value])
        return [pk for (pk,) in cursor.fetchall()]


def run_due(limit: int = 100, now: datetime | None = None) -> int:
    """Worker job: handle up to `limit` due follow-ups; returns how many were handled.

    Plain chasers (the bulk of the work) go through `chase_batch` in one transaction and a
    fixed number of queries; every other case is re-evaluated one by one by `handle`.
    """
    now = now or timezone.now()
    lease = lease_until(now)
    ids = claim(limit, now, lease)
    if not ids:
        return 0
    cases = Case.objects.select_related("request_type", "team", "owner__user", "specialist__user",
                                        "requester").in_bulk(ids)
    claimed = [cases[pk] for pk in ids if pk in cases]
    try:
        rest = chase_batch(claimed, now)
    except Exception:
        log.exception("the chase batch failed; handling its cases one by one")
        rest = [Case.objects.select_related("request_type", "team", "owner__user", "specialist__user", "requester")
                .get(pk=c.pk) for c in claimed]
    first_error: Exception | None = None
    for case in rest:
        try:
            outcome = handle(case, now)
            log.debug("%s: %s", case.reference, outcome)
        except actions.ConflictError:
            log.info("%s changed while we looked at it; its new due time stands", case.reference)
        except Exception as exc:
            # Fail forward: still ours (lease unchanged) → look again later, not in a crash loop.
            Case.objects.filter(pk=case.pk, next_due_at=lease).update(next_due_at=now + FAIL_FORWARD)
            log.exception("follow-up of %s failed; retrying in %s", case.reference, FAIL_FORWARD)
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return len(ids)


def _plain_chase(case: Case) -> bool:
    return (case.stage == Stage.AWAITING_INFO and case.snoozed_until is None and case.next_action != NextAction.WAKE
            and case.followup_step < len(cadence_days(case)))


def chase_batch(cases: list[Case], now: datetime) -> list[Case]:
    """Chase every plain awaiting-information case of the batch at once; returns the others.

    In order: a closed calendar defers the chase to the opening, the noise budget (one query
    for all recipients) may defer it further, the rest are chased by
    `actions.chase_requesters` with their noise-ledger rows in the same transaction, and the
    deferrals are written grouped by due time. A recipient seen twice in one batch is left to
    `handle` for the second case, so the budget counts the first.
    """
    rest: list[Case] = []
    later: dict[int, datetime] = {}
    pairs: list[tuple[Case, str]] = []
    for case in cases:
        email = case.requester.email if case.requester else ""
        calendar = calendar_for_team(case.team_id)
        if not _plain_chase(case) or not email or email in {e for _, e in pairs}:
            rest.append(case)  # no email address: `handle` gives the case back to its owner to phone
        elif not calendar.is_open_at(now):
            later[case.pk] = calendar.next_open(now)
        else:
            pairs.append((case, email))
    allowed = noise.next_allowed_many(pairs, now)
    later.update({pk: at for pk, at in allowed.items() if at > now})
    chase = [case for case, _ in pairs if allowed[case.pk] <= now]
    if chase:
        with transaction.atomic():
            chased = actions.chase_requesters(chase, SYSTEM, now=now)
            noise.record_many([(case, email, "requester_chased") for case, email in pairs if case.pk in chased], now)
    _defer_many([case for case in cases if case.pk in later], later)
    return rest


def _defer_many(cases: list[Case], when: dict[int, datetime]) -> None:
    """`_set_due` for many cases: one UPDATE per distinct due time, each row only at its version."""
    groups: dict[datetime, list[Case]] = {}
    for case in cases:
        groups.setdefault(when[case.pk], []).append(case)
    for at, group in groups.items():
        match = Q(pk__in=[])
        for case in group:
            match |= Q(pk=case.pk, version=case.version)
        Case.objects.filter(match).update(next_due_at=at)


def _set_due(case: Case, when: datetime) -> None:
    """Move only the timer; a concurrent edit (version changed) already set its own."""
    Case.objects.filter(pk=case.pk, version=case.version).update(next_due_at=when)
    case.next_due_at = when


def handle(case: Case, now: datetime) -> str:
    """Re-evaluate one claimed case from its current state and do what is due."""
    if not case.is_open:
        return "closed"
    if case.snoozed_until is not None:
        if case.snoozed_until <= now:
            actions.wake(case, SYSTEM, now=now)
            return "woken"
        _set_due(case, case.snoozed_until)
        return "snoozed"
    if case.next_action == NextAction.WAKE:
        actions.wake(case, SYSTEM, now=now)
        return "woken"
    if case.stage == Stage.AWAITING_INFO:
        return _to_requester(case, now, "chase")
    if case.stage == Stage.ANSWERED:
        return _to_requester(case, now, "autoclose")
    return _staff_held(case, now)


# ---------------------------------------------------------------- the requester side

NO_EMAIL = "no email address on file, so no chaser can be sent: reach the requester another way (phone, fax)"


def _to_requester(case: Case, now: datetime, what: str) -> str:
    """Chase (or auto-close) in business hours and within the recipient's noise budget."""
    calendar = calendar_for_team(case.team_id)
    if not calendar.is_open_at(now):
        _set_due(case, calendar.next_open(now))
        return "deferred to opening"
    email = case.requester.email if case.requester else ""
    if what == "chase" and not email:  # a chaser would go nowhere and the case close unanswered
        return actions.requester_unreachable(case, SYSTEM, error=NO_EMAIL, now=now).kind
    if email:
        allowed = noise.next_allowed(case, email, now)
        if allowed > now:
            _set_due(case, allowed)
            return "deferred by noise budget"
    with transaction.atomic():
        if what == "chase":
            event = actions.chase_requester(case, SYSTEM, now=now)
        else:
            event = actions.auto_close_answered(case, SYSTEM, now=now)
        if email:
            noise.record(case, email, event.kind, now)
    return event.kind


# ---------------------------------------------------------------- the staff side


def _staff_held(case: Case, now: datetime) -> str:
    if case.owner_id is None and case.waiting_on == WaitingOn.OWNER:
        owner = pick_owner(case, now)
        if owner is not None:
            actions.assign(case, SYSTEM, owner=owner, reason="automatic assignment", now=now)
            return "assigned"
    if case.owner_id is not None and case.waiting_on == WaitingOn.OWNER and stale_owner(case, now):
        owner = pick_owner(case, now, exclude=case.owner_id)
        if owner is not None:
            return _reassign(case, owner, now)
    events = list(Event.objects.filter(case_id=case.pk).order_by("at", "id"))
    status = sla_status(case, now, events)
    chain = _policy_list(case, "escalation_chain", DEFAULT_CHAIN)
    if status.breached and case.escalation_level < len(chain):
        return _escalate(case, chain[case.escalation_level], status.clocks, now)
    due = _next_look(case, status.clocks, now)
    crossed = _crossed(case, status.clocks, events)
    if crossed is not None or case.next_action in (NextAction.CHASE_SPECIALIST, NextAction.CHECK_EXTERNAL):
        return _remind(case, crossed, due, now)
    _set_due(case, due)
    return "rescheduled"


def _policy_list(case: Case, key: str, default: list[Any]) -> list[Any]:
    value = policy(case, key, default)
    if not isinstance(value, list):
        raise ValueError(f"policy {key!r} of {case.request_type} must be a list, got {value!r}")
    return value


def _fractions(case: Case) -> list[float]:
    return sorted(float(f) for f in _policy_list(case, "reminder_fractions", DEFAULT_FRACTIONS))


def _crossed(case: Case, clocks: list[Clock], events: list[Event]) -> tuple[Clock, float] | None:
    """The highest reminder threshold a running clock has passed that nobody was reminded of."""
    done = {(e.data.get("target"), e.data.get("fraction")) for e in events
            if e.kind in ("owner_reminded", "specialist_reminded")}
    best: tuple[Clock, float] | None = None
    for clock in clocks:
        if not clock.running:
            continue
        passed = [f for f in _fractions(case) if clock.fraction >= f]
        if passed and (clock.target, passed[-1]) not in done and (best is None or passed[-1] > best[1]):
            best = (clock, passed[-1])
    return best


def _next_look(case: Case, clocks: list[Clock], now: datetime) -> datetime:
    """The next threshold or breach of a running clock, at most a business day away."""
    cal = calendar_for_team(case.team_id)
    hours = MAX_LOOK_AHEAD_HOURS
    if case.next_action == NextAction.CHASE_SPECIALIST:
        hours = float(policy(case, "specialist_reminder_hours", 16.0))  # type: ignore[arg-type]
    if case.next_action == NextAction.CHECK_EXTERNAL:
        hours = float(policy(case, "external_check_days", 3)) * 8  # type: ignore[arg-type]
    for clock in clocks:
        if not clock.running:
            continue
        for point in [*(f * clock.target_seconds for f in _fractions(case)), clock.target_seconds]:
            if point > clock.elapsed_seconds:
                hours = min(hours, (point - clock.elapsed_seconds) / 3600)
    return max(cal.add_hours(now, hours), now + timedelta(seconds=1))


def _remind(case: Case, crossed: tuple[Clock, float] | None, due: datetime, now: datetime) -> str:
    data: dict[str, object] = {"reason": case.next_action}
    if crossed is not None:
        clock, fraction = crossed
        data = {"target": clock.target, "fraction": fraction, "remaining_seconds": round(clock.remaining_seconds)}
    who, unreachable = _to_remind(case, now)
    if unreachable:  # shown on the timeline: the person the case is with was not told
        data["unreachable"] = [p.pk for p in unreachable]
        data["message"] = reminder_passed_on(unreachable[0], who)
    with transaction.atomic():
        if who is not None and who == case.specialist and case.waiting_on == WaitingOn.SPECIALIST:
            event = actions.remind_specialist(case, SYSTEM, due=due, data=data, now=now)
        else:
            event = actions.remind(case, SYSTEM, who=who, kind="owner_reminded", due=due, data=data, now=now)
        if who is not None:
            Reminder.objects.create(staff=who, case=case, kind=event.kind, text=_reminder_text(case, data)[:300],
                                    urgency_at=case.resolution_due_at or due, created_at=now)
    return event.kind


def reminder_passed_on(missed: Staff, instead: Staff | None) -> str:
    told = f"{instead} was reminded instead" if instead is not None else (
        "nobody who can act could be reminded (on leave, inactive or without an email address)")
    return f"{missed} has no email address, so no reminder could reach them; {told}"


def _to_remind(case: Case, now: datetime) -> tuple[Staff | None, list[Staff]]:
    """Who hears of it: the specialist a case waits on, else the owner; someone inactive or on leave is
    covered by the next who can act (the owner for a specialist, then the team lead, then a supervisor),
    and so is someone with no email address (returned second: the reminder could not reach them)."""
    first = [case.specialist] if case.waiting_on == WaitingOn.SPECIALIST else []
    people = on_duty([p for p in [*first, case.owner] if p is not None and p.is_active], now)
    unreachable = [p for p in people if not p.user.email]
    reachable = [p for p in people if p.user.email]
    return next(iter(reachable), None) or chain_target(case, "team_lead", now, by_email=True), unreachable


def _reminder_text(case: Case, data: dict[str, object]) -> str:
    if "target" in data:
        label = str(data["target"]).replace("_", " ")
        return f"{case.reference} {case.subject}: {int(float(data['fraction']) * 100)}% of the {label} target used"  # type: ignore[arg-type]
    return f"{case.reference} {case.subject}: {NextAction(case.next_action).label.lower()}"


def _escalate(case: Case, step: str, clocks: list[Clock], now: datetime) -> str:
    breached = ", ".join(c.target.replace("_", " ") for c in clocks if c.breached and not c.stopped)
    target = _chain_target(case, step, now)
    hours = float(policy(case, "breach_repeat_hours", DEFAULT_BREACH_REPEAT_HOURS))  # type: ignore[arg-type]
    with transaction.atomic():
        actions.escalate(case, SYSTEM, reason=f"{breached} target breached", to=target, now=now)
        _set_due(case, calendar_for_team(case.team_id).add_hours(now, hours))
    return "escalated"


def _chain_target(case: Case, step: str, now: datetime) -> Staff | None:
    return chain_target(case, step, now)


def _reassign(case: Case, owner: Staff, now: datetime) -> str:
    from closeloop.outbound.outbox import enqueue

    previous = case.owner
    with transaction.atomic():
        event = actions.assign(case, SYSTEM, owner=owner, reason="the owner did not act in time", now=now)
        recipients = [s.user.email for s in (previous, owner) if s is not None and s.user.email]
        if recipients:  # nobody with an address: the assigned event on the timeline is the record
            enqueue(case=case, purpose="reassigned", to=recipients,
                    subject=f"Reassigned: {case.reference} {case.subject}",
                    body=f"{case.reference} moved from {previous} to {owner}: no action within the agreed time.",
                    now=now, key=f"{case.pk}:reassigned:{event.pk}")
    return "reassigned"
