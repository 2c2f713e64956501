"""A small fixed-window rate limiter on Django's cache, for public pages."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from .common import client_ip


def allow(key: str, limit: int, window_s: int) -> bool:
    """Count one hit on `key`; False once more than `limit` hits fall in the current window."""
    bucket = f"rl:{key}:{int(time.time() // window_s)}"
    cache.add(bucket, 0, timeout=window_s + 1)
    try:
        hits = cache.incr(bucket)
    except ValueError:  # the entry expired between add and incr
        cache.set(bucket, 1, timeout=window_s + 1)
        hits = 1
    return hits <= limit


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
