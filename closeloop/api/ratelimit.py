"""Per-token rate limits for the cases and analytics API routes (ninja throttles).

Counted with the project's one limiter, `intake.ratelimit.hit`: a fixed window in a database
table shared by every web process, one conditional UPDATE per call (see docs/decisions.md,
"Shared counters live in the database"). Each router counts apart (an analytics dashboard
polling does not use up an EHR integration's case calls), per token, or per staff account
for a session. Authentication runs first, so a refused token never counts. Over the limit,
ninja answers 429 with `Retry-After` (api.py words the body).
"""

from __future__ import annotations

import hashlib
import math
import threading

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.throttling import BaseThrottle

from closeloop.intake.ratelimit import caller_key, hit


class PerToken(BaseThrottle):
    """At most `settings.<limit_setting>` calls per token per `CLOSELOOP_API_RATE_WINDOW_SECONDS`; 0: off."""

    def __init__(self, scope: str, limit_setting: str) -> None:
        self.scope, self.limit_setting = scope, limit_setting
        self._wait = threading.local()  # one throttle serves every thread: the wait belongs to this request

    def allow_request(self, request: HttpRequest) -> bool:
        self._wait.seconds = None
        limit = int(getattr(settings, self.limit_setting))
        if limit <= 0:
            return True
        now = timezone.now()
        digest = hashlib.sha256(caller_key(request).encode()).hexdigest()
        count, end = hit(f"api-{self.scope}:{digest}"[:80], settings.CLOSELOOP_API_RATE_WINDOW_SECONDS, now)
        if count <= limit:
            return True
        self._wait.seconds = max(1, math.ceil((end - now).total_seconds()))
        return False

    def wait(self) -> float | None:
        return getattr(self._wait, "seconds", None)
