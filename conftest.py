"""Suite-wide fixtures: the database under test (SQLite or PostgreSQL), a real SMTP
server, the demo practice's people and policies."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + sync Playwright


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "postgres"], default=os.environ.get("CLOSELOOP_TEST_DB", "sqlite"),
                     help="database engine the suite runs on")


def pytest_report_header(config: pytest.Config) -> str:
    return f"closeloop database: {config.getoption('--db')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    engine = config.getoption("--db")
    for item in items:
        marker = item.get_closest_marker("postgres_only")
        if marker and engine != "postgres":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only"))


@pytest.fixture(scope="session")
def db_engine(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if request.config.getoption("--db") == "postgres":
        from closeloop.testing.postgres import start

        cluster = start()
        request.addfinalizer(cluster.stop)
        db.update({"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
                   "PASSWORD": "", "HOST": "127.0.0.1", "PORT": str(cluster.port), "OPTIONS": {}})
        os.environ["CLOSELOOP_TEST_PG_URL"] = cluster.url
        # Django made the `default` connection (as SQLite) when the models were imported;
        # drop it so the next use builds a PostgreSQL one from the settings above.
        from django.db import connections

        connections.close_all()
        del connections["default"]
    else:
        # A file, not memory, so worker subprocesses in tests can share it.
        db.setdefault("TEST", {})["NAME"] = os.path.join(tempfile.mkdtemp(prefix="closeloop-sqlite-"), "test.sqlite3")
    yield


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Calendars and Django's cache (reports, rate limits) live per process while a test's rows
    roll back: each test starts with both empty."""
    from django.core.cache import cache

    from closeloop.followups.calendar import invalidate_cache

    invalidate_cache()
    cache.clear()
    yield
    invalidate_cache()
    cache.clear()


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Any]:
    from closeloop.testing.smtp import SMTPServer

    with SMTPServer() as server:
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        yield server


@pytest.fixture
def practice(db: None) -> Any:
    """The demo practice without cases: teams, request types and people (alice… personas below)."""
    from closeloop.cases.demo import seed
    from closeloop.cases.models import RequestType, Staff, Team

    seed(cases=0, calendars=False)

    class Practice:
        teams = {t.slug: t for t in Team.objects.all()}
        types = {t.slug: t for t in RequestType.objects.select_related("routing_team")}
        staff = {s.user.username: s for s in Staff.objects.select_related("user")}
        coordinator = staff["coordinator"]
        specialist = staff["specialist"]
        supervisor = staff["supervisor"]
        admin = staff["admin"]

    return Practice()
