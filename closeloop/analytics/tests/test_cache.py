"""The remembered report lives in the database cache, so every process reads the one computed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from closeloop.analytics import cache
from closeloop.analytics.data import Scope
from closeloop.analytics.figures import report
from closeloop.cases import actions
from closeloop.cases.models import Party

from .conftest import T0, at

READ_IN_ANOTHER_PROCESS = """
import json, sys
from datetime import datetime
import django
django.setup()
from closeloop.analytics import cache
from closeloop.analytics.data import Scope
from closeloop.cases.models import Staff
staff_id, start, now = sys.argv[1], datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
found = cache.report(Scope(Staff.objects.get(pk=staff_id), start, now, now))
print(json.dumps(None if found is None else {"cases": found.headline["cases"],
                                             "computed_by": found.headline.get("computed_by")}))
"""


def _database_url() -> str:
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _read_elsewhere(scope: Scope) -> object:
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "closeloop.settings_test",
           "CLOSELOOP_CACHE_URL": "db://closeloop_cache"}
    done = subprocess.run([sys.executable, "-c", READ_IN_ANOTHER_PROCESS, str(scope.staff.pk),  # type: ignore[union-attr]  # noqa: S603
                           scope.start.isoformat(), scope.now.isoformat()],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_a_report_computed_in_one_process_is_read_by_another(practice, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                   "LOCATION": "closeloop_cache"}}
    try:
        maria = Party.objects.create(name="Maria", email="maria@example.com")
        actions.open_case(actor=actions.Actor.system(), subject="A", request_type=practice.types["referral"],
                          requester=maria, now=at(0))
        scope = Scope(practice.supervisor, T0 - timedelta(days=1), at(5), at(5))
        assert _read_elsewhere(scope) is None

        def compute():
            computed = report(scope)
            computed.headline["computed_by"] = os.getpid()
            return computed

        assert cache.remembered(scope, "report", compute).headline["cases"] == 1
        assert _read_elsewhere(scope) == {"cases": 1, "computed_by": os.getpid()}
        actions.open_case(actor=actions.Actor.system(), subject="B", request_type=practice.types["referral"],
                          requester=maria, now=at(1))
        assert _read_elsewhere(scope) is None  # a new event: the other process computes afresh
    finally:
        from django.core.cache import cache as django_cache

        django_cache.clear()


def test_the_default_cache_is_the_shared_database_table():
    from closeloop.settings import _cache

    assert _cache("db://closeloop_cache")["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert _cache("locmem://")["BACKEND"].endswith("LocMemCache")
    with pytest.raises(Exception, match="CLOSELOOP_CACHE_URL"):
        _cache("redis://localhost")


@pytest.mark.django_db
def test_the_worker_sweeps_expired_entries_out_of_the_cache_table(settings, monkeypatch):
    import time_machine
    from django.core.cache import cache as django_cache
    from django.db import connection

    from closeloop.worker import jobs

    assert "closeloop.analytics.cache.sweep" in dict(jobs())
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                   "LOCATION": "closeloop_cache"}}

    def rows() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT cache_key FROM closeloop_cache ORDER BY cache_key")
            return [key.rsplit(":", 1)[-1] for (key,) in cursor.fetchall()]

    django_cache.set("a-minute-of-dashboard", b"x" * 100_000, 60)
    django_cache.set("a-what-if", "answer", 900)
    monkeypatch.setattr(cache, "_swept", {"at": float("-inf")})
    assert cache.sweep() == 0 and rows() == ["a-minute-of-dashboard", "a-what-if"]  # nothing expired yet
    with time_machine.travel(timedelta(minutes=2)):
        assert cache.sweep() == 0 and rows() == ["a-minute-of-dashboard", "a-what-if"]  # swept 5 minutes ago
        monkeypatch.setattr(cache, "_swept", {"at": float("-inf")})
        assert cache.sweep() == 0
        assert rows() == ["a-what-if"]
