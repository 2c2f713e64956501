"""The REST API: OpenAPI at /api/openapi.json, browsable docs at /api/docs."""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, Throttled

from closeloop.cases.actions import ActionError, ConflictError
from closeloop.cases.stages import TransitionError

from .auth import SessionAuth, TokenAuth
from .cases import CaseConflict
from .cases import router as cases_router
from .parser import NulInText, StrictParser

api = NinjaAPI(
    title="closeloop API",
    version="1",
    description="Every request gets an owner, a next step and an answer. "
    "Authenticate with `Authorization: Bearer <token>` (create one with `closeloop create-token`) "
    "or a staff session. Tokens expire (`closeloop tokens list` shows when; `closeloop tokens revoke` ends one). "
    "A 409 carries the case as it is now and its `version`; past the per-token rate limit, 429 with "
    "`Retry-After`. See docs/api.md.",
    auth=[TokenAuth(), SessionAuth()],
    urls_namespace="api",
    parser=StrictParser(),
)
api.add_router("/cases", cases_router)


@api.exception_handler(CaseConflict)
def case_conflict(request: HttpRequest, exc: CaseConflict) -> HttpResponse:
    body = {"detail": str(exc), "field": None, "version": exc.case.version, "case": exc.case.dict()}
    return api.create_response(request, body, status=409)


@api.exception_handler(ConflictError)
def conflict(request: HttpRequest, exc: ConflictError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc), "field": None}, status=409)


@api.exception_handler(TransitionError)
def transition(request: HttpRequest, exc: TransitionError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc), "field": None}, status=409)


def _nul(request: HttpRequest, exc: NulInText) -> HttpResponse:
    return api.create_response(request, {"detail": [{"type": "nul_character", "loc": exc.loc, "msg": str(exc)}]},
                               status=422)


@api.exception_handler(NulInText)
def nul_in_query(request: HttpRequest, exc: NulInText) -> HttpResponse:
    return _nul(request, exc)


@api.exception_handler(Throttled)
def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    # ninja adds Retry-After (the seconds until this token's window ends) to this answer
    wait = f"; retry in {math.ceil(exc.wait)} s" if exc.wait else ""
    return api.create_response(request, {"detail": f"too many requests for this token{wait}"}, status=429)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja wraps whatever the body parser raises in "Cannot parse request body" (400); say what it was.
    if isinstance(exc.__cause__, NulInText):
        return _nul(request, exc.__cause__)
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(ActionError)
def refused(request: HttpRequest, exc: ActionError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc), "field": exc.field}, status=400)


def register_optional_routers() -> None:
    """Routers other packages contribute (intake, understanding, analytics…)."""
    from closeloop.analytics.api import router as analytics_router
    from closeloop.followups.api import router as followups_router
    from closeloop.intake.api import router as intake_router
    from closeloop.understanding.api import router as understanding_router

    api.add_router("/intake", intake_router)
    api.add_router("/understanding", understanding_router)
    api.add_router("/followups", followups_router)
    api.add_router("/analytics", analytics_router)


register_optional_routers()
