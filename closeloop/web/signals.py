"""Sign-ins, failed sign-ins and sign-outs go into the audit trail beside the reads of case data."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from closeloop.cases.models import AuditEntry

from .common import client_ip


def _ip(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


def signed_in(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    AuditEntry.objects.create(user=user, action="sign_in", ip=_ip(request))


def signed_out(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    if user is not None:
        AuditEntry.objects.create(user=user, action="sign_out", ip=_ip(request))


def sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    # The name tried, never the password (Django already masks it in `credentials`).
    AuditEntry.objects.create(action="sign_in_failed", detail=str(credentials.get("username", ""))[:150],
                              ip=_ip(request))


def connect() -> None:
    user_logged_in.connect(signed_in, dispatch_uid="closeloop.web.audit.sign_in")
    user_logged_out.connect(signed_out, dispatch_uid="closeloop.web.audit.sign_out")
    user_login_failed.connect(sign_in_failed, dispatch_uid="closeloop.web.audit.sign_in_failed")
