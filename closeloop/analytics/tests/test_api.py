from __future__ import annotations

import pytest
import time_machine
from django.test import Client

from closeloop.cases.tokens import create_token

pytestmark = pytest.mark.django_db


def _get(history, url, username="supervisor", token=False):
    client = Client()
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {create_token(history.practice.staff[username], 'bi')}"
    else:
        client.force_login(history.practice.staff[username].user)
    with time_machine.travel(history.now, tick=False):
        return client.get(f"/api/analytics{url}", **headers)


def _rows(response):
    assert response.status_code == 200, response.content
    return {r["key"]: r for r in response.json()["rows"]}


def test_the_summary_gives_the_headline_numbers(history):
    body = _get(history, "/summary?days=7", token=True).json()
    assert (body["cases"], body["open"], body["missed"], body["stalled"], body["ping_pong"]) == (3, 1, 1, 1, 1)
    assert body["latency"]["answer"] == {"n": 2, "p50": 8.5, "p90": 12.9}
    assert body["ledger_current"] is False  # no re-measure has run in this database yet


def test_response_times_group_by_type_owner_channel_and_period(history):
    by_type = _rows(_get(history, "/latency?by=type&days=7"))
    assert (by_type["referral"]["human_p50"], by_type["referral"]["human_p90"]) == (1.5, 1.9)
    assert set(_rows(_get(history, "/latency?by=channel&days=7"))) == {"email", "webform", "fax"}
    assert list(_rows(_get(history, "/latency?by=period&period=day&days=7"))) == ["2026-03-02"]
    assert list(_rows(_get(history, "/latency?by=period&period=month&days=7"))) == ["2026-03"]
    assert _get(history, "/latency?by=colour").status_code == 422


def test_every_figure_is_served_with_the_number_of_cases_behind_each_row(history):
    names = _get(history, "/figures").json()
    assert {"held", "dwell", "handoffs", "sla", "stalls", "missed", "backlog", "forecast", "workload"} <= set(names)
    held = _rows(_get(history, "/figures/held?days=7"))
    assert (held["owner"]["total"], held["requester"]["total"], held["requester"]["case_count"]) == (79.0, 17.0, 2)
    assert _rows(_get(history, "/figures/dwell?days=7"))["awaiting_info"]["total"] == 10.0
    sla = _rows(_get(history, "/figures/sla?days=7"))["referral"]
    assert (sla["fr_met"], sla["fr_breached"], sla["paused"]) == (1, 1, 16.0)
    assert _rows(_get(history, "/figures/handoffs?days=7"))["2"]["ping_pong"] == 1
    assert len(_get(history, "/figures/forecast?days=7").json()["rows"]) == 14
    assert _get(history, "/figures/nonsense").status_code == 404


def test_stalls_take_their_own_limit_and_say_who_holds_the_case(history):
    stalled = _rows(_get(history, "/stalls?hours=60"))
    assert [(r["holder"], r["idle"]) for r in stalled.values()] == [("Casey Morgan", 66.0)]
    assert _rows(_get(history, "/stalls?hours=70")) == {}
    assert _get(history, "/stalls?hours=-1").status_code == 422


def test_it_drills_down_to_the_cases_behind_a_row(history):
    response = _get(history, "/figures/latency_type/referral/cases?days=7")
    assert [c["reference"] for c in response.json()] == [history.a.reference, history.d.reference]
    assert _get(history, "/figures/latency_type/nothing/cases?days=7").status_code == 404


def test_a_coordinator_sees_figures_only_for_their_teams(history):
    riley = _get(history, "/summary?days=7", username="riley", token=True).json()  # scheduling and billing
    assert (riley["cases"], riley["open"], riley["missed"]) == (1, 0, 0)
    assert set(_rows(_get(history, "/latency?by=type&days=7", username="riley"))) == {"appointment"}
    assert _get(history, "/figures/latency_type/referral/cases?days=7", username="riley").status_code == 404


def test_scope_parameters_are_checked(history):
    assert _rows(_get(history, "/latency?start=2026-03-02&end=2026-03-02"))["referral"]["cases"] == 2
    assert _rows(_get(history, "/latency?start=2026-03-03&end=2026-03-04")) == {}
    assert _get(history, "/latency?start=2026-03-04&end=2026-03-02").status_code == 400
    assert _get(history, "/latency?start=2026-03-04").status_code == 400
    assert _get(history, "/summary?days=0").status_code == 422
    assert _get(history, "/summary?team=nope").status_code == 400
    assert _rows(_get(history, "/latency?team=scheduling&days=7")).keys() == {"appointment"}


def test_anonymous_callers_are_refused(history):
    with time_machine.travel(history.now, tick=False):
        assert Client().get("/api/analytics/summary").status_code == 401


def test_after_the_dashboard_the_api_answers_from_the_same_report(history, django_assert_max_num_queries):
    urls = ("/summary?days=7", "/latency?by=type&days=7", "/figures/held?days=7", "/figures/held/owner/cases?days=7")
    client = Client()
    client.force_login(history.practice.staff["supervisor"].user)
    with time_machine.travel(history.now, tick=False):
        cold = {url: client.get(f"/api/analytics{url}").json() for url in urls}
        assert client.get("/analytics/?days=7").status_code == 200
        for url, body in cold.items():
            # session, user, staff, the rate count (its atomic block, add, read), the key's three, the drill's cases
            with django_assert_max_num_queries(12):
                assert client.get(f"/api/analytics{url}").json() == body, url


def test_dates_at_the_end_of_the_calendar_are_refused_not_a_500(history):
    r = _get(history, "/summary?start=9999-12-30&end=9999-12-31")
    assert r.status_code == 400 and "9999" in r.json()["detail"]
