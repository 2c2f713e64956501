"""What every staff page shares: who is asking, which case, the audit trail, the queue counts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlparse

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from closeloop.cases.access import staff_for, visible_cases
from closeloop.cases.models import AuditEntry, Case, Staff
from closeloop.cases.stages import Stage, WaitingOn

View = Callable[..., HttpResponseBase]


def staff_required(view: View) -> View:
    """Signed in and an active staff member; `request.staff` is set for the view. When the session
    expired under a polling page, htmx is told to load the sign-in page as a whole page (a plain
    redirect would swap the sign-in form into a table row)."""

    @wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        staff = staff_for(request.user)
        if staff is None:
            raise PermissionDenied("this account is not an active staff member")
        request.staff = staff  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    signed_in = login_required(inner)

    @wraps(view)
    def expired_poll(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated and getattr(request, "htmx", False):
            page = urlparse(request.headers.get("HX-Current-URL", "")).path or "/"
            response = HttpResponse(status=204)
            response["HX-Redirect"] = f"{settings.LOGIN_URL}?{urlencode({'next': page})}"
            return response
        return signed_in(request, *args, **kwargs)

    return expired_poll


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a proxy is configured to set it.
    return request.META.get("REMOTE_ADDR") or None


def case_for(staff: Staff, case_id: int) -> Case:
    """The case if this person may see it; 404 otherwise (never reveal that it exists)."""
    case = (visible_cases(staff).select_related("request_type", "team", "owner__user", "specialist__user",
                                                "requester", "merged_into")
            .filter(pk=case_id).first())
    if case is None:
        raise Http404("no such case")
    return case


def audit(request: HttpRequest, action: str, case: Case | None = None, detail: str = "") -> None:
    user = request.user if request.user.is_authenticated else None
    AuditEntry.objects.create(user=user, action=action, case=case, detail=detail[:300], ip=client_ip(request))


# Queues: name → (label, filter over the person's visible open cases).
QUEUES: dict[str, str] = {
    "mine": "My work", "team": "Team", "triage": "Human triage", "waiting": "Waiting on others",
    "overdue": "Overdue",
}


def queue_filters(staff: Staff) -> dict[str, Q]:
    now = timezone.now()
    return {
        "mine": Q(owner=staff, waiting_on=WaitingOn.OWNER)
        | Q(specialist=staff, stage=Stage.AWAITING_SPECIALIST),
        "team": Q(team__in=staff.teams.all()),
        "triage": Q(stage__in=[Stage.TRIAGE, Stage.NEW]),
        "waiting": Q(waiting_on__in=[WaitingOn.REQUESTER, WaitingOn.SPECIALIST, WaitingOn.EXTERNAL]),
        "overdue": Q(next_due_at__lt=now),
    }


def open_cases(staff: Staff) -> QuerySet[Case]:
    return visible_cases(staff).exclude(stage=Stage.CLOSED)


def queue_counts(staff: Staff) -> dict[str, int]:
    """Every queue's size in one query (the navigation shows them on every page)."""
    filters = queue_filters(staff)
    counts = open_cases(staff).aggregate(**{name: Count("id", filter=q) for name, q in filters.items()})
    return {name: counts[name] or 0 for name in filters}
