"""Public request forms (no login): one per active request type."""

from __future__ import annotations

import logging

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from closeloop.cases.links import status_url
from closeloop.cases.models import RequestType

from .channels.webform.adapter import CONSENT, RequestForm, rate_limited, submit
from .models import InboundMessage

log = logging.getLogger(__name__)
SALT = "closeloop.intake.form-done"


def _ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


@require_http_methods(["GET", "POST"])
def request_form(request: HttpRequest, slug: str) -> HttpResponse:
    request_type = get_object_or_404(RequestType, slug=slug, is_active=True)
    form = RequestForm(request_type, request.POST or None, request.FILES or None)
    if request.method == "POST":
        if request.POST.get("website"):
            log.info("web form honeypot filled from %s; dropped", _ip(request))
            return render(request, "intake/form_done.html", {"reference": None, "request_type": request_type})
        if form.is_valid():
            if rate_limited(_ip(request)):  # counts valid submissions only: a typo costs no attempt
                return render(request, "intake/form_limited.html", {"request_type": request_type}, status=429)
            row = submit(form, _ip(request))
            return redirect("intake:done", token=signing.dumps(row.pk, salt=SALT))
    return render(request, "intake/form.html", {"form": form, "request_type": request_type, "consent": CONSENT})


def form_done(request: HttpRequest, token: str) -> HttpResponse:
    try:
        pk = signing.loads(token, salt=SALT, max_age=3600)
    except signing.BadSignature:
        raise Http404("unknown submission") from None
    row = get_object_or_404(InboundMessage.objects.select_related("case__request_type"), pk=pk)
    case = row.case
    return render(request, "intake/form_done.html", {
        "reference": case.reference if case else None, "status_url": status_url(case) if case else None,
        "request_type": case.request_type if case else None, "held": row.status == InboundMessage.Status.QUARANTINED,
    })
