"""The dashboard's report, kept for a minute so that repeated views cost one key lookup.

The key holds what the figures are computed from: who is looking (their visibility), the
period and team, the minute, the newest event and message, and the ledger's state. Any new
event, message (acknowledgements come from messages) or re-measuring changes the key, so a
cached report never hides a change the log has; `now` moves on at most a minute before the
running intervals are measured afresh (the entry also expires after
`CLOSELOOP_ANALYTICS_CACHE_SECONDS`). Renames (team and staff labels) show within that time.
On PostgreSQL an event whose transaction commits after a higher id was seen is caught by the
next minute's key.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, cast

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router
from django.db.models import Max
from django.utils import timezone

from closeloop.cases.models import Event, Message, Staff

from .data import Scope
from .figures import Report
from .models import LedgerState
from .tables import Table

T = TypeVar("T")


def seconds() -> int:
    return int(getattr(settings, "CLOSELOOP_ANALYTICS_CACHE_SECONDS", 60))


def _minute(at: datetime) -> int:
    return int(at.timestamp() // 60)


def key(scope: Scope, what: str) -> str:
    staff = scope.staff
    viewer = "none" if staff is None else f"{staff.pk}:{staff.role}"
    state = LedgerState.objects.filter(pk=1).values_list("fingerprint", "remeasured_through").first()
    parts = [what, viewer, scope.team_id, str(timezone.get_current_timezone()),  # whose days the rows are
             _minute(scope.start), _minute(scope.end), _minute(scope.now),
             Event.objects.aggregate(m=Max("id"))["m"], Message.objects.aggregate(m=Max("id"))["m"], state]
    return _name(parts)


def _name(parts: list[object]) -> str:
    return "closeloop-analytics:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def remembered(scope: Scope, what: str, compute: Callable[[], T]) -> T:
    """`compute()`, or its result from the last minute for the same scope and data."""
    ttl = seconds()
    if ttl <= 0:
        return compute()
    return cast(T, cache.get_or_set(key(scope, what), compute, ttl))


WHAT_IF_SECONDS = 15 * 60
WHAT_IF_EVENTS = 100


def what_if(scope: Scope, options: object, compute: Callable[[], T]) -> T:
    """The what-if answer for this viewer, period, team and choice, kept for WHAT_IF_SECONDS or until
    WHAT_IF_EVENTS more events have been written: not keyed by the newest event like the report, since
    weeks of history barely move with one event and replaying the model on every view of a busy office
    would keep a CPU busy; but a burst (a demo replay, a morning's mail) shows within a view or two.
    Any change to the roster (who is in which team, role, capacity, active, auto-assign) is a new key at
    once: it decides which cases the viewer may see and how many coordinators the model has."""
    staff = scope.staff
    days = round((scope.end - scope.start).total_seconds() / 86400)
    newest = Event.objects.aggregate(m=Max("id"))["m"] or 0
    parts = ["what-if", None if staff is None else (staff.pk, staff.role), scope.team_id, days, options,
             int(scope.now.timestamp() // WHAT_IF_SECONDS), newest // WHAT_IF_EVENTS, roster()]
    return cast(T, cache.get_or_set(_name(parts), compute, WHAT_IF_SECONDS))


def roster() -> str:
    """A fingerprint of the staff roster: two small reads (an office has tens of staff, not thousands)."""
    people = Staff.objects.order_by("id").values_list("id", "role", "capacity", "is_active", "auto_assign")
    members = Staff.teams.through.objects.order_by("staff_id", "team_id").values_list("staff_id", "team_id")
    return hashlib.sha256(repr((list(people), list(members))).encode()).hexdigest()


def recall(scope: Scope, what: str) -> object | None:
    """The remembered result, if there is one, without computing it."""
    return cache.get(key(scope, what)) if seconds() > 0 else None


def report(scope: Scope) -> Report | None:
    """The dashboard's report for this scope if one was computed in the last minute on the same data."""
    found = recall(scope, "report")
    return found if isinstance(found, Report) else None


def table(scope: Scope, name: str) -> Table | None:
    """One table of a remembered report (drill-downs, CSV and the API read it instead of computing)."""
    found = report(scope)
    return None if found is None else found.tables.get(name)


SWEEP_SECONDS = 300
_swept = {"at": float("-inf")}
_sweep_lock = threading.Lock()


def sweep(limit: int = 0) -> int:
    """Worker job: every SWEEP_SECONDS, delete the expired entries of a database cache table.

    Django's database cache deletes expired rows only once the table holds MAX_ENTRIES (1,000)
    rows, and the dashboard writes a new key for every minute someone views it, a 365-day report
    of a large office being megabytes: without this the table would hold a thousand of them.
    Returns 0 (it never counts as work, so an idle worker still sleeps)."""
    with _sweep_lock:
        if time.monotonic() - _swept["at"] < SWEEP_SECONDS:
            return 0
        _swept["at"] = time.monotonic()
    backend = caches["default"]
    if not isinstance(backend, DatabaseCache):
        return 0
    db = connections[router.db_for_write(backend.cache_model_class)]
    now = timezone.now().replace(microsecond=0)
    if not settings.USE_TZ:
        now = now.replace(tzinfo=None)
    table, expires = db.ops.quote_name(backend.cache_model_class._meta.db_table), db.ops.quote_name("expires")
    with db.cursor() as cursor:
        # the table name is the operator's setting, quoted; the time is a parameter
        cursor.execute(f"DELETE FROM {table} WHERE {expires} < %s", [db.ops.adapt_datetimefield_value(now)])  # noqa: S608
    return 0
