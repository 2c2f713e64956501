"""The cases and analytics API routes are rate-limited per token: 429 with Retry-After, configurable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from closeloop.cases.tokens import create_token

from .conftest import api

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 14, 0, 0, tzinfo=UTC)


@pytest.fixture
def limits(settings):
    settings.CLOSELOOP_API_CASES_RATE_LIMIT = 3
    settings.CLOSELOOP_API_ANALYTICS_RATE_LIMIT = 2
    settings.CLOSELOOP_API_RATE_WINDOW_SECONDS = 60
    return settings


def test_cases_calls_past_the_limit_get_429_with_retry_after_until_the_window_ends(client, token, limits):
    with time_machine.travel(T0 + timedelta(seconds=15), tick=False):
        assert [api(client, token, "get", "/cases/").status_code for _ in range(3)] == [200, 200, 200]
        refused = api(client, token, "post", "/cases/", {"subject": "x"})
    assert refused.status_code == 429 and refused["Retry-After"] == "45"
    assert "too many requests" in refused.json()["detail"] and "45 s" in refused.json()["detail"]
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        assert api(client, token, "get", "/cases/").status_code == 200


def test_each_token_has_its_own_count_and_analytics_its_own_limit(client, token, limits, practice):
    other = create_token(practice.supervisor, "bi")
    with time_machine.travel(T0, tick=False):
        assert [api(client, token, "get", "/analytics/figures").status_code for _ in range(3)] == [200, 200, 429]
        assert api(client, token, "get", "/cases/").status_code == 200  # the cases routes count apart
        assert api(client, other, "get", "/analytics/figures").status_code == 200


def test_a_staff_session_is_limited_per_account(client, limits, practice):
    client.force_login(practice.coordinator.user)
    with time_machine.travel(T0, tick=False):
        codes = [client.get("/api/cases/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_zero_turns_a_limit_off(client, token, limits):
    limits.CLOSELOOP_API_CASES_RATE_LIMIT = 0
    with time_machine.travel(T0, tick=False):
        assert {api(client, token, "get", "/cases/").status_code for _ in range(6)} == {200}


def test_a_refused_token_is_a_401_and_counts_nothing(client, limits):
    with time_machine.travel(T0, tick=False):
        assert {api(client, "cl_wrong", "get", "/cases/").status_code for _ in range(6)} == {401}
