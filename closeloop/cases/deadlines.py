"""When is the next step due? One place that turns policy into due times.

Every due time comes from `business_time.add_business_hours` with the case team's
calendar, so evenings, weekends and holidays never count against anyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .models import Case
from .stages import NextAction

DEFAULT_TRIAGE_HOURS = 4.0
DEFAULT_CADENCE_DAYS = [1, 3, 7]
DEFAULT_SPECIALIST_HOURS = 16.0
DEFAULT_REPLY_HOURS = 4.0
DEFAULT_EXTERNAL_DAYS = 3
DEFAULT_CONFIRM_DAYS = 5
BUSINESS_DAY_HOURS = 8.0


def add_business_hours(case: Case, start: datetime, hours: float) -> datetime:
    """Add working hours on the calendar of the case's team (wall-clock if it has none)."""
    from closeloop.followups.calendar import calendar_for_team

    return calendar_for_team(case.team_id).add_hours(start, hours)


def policy(case: Case, key: str, default: object) -> object:
    if case.request_type_id is None:
        return default
    return case.request_type.policy.get(key, default)  # type: ignore[union-attr]


def cadence_days(case: Case) -> list[float]:
    if case.request_type_id and case.request_type.followup_cadence_days:  # type: ignore[union-attr]
        return [float(d) for d in case.request_type.followup_cadence_days]  # type: ignore[union-attr]
    return [float(d) for d in DEFAULT_CADENCE_DAYS]


def sla_targets(case: Case, opened_at: datetime) -> tuple[datetime, datetime]:
    """First-response and resolution due times for a case opened at `opened_at`."""
    rt = case.request_type
    first = rt.first_response_hours if rt else DEFAULT_TRIAGE_HOURS * 2
    resolution = rt.resolution_hours if rt else 40.0
    if case.priority == "urgent":
        first, resolution = first / 4, resolution / 4
    elif case.priority == "high":
        first, resolution = first / 2, resolution / 2
    return add_business_hours(case, opened_at, first), add_business_hours(case, opened_at, resolution)


def next_due(case: Case, now: datetime) -> datetime:
    """The due time of `case.next_action`, computed from the case as it stands."""
    action = case.next_action
    if action == NextAction.WAKE and case.snoozed_until:
        return case.snoozed_until
    if action == NextAction.TRIAGE:
        return add_business_hours(case, now, float(policy(case, "triage_hours", DEFAULT_TRIAGE_HOURS)))  # type: ignore[arg-type]
    if action == NextAction.CHASE_REQUESTER:
        steps = cadence_days(case)
        step = min(case.followup_step, len(steps) - 1)
        return add_business_hours(case, now, steps[step] * BUSINESS_DAY_HOURS)
    if action == NextAction.CHASE_SPECIALIST:
        hours = float(policy(case, "specialist_reminder_hours", DEFAULT_SPECIALIST_HOURS))  # type: ignore[arg-type]
        return add_business_hours(case, now, hours)
    if action == NextAction.CHECK_EXTERNAL:
        days = float(policy(case, "external_check_days", DEFAULT_EXTERNAL_DAYS))  # type: ignore[arg-type]
        return add_business_hours(case, now, days * BUSINESS_DAY_HOURS)
    if action in (NextAction.SEND_REPLY, NextAction.APPROVE_REPLY):
        return add_business_hours(case, now, float(policy(case, "reply_hours", DEFAULT_REPLY_HOURS)))  # type: ignore[arg-type]
    if action == NextAction.CONFIRM_RESOLVED:
        days = float(policy(case, "autoclose_days", DEFAULT_CONFIRM_DAYS))  # type: ignore[arg-type]
        return add_business_hours(case, now, days * BUSINESS_DAY_HOURS)
    # WORK: the earliest SLA target still ahead, else a business day from now (a breached
    # target escalates once through the follow-up engine; it must not fire every few minutes).
    soon = now + timedelta(minutes=5)
    candidates = [d for d in (case.first_response_due_at if not case.first_responded_at else None,
                              case.resolution_due_at) if d is not None and d > soon]
    return min([*candidates, add_business_hours(case, now, BUSINESS_DAY_HOURS)])
