"""A fixed-window rate limiter for public pages (sign-in, password reset, status links, two-step codes).

The hits are counted in the database table the intake API's limiter uses (`intake.ratelimit.hit`),
not in Django's cache: the database cache's `incr` is a read then a write, so concurrent requests
from several web processes or threads could each read the same count and all get through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse

from closeloop.intake.ratelimit import hit

from .common import client_ip


def allow(key: str, limit: int, window_s: int) -> bool:
    """Count one hit on `key`; False once more than `limit` hits fall in the current window."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:64]  # the table's key holds 80 characters
    return hit(f"page:{digest}", window_s)[0] <= limit


def rate_limited(scope: str, *, get: int, post: int, window_s: int = 60) -> Callable[..., Any]:
    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = post if request.method == "POST" else get
            if not allow(f"{scope}:{request.method}:{client_ip(request)}", limit, window_s):
                response = HttpResponse("Too many requests. Please wait a minute and try again.",
                                        status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(window_s)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
