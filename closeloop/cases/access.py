"""Who may see and do what. Every view and API handler asks here, never inline."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from .models import Case, Role, Staff

# Actions each role may take on a case it can see.
ACTION_ROLES: dict[str, frozenset[str]] = {
    "answer": frozenset({Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN, Role.COORDINATOR}),
    "comment": frozenset({Role.SPECIALIST, Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN}),
    "work": frozenset({Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN}),
    "approve": frozenset({Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN}),
    "escalate": frozenset({Role.COORDINATOR, Role.SPECIALIST, Role.SUPERVISOR, Role.ADMIN}),
    "merge": frozenset({Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN}),
    "configure": frozenset({Role.ADMIN}),
    "retrain": frozenset({Role.SUPERVISOR, Role.ADMIN}),
}


def staff_for(user: AbstractBaseUser | AnonymousUser) -> Staff | None:
    if not user.is_authenticated:
        return None
    try:
        staff = user.staff  # type: ignore[union-attr, attr-defined]
    except Staff.DoesNotExist:
        return None
    return staff if staff.is_active else None


def visible_cases(staff: Staff | None) -> QuerySet[Case]:
    """Cases this person may see: everything for supervisors and admins, their teams' and
    their own for coordinators, those briefed to them or owned by them for specialists."""
    if staff is None:
        return Case.objects.none()
    if staff.role in (Role.SUPERVISOR, Role.ADMIN):
        return Case.objects.all()
    mine = Q(owner=staff) | Q(specialist=staff)
    if staff.role == Role.SPECIALIST:
        return Case.objects.filter(mine)
    return Case.objects.filter(mine | Q(team__in=staff.teams.all()))


def can(staff: Staff | None, permission: str) -> bool:
    return staff is not None and staff.role in ACTION_ROLES[permission]


def can_see(staff: Staff | None, case: Case) -> bool:
    return visible_cases(staff).filter(pk=case.pk).exists()
