from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import APIKeyCookie, HttpBearer

from closeloop.cases.access import staff_for
from closeloop.cases.tokens import TokenRefused, staff_for_token


class TokenAuth(HttpBearer):
    """`Authorization: Bearer cl_…` for other systems."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        try:
            staff = staff_for_token(token)
        except TokenRefused as exc:  # a 401 that says why (expired, revoked), not a bare "Unauthorized"
            raise AuthenticationError(message=str(exc)) from None
        if staff is not None:
            request.staff = staff  # type: ignore[attr-defined]
        return staff


class SessionAuth(APIKeyCookie):
    """The staff web session, with Django's CSRF check on unsafe methods."""

    param_name = "sessionid"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        staff = staff_for(request.user)
        if staff is not None:
            request.staff = staff  # type: ignore[attr-defined]
        return staff
