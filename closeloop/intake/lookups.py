"""Rows every message looks up (request types, teams, SMTP routes), cached per process.

Intake reads the same few configuration rows for every message; at hundreds of
messages a second those lookups were a sixth of the work. An entry lives at most
`TTL_SECONDS`; a save or delete of one of these models in this process empties the
cache at once (`IntakeConfig.ready` connects `clear`), so an admin edit made in
another process (the web app) reaches a running worker within `TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from closeloop.cases.models import RequestType, Team

TTL_SECONDS = 30.0
T = TypeVar("T")
_entries: dict[tuple[str, str], tuple[float, Any]] = {}


def _cached(key: tuple[str, str], load: Callable[[], T]) -> T:
    hit = _entries.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < TTL_SECONDS:
        return hit[1]  # type: ignore[no-any-return]
    value = load()
    _entries[key] = (now, value)
    return value


def clear(*args: object, **kwargs: object) -> None:
    """Forget every entry (a signal receiver: the arguments are ignored)."""
    _entries.clear()


def request_type(slug: str) -> RequestType | None:
    return _cached(("type", slug), lambda: RequestType.objects.select_related("routing_team")
                   .filter(slug=slug, is_active=True).first())


def team(slug: str) -> Team | None:
    return _cached(("team", slug), lambda: Team.objects.filter(slug=slug).first())


def fallback_team() -> Team | None:
    """The team that holds a case nobody routed (as `cases.actions` chooses it)."""
    slug = getattr(settings, "CLOSELOOP_TRIAGE_TEAM", "intake")
    return _cached(("fallback", slug), lambda: Team.objects.filter(slug=slug).first()
                   or Team.objects.order_by("id").first())


def smtp_route(address: str) -> Any:
    from .models import SmtpRoute

    return _cached(("route", address), lambda: SmtpRoute.objects.select_related("request_type", "team")
                   .filter(address=address, is_active=True).first())
