"""Assignment within a team: who should own a case sitting in a team queue?

`pick_owner` chooses among the team's active members with `auto_assign` on, skipping
anyone on leave or off shift (`Availability`) now:
1. a member who already owns another open case of the same requester keeps them all;
2. otherwise the member with the lowest load relative to capacity
   ((open cases + 1) / capacity), which spreads work round-robin weighted by capacity;
   members at or above capacity are used only when everybody is;
3. ties go to the member who was given a case least recently.

`stale_owner` says whether the owner has not acted on the case within the request
type's `reassign_after_hours` business hours (no policy key: never).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Q

from closeloop.cases.deadlines import policy
from closeloop.cases.models import Case, Event, Role, Staff
from closeloop.cases.stages import Stage

from .calendar import calendar_for_team
from .models import Leave

HANDOVER_KINDS = ("opened", "assigned", "escalated")  # events that make someone the owner


def on_duty(candidates: list[Staff], now: datetime) -> list[Staff]:
    """The candidates not on leave at `now`, in their order."""
    away = set(Leave.objects.filter(staff__in=candidates, starts_at__lte=now, ends_at__gt=now)
               .values_list("staff_id", flat=True))
    return [staff for staff in candidates if staff.pk not in away]


def chain_target(case: Case, step: str, now: datetime, *, by_email: bool = False) -> Staff | None:
    """Who takes the case at this step of the escalation chain: the team lead, else (or for "supervisor")
    the first supervisor. Never the owner, and never someone who cannot take it now: inactive, a specialist,
    on leave. The worker's chain and an escalation by hand (`actions.escalate` naming no one) both ask here.
    `by_email`: only someone with an email address (a reminder reaches people by their digest)."""
    people: list[Staff] = []
    if step == "team_lead" and case.team and case.team.lead_id:
        people.append(case.team.lead)  # type: ignore[arg-type]
    people += Staff.objects.filter(role=Role.SUPERVISOR).select_related("user").order_by("id")
    fit = [p for p in people if p.can_own_cases and p.pk != case.owner_id and (p.user.email or not by_email)]
    return next(iter(on_duty(fit, now)), None)


def available(candidates: list[Staff], now: datetime) -> list[Staff]:
    out = []
    for staff in on_duty(candidates, now):
        shift = getattr(staff, "availability", None)
        if shift is not None and not shift.to_calendar().is_open_at(now):
            continue
        out.append(staff)
    return out


def pick_owner(case: Case, now: datetime, *, exclude: int | None = None) -> Staff | None:
    if case.team_id is None:
        return None
    members = list(Staff.objects.filter(teams=case.team_id, is_active=True, auto_assign=True)
                   .exclude(role=Role.SPECIALIST)  # briefed, never owners: they cannot assign, ask, reply or close
                   .exclude(pk=exclude or 0).select_related("availability", "user"))
    members = available(members, now)
    if not members:
        return None
    ids = [m.pk for m in members]
    if case.requester_id:
        keeper = (Case.objects.filter(requester_id=case.requester_id, owner_id__in=ids).exclude(stage=Stage.CLOSED)
                  .exclude(pk=case.pk).order_by("-opened_at").values_list("owner_id", flat=True).first())
        if keeper is not None:
            return next(m for m in members if m.pk == keeper)
    load = dict(Case.objects.filter(owner_id__in=ids).exclude(stage=Stage.CLOSED).values_list("owner_id")
                .annotate(n=Count("id")).values_list("owner_id", "n"))
    last = dict(Event.objects.filter(kind="assigned", owner_id__in=ids).values_list("owner_id")
                .annotate(at=Max("at")).values_list("owner_id", "at"))
    room = [m for m in members if load.get(m.pk, 0) < m.capacity] or members

    def weight(m: Staff) -> tuple[float, float, int]:
        at = last.get(m.pk)
        return ((load.get(m.pk, 0) + 1) / max(m.capacity, 1), at.timestamp() if at else 0.0, m.pk)

    return min(room, key=weight)


def stale_owner(case: Case, now: datetime) -> bool:
    """True when the owner has done nothing on the case for `reassign_after_hours` business hours."""
    hours = policy(case, "reassign_after_hours", None)
    if hours is None or case.owner_id is None:
        return False
    since = Event.objects.filter(case_id=case.pk).filter(
        Q(actor_staff_id=case.owner_id) | Q(kind__in=HANDOVER_KINDS, owner_id=case.owner_id)
    ).aggregate(at=Max("at"))["at"]
    if since is None:
        return False
    return calendar_for_team(case.team_id).seconds_between(since, now) >= float(hours) * 3600  # type: ignore[arg-type]
