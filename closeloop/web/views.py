from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from closeloop.cases.access import staff_for, visible_cases
from closeloop.cases.stages import OPEN_STAGES


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def home(request: HttpRequest) -> HttpResponse:
    staff = staff_for(request.user)
    cases = (visible_cases(staff).filter(stage__in=OPEN_STAGES)
             .select_related("request_type", "owner__user", "team").order_by("next_due_at")[:100])
    return render(request, "web/home.html", {"cases": cases, "staff": staff})
