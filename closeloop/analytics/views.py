"""Dashboard pages: figures with charts, drill-down to the cases behind any row, CSV of every table,
and the Prometheus endpoint."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from closeloop.cases.access import staff_for
from closeloop.cases.models import AuditEntry, Staff, Team

from . import cache, svg, whatif
from .data import Scope, office_zone
from .figures import Figures, Report, report
from .metrics import exposition
from .tables import Table

LOCAL = frozenset({"127.0.0.1", "::1"})
PROXIED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")  # headers a reverse proxy adds


class BadScope(ValueError):
    pass


def _scope(request: HttpRequest, staff: Staff) -> Scope:
    try:
        days = int(request.GET.get("days", "28"))
    except ValueError:
        raise BadScope("days must be a whole number") from None
    if not 1 <= days <= 366:
        raise BadScope("days must be between 1 and 366")
    team_id = None
    if request.GET.get("team"):
        team = Team.objects.filter(slug=request.GET["team"]).first()
        if team is None:
            raise BadScope("no such team")
        team_id = team.pk
    timezone.activate(office_zone(staff, team_id))  # the API's rule: a team's figures on its office's clock
    return Scope.last_days(staff, timezone.now(), days, team_id)


def _staff(request: HttpRequest) -> Staff:
    staff = staff_for(request.user)
    if staff is None:
        raise PermissionDenied("analytics is for staff")
    return staff


def _one(request: HttpRequest, name: str) -> tuple[Scope, Table] | HttpResponse:
    """Just the one table a CSV export or drill-down needs."""
    staff = _staff(request)
    try:
        scope = _scope(request, staff)
    except BadScope as exc:
        return HttpResponseBadRequest(str(exc))
    remembered = cache.table(scope, name)
    if remembered is not None:
        return scope, remembered
    try:
        return scope, Figures(scope).table(name)
    except KeyError:
        raise Http404("no such table") from None


def _report(request: HttpRequest) -> tuple[Staff, Report | HttpResponse]:
    staff = _staff(request)
    try:
        scope = _scope(request, staff)
    except BadScope as exc:
        return staff, HttpResponseBadRequest(str(exc))
    return staff, cache.remembered(scope, "report", lambda: report(scope))


def _charts(figures: Report) -> dict[str, Any]:
    flow = figures.tables["flow"].rows
    days = [r["label"][5:] for r in flow]
    forecast = figures.tables["forecast"].rows
    held = figures.tables["held"].rows
    by_type = figures.tables["latency_type"].rows
    return {
        "flow": svg.lines("Arrivals and completions per day", days, {
            "arrivals": [r["arrivals"] for r in flow], "completions": [r["completions"] for r in flow]}),
        "backlog": svg.lines("Backlog: last days and two-week forecast",
                             days + [r["label"][5:] for r in forecast],
                             {"backlog": [r["backlog"] for r in flow] + [None] * len(forecast),
                              "forecast": [None] * len(flow) + [r["backlog"] for r in forecast]}),
        "held": svg.bars("Working hours held by each party", [r["label"] for r in held],
                         {"hours": [r["total"] for r in held]}),
        "latency": svg.bars("Time to first answer by request type (p50 / p90 h)", [r["label"] for r in by_type],
                            {"p50": [r["answer_p50"] for r in by_type], "p90": [r["answer_p90"] for r in by_type]}),
    }


ORDER = ["missed", "stalls", "holding", "backlog", "workload", "latency_type", "latency_team", "latency_owner",
         "latency_channel", "latency_week", "held", "dwell", "handoffs", "sla", "flow", "forecast"]


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    staff, figures = _report(request)
    if isinstance(figures, HttpResponse):
        return figures
    tables = [figures.tables[name] for name in ORDER]
    return render(request, "analytics/dashboard.html", {
        "figures": figures, "tables": tables, "charts": _charts(figures), "query": request.GET.urlencode(),
        "teams": Team.objects.all(), "staff": staff,
    })


@login_required
@require_GET
def table_csv(request: HttpRequest, name: str) -> HttpResponse:
    found = _one(request, name)
    if isinstance(found, HttpResponse):
        return found
    _, table = found
    AuditEntry.objects.create(user=_staff(request).user, action="analytics_export", detail=name,
                              ip=request.META.get("REMOTE_ADDR"))
    response = HttpResponse(table.to_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="closeloop-{name}.csv"'
    return response


@login_required
@require_GET
def drill(request: HttpRequest, name: str, key: str) -> HttpResponse:
    found = _one(request, name)
    if isinstance(found, HttpResponse):
        return found
    scope, table = found
    if key not in table.cases:
        raise Http404("no such figure")
    row = next((r for r in table.rows if r["key"] == key), {"label": key})
    cases = (scope.visible().filter(pk__in=table.cases[key])
             .select_related("request_type", "owner__user", "team").order_by("opened_at"))
    return render(request, "analytics/cases.html", {"table": table, "row": row, "cases": cases,
                                                    "query": request.GET.urlencode()})


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.CLOSELOOP_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return HttpResponse("a valid bearer token is required\n", status=401, content_type="text/plain")
    elif request.META.get("REMOTE_ADDR") not in LOCAL or any(h in request.headers for h in PROXIED):
        # a reverse proxy on this host makes every visitor's request arrive from localhost
        return HttpResponse("metrics are served to localhost only, not through a proxy; "
                            "set CLOSELOOP_METRICS_TOKEN\n", status=403, content_type="text/plain")
    return HttpResponse(exposition(timezone.now()), content_type="text/plain; version=0.0.4; charset=utf-8")


def _what_if_options(request: HttpRequest) -> whatif.Options:
    try:
        extra = int(request.GET.get("extra", "1"))
        triage = int(request.GET.get("triage", "50"))
    except ValueError:
        raise BadScope("extra and triage must be whole numbers") from None
    if not 1 <= extra <= 5 or not 0 <= triage <= 100:
        raise BadScope("extra must be 1-5 coordinators and triage 0-100 %")
    return whatif.Options(extra_coordinators=extra, triage_share=triage / 100)


@login_required
@require_GET
def what_if(request: HttpRequest) -> HttpResponse:
    """What would help: the model checked against the recorded history, then the scenarios (cached a while:
    it replays every arrival of the period dozens of times)."""
    staff = _staff(request)
    try:
        scope, options = _scope(request, staff), _what_if_options(request)
    except BadScope as exc:
        return HttpResponseBadRequest(str(exc))
    answer, problem = None, ""
    try:
        answer = cache.what_if(scope, options, lambda: whatif.what_if(scope, options))
    except whatif.NothingToModel as exc:
        problem = str(exc)
    unit, per = answer.unit() if answer is not None else ("h", 3600.0)
    chart, rows, check = None, _scenario_rows(answer, per), _check_rows(answer, per)
    if answer is not None and answer.results:
        chart = svg.bars(f"Time to first answer by scenario (p50 / p90 {unit})", [r.name for r in answer.results], {
            "p50": [_in(r.p50, per) for r in answer.results], "p90": [_in(r.p90, per) for r in answer.results]})
    fragment = request.headers.get("HX-Request") == "true"
    return render(request, "analytics/_whatif.html" if fragment else "analytics/whatif.html", {
        "answer": answer, "problem": problem, "chart": chart, "rows": rows, "check": check, "options": options,
        "unit": unit,
        "teams": Team.objects.all(),
        "query": request.GET.urlencode(), "triage": round(options.triage_share * 100),
    })


def _in(seconds: float | None, per: float) -> float | None:
    return None if seconds is None else round(seconds / per, 1)


def _scenario_rows(answer: whatif.WhatIf | None, per: float) -> list[dict[str, Any]]:
    if answer is None or not answer.results:
        return []
    base = answer.results[0]

    def change(value: float | None, before: float | None, r: Any) -> int | None:
        return None if r is base or not value or not before else round(100 * (value - before) / before)

    return [{"name": r.name, "p50": _in(r.p50, per), "p90": _in(r.p90, per), "answered": round(r.answered),
             "backlog": round(r.mean_backlog, 1), "backlog_end": round(r.final_backlog, 1), "busy": round(100 * r.busy),
             "busiest_hour": round(100 * r.busiest_hour),
             "change50": change(r.p50, base.p50, r), "change90": change(r.p90, base.p90, r)}
            for r in answer.results]


def _check_rows(answer: whatif.WhatIf | None, per: float) -> list[dict[str, Any]]:
    v = answer.validation if answer is not None else None
    if v is None:
        return []
    return [{"name": name, "recorded": _in(recorded, per), "model": _in(model, per),
             "error": None if e is None else round(100 * e)}
            for name, recorded, model, e in (("p50", v.measured_p50, v.model.p50, v.errors[0]),
                                             ("p90", v.measured_p90, v.model.p90, v.errors[1]))]
