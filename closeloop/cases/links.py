"""Signed, expiring, revocable links for requesters: no account, nothing guessable."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from .models import Case

SALT = "closeloop.requester-status"
MAX_AGE_DAYS = 90


def status_token(case: Case) -> str:
    return signing.dumps({"c": case.pk, "e": case.link_epoch}, salt=SALT, compress=True)


def status_url(case: Case) -> str:
    return f"{settings.SITE_URL}/s/{status_token(case)}/"


def case_for_token(token: str, max_age_days: int = MAX_AGE_DAYS) -> Case | None:
    """The case a token opens, or None when it is forged, expired or revoked."""
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age_days * 86400)
    except signing.BadSignature:
        return None
    case = Case.objects.filter(pk=data.get("c")).first()
    if case is None or case.link_epoch != data.get("e"):
        return None
    return case
