"""API tokens: shown once at creation, stored as a SHA-256 hash, valid until they expire or are revoked.

Every creation and revocation is an `AuditEntry` (`token_created`, `token_revoked`) naming the
token (name, prefix, id), its staff account and who did it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import ApiToken, AuditEntry, Staff

PREFIX = "cl_"
TOUCH_SECONDS = 60  # last_used_at is written at most this often per token: not one UPDATE per call


class TokenRefused(Exception):
    """A known token that no longer works (expired, revoked, its account disabled); the message says which."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def describe(token: ApiToken) -> str:
    return f"token {token.name!r} ({token.prefix}…, id {token.pk}) of {token.staff.user.get_username()}"


def create_token(staff: Staff, name: str, *, days: int | None = None, now: datetime | None = None,
                 by: str = "") -> str:
    """A new token for `staff`, valid for `days` (default `CLOSELOOP_API_TOKEN_DAYS`); the key, shown once."""
    now = now or timezone.now()
    days = settings.CLOSELOOP_API_TOKEN_DAYS if days is None else days
    if not 1 <= days <= 3650:
        raise ValueError(f"a token is valid for 1 to 3650 days, not {days}")
    name = name.strip()
    if not 1 <= len(name) <= 100:  # the column's length: longer was a database error on PostgreSQL
        raise ValueError(f"give the token a name of 1 to 100 characters, not {len(name)}")
    key = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(staff=staff, name=name, key_hash=hash_key(key), prefix=key[:8], created_at=now,
                                    expires_at=now + timedelta(days=days))
    audit("token_created", token, by, now)
    return key


def revoke(token: ApiToken, *, by: str = "", now: datetime | None = None) -> bool:
    """Revoke `token`; False if it already was. Audited."""
    if not ApiToken.objects.filter(pk=token.pk, revoked=False).update(revoked=True):
        return False
    audit("token_revoked", token, by, now)
    return True


def audit(action: str, token: ApiToken, by: str, now: datetime | None = None) -> None:
    detail = f"{describe(token)}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC" + (f"; by {by}" if by else "")
    AuditEntry.objects.create(at=now or timezone.now(), user=None, action=action, detail=detail[:300])


def staff_for_token(key: str, now: datetime | None = None) -> Staff | None:
    """The staff account a valid token acts as; None for a key that is no token. A known token that is
    expired, revoked or whose account is disabled raises TokenRefused saying which."""
    now = now or timezone.now()
    token = ApiToken.objects.select_related("staff__user").filter(key_hash=hash_key(key)).first()
    if token is None:
        return None
    if token.revoked:
        raise TokenRefused(f"this API token ({token.prefix}…) was revoked; ask an administrator for a new one")
    if token.expires_at <= now:
        raise TokenRefused(f"this API token ({token.prefix}…) expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
                           "ask an administrator for a new one (closeloop create-token)")
    if not token.staff.is_active or not token.staff.user.is_active:
        raise TokenRefused(f"this API token's account ({token.staff.user.get_username()}) is disabled")
    if token.last_used_at is None or now - token.last_used_at >= timedelta(seconds=TOUCH_SECONDS):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.staff
