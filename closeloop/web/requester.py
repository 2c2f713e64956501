"""The requester's status page behind a signed link: where the request stands, what we need, a rating.

Only requester-safe facts appear here: no staff names, internal notes, specialist questions
or answers. Every request is rate limited per IP address, and every form carries a CSRF token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from closeloop.cases import actions
from closeloop.cases.documents import DocumentRejected, over_limit, safe_filename, store_document
from closeloop.cases.links import case_for_token
from closeloop.cases.models import Case
from closeloop.cases.stages import Stage, WaitingOn

from .forms import field_label
from .models import Rating
from .ratelimit import rate_limited
from .zone import use_case_zone

PLAIN_STAGE = {
    Stage.NEW: "We received your request and are reviewing it.",
    Stage.TRIAGE: "We received your request and are reviewing it.",
    Stage.AWAITING_INFO: "We need some information from you before we can go on.",
    Stage.IN_PROGRESS: "We are working on your request.",
    Stage.AWAITING_SPECIALIST: "A clinician is reviewing your request.",
    Stage.WAITING_EXTERNAL: "We are waiting to hear from another office about your request.",
    Stage.READY_TO_REPLY: "We are preparing our answer.",
    Stage.ANSWERED: "We have answered. Reply to our email if anything is still open.",
    Stage.CLOSED: "Your request is complete.",
}
RATINGS = [(5, "Very good"), (4, "Good"), (3, "OK"), (2, "Poor"), (1, "Very poor")]
DATE_FIELDS = {"date_of_birth", "preferred_dates"}


def _case(token: str) -> Case:
    case = case_for_token(token)
    if case is None:
        raise Http404("This link has expired or was withdrawn.")
    return case


def _joined(case: Case) -> Case | None:
    """The case a merged duplicate ended up in (merges can chain), or None when it was not merged."""
    joined, hops = case, 0
    while joined.merged_into_id is not None and hops < 10:
        joined, hops = Case.objects.get(pk=joined.merged_into_id), hops + 1
    return joined if hops else None


def _expected(case: Case) -> datetime | None:
    if case.waiting_on == WaitingOn.REQUESTER or not case.is_open:
        return None
    return case.resolution_due_at or case.next_due_at


@never_cache
@rate_limited("status", get=60, post=10)
def status_page(request: HttpRequest, token: str) -> HttpResponse:
    case = _case(token)
    use_case_zone(case)
    if request.method == "POST":
        return _post(request, token, case)
    joined = _joined(case)
    if joined is not None:  # a duplicate folded into another case: where that one stands, nothing to do here
        return render(request, "web/status.html", {
            "case": case, "token": token, "joined": joined, "plain": PLAIN_STAGE[Stage(joined.stage)],
            "expected": _expected(joined)})
    rated = Rating.objects.filter(case=case).first()
    return render(request, "web/status.html", {
        "case": case, "token": token, "plain": PLAIN_STAGE[Stage(case.stage)],
        "waiting_on_you": case.is_open and case.waiting_on == WaitingOn.REQUESTER,
        "missing": [(n, field_label(n), n in DATE_FIELDS) for n in case.missing_fields] if case.is_open else [],
        "expected": _expected(case), "ratings": RATINGS, "rated": rated,
        "uploads": case.documents.filter(source="status_page").count(),
    })


def _post(request: HttpRequest, token: str, case: Case) -> HttpResponse:
    kind = request.POST.get("form")
    actor = actions.Actor.requester(case.requester.name if case.requester else "requester")
    try:
        if kind == "fields" and case.is_open:
            _fill(case, actor, request.POST)
            messages.success(request, "Thank you: we saved what you sent.")
        elif kind == "upload" and case.is_open:
            _upload(request, case, actor)
        elif kind == "rating" and not case.is_open and case.merged_into_id is None:
            _rate(case, actor, request.POST.get("rating", ""))
            messages.success(request, "Thank you for your rating.")
        else:
            messages.error(request, "That is not possible on this request any more.")
    except (actions.ActionError, actions.TransitionError, DocumentRejected) as exc:
        messages.error(request, str(exc))
    return redirect("web:status", token=token)


def _fill(case: Case, actor: actions.Actor, post: Any) -> None:
    given = {}
    for name in case.missing_fields:
        value = " ".join(str(post.get(f"field-{name}", "")).split())[:500]
        if value:
            given[name] = {"value": value, "confidence": 1.0, "source": {"kind": "status_page"}}
    if not given:
        raise actions.ActionError("fill in at least one item")
    for _attempt in range(3):  # staff may be working the case at the same moment: retry on a fresh copy
        try:
            actions.record_fields(case, actor, given)
            return
        except actions.ConflictError:
            case.refresh_from_db()
    raise actions.ActionError("the request was busy; please submit again")


def _upload(request: HttpRequest, case: Case, actor: actions.Actor) -> None:
    upload = request.FILES.get("document")
    if upload is None:
        raise actions.ActionError("choose a file to upload")
    limit = settings.CLOSELOOP_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:  # refused before it is read into memory
        raise DocumentRejected(over_limit(safe_filename(upload.name or "document"), upload.size, limit))
    doc = store_document(upload.read(), upload.name or "document", upload.content_type or "", source="status_page")
    for_field = request.POST.get("for_field", "")
    if for_field in case.missing_fields:
        actions.record_fields(case, actor, {for_field: {"value": doc.filename, "confidence": 1.0,
                                                        "source": {"kind": "status_page", "document": doc.pk}}})
    actions.record_inbound_message(case, actor, sender=case.requester.email if case.requester else "",
                                   subject=f"Uploaded {doc.filename}", body=f"Uploaded {doc.filename} on the "
                                   "status page.", channel="status_page", documents=[doc])
    from closeloop.understanding.pipeline import enqueue_case

    enqueue_case(case)  # the worker reads the upload (OCR) and may fill missing fields from it
    messages.success(request, f"Thank you: we received {doc.filename}.")


def _rate(case: Case, actor: actions.Actor, raw: str) -> None:
    if not raw.isdigit() or int(raw) not in dict(RATINGS):
        raise actions.ActionError("choose a rating from 1 to 5")
    try:
        # The one-to-one row decides: of two ratings sent at once, the second fails here, whole.
        with transaction.atomic():
            Rating.objects.create(case=case, value=int(raw), at=timezone.now())
            actions.record_event(case, actor, "rated", {"rating": int(raw)})
    except IntegrityError:
        raise actions.ActionError("you have already rated this request; thank you") from None
