"""Per-token rate limit for the intake REST API: a fixed window counted in the database.

The count lives in a table, not in a per-process cache, so every web process shares it.
Each call adds one with a conditional UPDATE (no read-modify-write race); a call over
the limit is refused with 429 and `Retry-After` (seconds until the window ends).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from .models import ApiRateWindow


def caller_key(request: HttpRequest) -> str:
    """The bearer token (hashed) when the call carries one, else the staff account of the session."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()
    return f"staff:{request.staff.pk}"  # type: ignore[attr-defined]


def _window_start(now: datetime, seconds: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


def hit(key: str, seconds: int, now: datetime | None = None) -> tuple[int, datetime]:
    """Count one call on `key` in its fixed window of `seconds`: (calls so far in it, the window's end).

    Shared by every process: a conditional UPDATE adds one (no read-modify-write race), and the
    first call of a window inserts its row; a process that loses that race adds to the winner's.
    """
    now = now or timezone.now()
    start = _window_start(now, seconds)
    window = ApiRateWindow.objects.filter(key=key, window_start=start)
    with transaction.atomic():
        if not window.update(count=F("count") + 1):
            try:
                with transaction.atomic():
                    ApiRateWindow.objects.create(key=key, window_start=start, count=1)
                ApiRateWindow.objects.filter(window_start__lt=start - timedelta(days=1)).delete()
            except IntegrityError:  # another process opened this window a moment ago
                window.update(count=F("count") + 1)
        count = window.values_list("count", flat=True).get()
    return count, start + timedelta(seconds=seconds)


def retry_after(key: str, now: datetime | None = None) -> int | None:
    """Count this call; None when it is within the limit, else the seconds to wait."""
    now = now or timezone.now()
    limit, seconds = settings.CLOSELOOP_API_RATE_LIMIT, settings.CLOSELOOP_API_RATE_WINDOW_SECONDS
    if limit <= 0:
        return None
    count, end = hit(key, seconds, now)
    if count <= limit:
        return None
    return max(1, math.ceil((end - now).total_seconds()))


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Count this (authenticated) API call; over the limit, the 429 answer to return."""
    wait = retry_after(caller_key(request))
    if wait is None:
        return None
    # Returned by the operation, not raised: ninja's error responses cannot carry extra headers.
    refused = JsonResponse({"detail": f"too many requests for this token; retry in {wait} s"}, status=429)
    refused["Retry-After"] = str(wait)
    return refused
