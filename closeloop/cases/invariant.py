"""The no-limbo invariant, checkable on one case or the whole database."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Q

from .models import Case, format_reference
from .stages import NextAction, Stage, WaitingOn


def problems(case: Case) -> list[str]:
    if case.stage == Stage.CLOSED:
        found = []
        if case.next_due_at is not None:
            found.append("closed but still has a due time")
        if case.waiting_on != WaitingOn.NONE:
            found.append("closed but still waiting on someone")
        return found
    found = []
    if case.owner_id is None and case.team_id is None:
        found.append("no owner and no team queue")
    if not case.next_action or case.next_action == NextAction.NONE:
        found.append("no next action")
    if case.next_due_at is None:
        found.append("no due time")
    if not case.waiting_on or case.waiting_on == WaitingOn.NONE:
        found.append("waiting on nobody")
    return found


_BROKEN_OPEN = ~Q(stage=Stage.CLOSED) & (
    Q(owner__isnull=True, team__isnull=True) | Q(next_action="") | Q(next_action=NextAction.NONE)
    | Q(next_due_at__isnull=True) | Q(waiting_on="") | Q(waiting_on=WaitingOn.NONE)
)
_BROKEN_CLOSED = Q(stage=Stage.CLOSED) & (Q(next_due_at__isnull=False) | ~Q(waiting_on=WaitingOn.NONE))


def violations() -> list[tuple[str, list[str]]]:
    """Every case that breaks the invariant, found with one indexed query."""
    return list(_iter_violations())


def _iter_violations() -> Iterator[tuple[str, list[str]]]:
    for case in Case.objects.filter(_BROKEN_OPEN | _BROKEN_CLOSED).order_by("id").iterator():
        yield format_reference(case.pk), problems(case)
