"""API tokens: shown once at creation, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from .models import ApiToken, Staff

PREFIX = "cl_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_token(staff: Staff, name: str) -> str:
    key = PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(staff=staff, name=name, key_hash=_hash(key), prefix=key[:8])
    return key


def staff_for_token(key: str) -> Staff | None:
    token = ApiToken.objects.select_related("staff__user").filter(key_hash=_hash(key), revoked=False).first()
    if token is None or not token.staff.is_active or not token.staff.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.staff
