"""Queues: what each person owes next, with search, filters and bulk assign/snooze."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from closeloop.cases import actions
from closeloop.cases.access import can
from closeloop.cases.models import AuditEntry, Case, RequestType, Team
from closeloop.cases.stages import Stage

from . import quarantine
from .common import QUEUES, open_cases, queue_counts, queue_filters, staff_required
from .forms import BulkForm
from .search import search_filter

PAGE_SIZE = 50


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers; "degraded" when a mailbox does not connect (no names: public)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    failing = quarantine.failing_mailbox_count()
    return JsonResponse({"status": "degraded", "failing_mailboxes": failing} if failing else {"status": "ok"})


@staff_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("web:queue", name="mine")


def _filtered(request: HttpRequest, name: str) -> tuple[Any, dict[str, str]]:
    staff = request.staff  # type: ignore[attr-defined]
    cases = open_cases(staff).filter(queue_filters(staff)[name])
    params = {k: request.GET.get(k, "").strip() for k in ("q", "type", "stage", "team")}
    if params["q"]:
        cases = cases.filter(search_filter(params["q"]))
    if params["type"]:
        cases = cases.filter(request_type__slug=params["type"])
    if params["stage"] in Stage.values:
        cases = cases.filter(stage=params["stage"])
    if params["team"]:
        cases = cases.filter(team__slug=params["team"])
    return cases, params


@staff_required
def queue(request: HttpRequest, name: str) -> HttpResponse:
    if name not in QUEUES:
        raise Http404("no such queue")
    cases, params = _filtered(request, name)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    # Two steps: sort narrow rows to find the page's ids, then fetch those rows with their relations
    # (sorting thousands of wide joined rows to keep 51 costs more than the extra query).
    ids = list(cases.order_by("next_due_at", "id").values_list("pk", flat=True)
               [(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    found = Case.objects.select_related("request_type", "team", "owner__user", "requester").in_bulk(ids)
    rows = [found[pk] for pk in ids if pk in found]
    context = {
        "queue": name, "queue_label": QUEUES[name], "cases": rows[:PAGE_SIZE], "page": page,
        "has_next": len(rows) > PAGE_SIZE, "params": params, "now": timezone.now(),
        "bulk": BulkForm(allowed_ids=[]), "can_work": can(request.staff, "work"),  # type: ignore[attr-defined]
        "poll_seconds": settings.CLOSELOOP_WEB_POLL_SECONDS,
    }
    if request.htmx and request.GET.get("rows"):  # type: ignore[attr-defined]
        return render(request, "web/_queue_rows.html", context)
    context.update(nav(request), types=RequestType.objects.filter(is_active=True), teams=Team.objects.all(),
                   stages=Stage.choices)
    return render(request, "web/queue.html", context)


def nav(request: HttpRequest) -> dict[str, Any]:
    staff = request.staff  # type: ignore[attr-defined]
    return {"counts": queue_counts(staff), "queues": QUEUES, "quarantine_count": quarantine.count()}


@staff_required
def quarantine_page(request: HttpRequest) -> HttpResponse:
    if not can(request.staff, "work"):  # type: ignore[attr-defined]
        raise PermissionDenied("coordinators and supervisors work the quarantine")
    dismissed = request.GET.get("show") == "dismissed"
    return render(request, "web/quarantine.html", {
        **nav(request), "queue": "quarantine", "items": quarantine.items(dismissed=dismissed),
        "mailboxes": quarantine.mailboxes(), "showing_dismissed": dismissed,
        "dismissed_count": quarantine.dismissed_count(),
    })


@staff_required
@require_POST
def quarantine_retry(request: HttpRequest, inbound_id: int) -> HttpResponse:
    """Send one quarantined input through the intake pipeline again."""
    from closeloop.intake.models import InboundMessage
    from closeloop.intake.pipeline import retry

    if not can(request.staff, "work"):  # type: ignore[attr-defined]
        raise PermissionDenied("coordinators and supervisors work the quarantine")
    row = get_object_or_404(InboundMessage, pk=inbound_id, status=InboundMessage.Status.QUARANTINED)
    row = retry(row)
    staff = request.staff  # type: ignore[attr-defined]
    AuditEntry.objects.create(user=staff.user, action="quarantine_retry", case=row.case,
                              detail=f"inbound {row.pk}: {row.status}", ip=request.META.get("REMOTE_ADDR"))
    if row.status == InboundMessage.Status.QUARANTINED:
        messages.error(request, f"Still failing: {row.error[:200]}")
    else:
        messages.success(request, f"Processed{f' into {row.case.reference}' if row.case else ''}.")
    return redirect("web:quarantine")


@staff_required
@require_POST
def quarantine_dismiss(request: HttpRequest, inbound_id: int) -> HttpResponse:
    """Seen, nothing to do: the entry leaves the open list, kept and audited (intake.quarantine.dismiss)."""
    from closeloop.intake.quarantine import CannotDismiss, dismiss

    if not can(request.staff, "work"):  # type: ignore[attr-defined]
        raise PermissionDenied("coordinators and supervisors work the quarantine")
    try:
        dismiss(inbound_id, request.staff, request.POST.get("reason", ""),  # type: ignore[attr-defined]
                ip=request.META.get("REMOTE_ADDR"))
    except CannotDismiss as refused:
        messages.error(request, f"Not dismissed: {refused}.")
    else:
        messages.success(request, "Dismissed. It is kept under Dismissed.")
    return redirect("web:quarantine")


@staff_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """Assign or snooze many cases; each is its own action, so a conflict on one spares the rest."""
    staff = request.staff  # type: ignore[attr-defined]
    back = request.POST.get("next") or ""
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(back, allowed_hosts=None):
        back = reverse("web:queue", args=["mine"])  # only a path on this site: never "//evil" or "/\\evil"
    if not can(staff, "work"):
        raise PermissionDenied("only coordinators and supervisors assign or snooze in bulk")
    raw_ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()][:PAGE_SIZE * 4]
    allowed = list(open_cases(staff).filter(pk__in=raw_ids).values_list("pk", flat=True))
    form = BulkForm(request.POST, allowed_ids=allowed)
    if not form.is_valid():
        messages.error(request, "Choose cases you can see, and an owner or a snooze time with a reason.")
        return redirect(back)
    done, failed = _apply_bulk(request.POST.get("op", ""), form.cleaned_data, staff)
    if done:
        messages.success(request, f"Updated {done} case{'s' if done != 1 else ''}.")
    for error in failed:
        messages.error(request, error)
    return redirect(back)


def _apply_bulk(op: str, data: dict[str, Any], staff: Any) -> tuple[int, list[str]]:
    actor = actions.Actor.of(staff)
    done, failed = 0, []
    for case in open_cases(staff).filter(pk__in=data["ids"]).select_related("owner", "request_type"):
        try:
            if op == "assign" and data["owner"] is not None:
                actions.assign(case, actor, owner=data["owner"], reason="bulk assign")
            elif op == "snooze" and data["until"] and data["reason"]:
                actions.snooze(case, actor, until=data["until"], reason=data["reason"])
            else:
                return done, ["Choose an owner to assign, or a time and a reason to snooze."]
            done += 1
        except actions.ActionError as exc:
            failed.append(f"{case.reference}: {exc}")
        except actions.TransitionError as exc:
            failed.append(f"{case.reference}: {exc}")
    return done, failed
