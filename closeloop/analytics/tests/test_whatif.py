"""The dashboard's what-if panel: the model checked against history, then the scenarios."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from closeloop.analytics import views, whatif
from closeloop.testing.histories import answered_in_lockstep

from .conftest import T0
from .test_simulate import _recorded_history

pytestmark = pytest.mark.django_db
LATER = T0 + timedelta(days=16)


def _client(practice, username="supervisor"):
    client = Client()
    client.force_login(practice.staff[username].user)
    return client


def test_it_validates_the_model_then_compares_one_more_coordinator(practice):
    _recorded_history(practice)
    with time_machine.travel(LATER, tick=False):
        page = _client(practice).get("/analytics/what-if/?days=17&extra=2&triage=30")
    assert page.status_code == 200
    html = page.content.decode()
    assert "replays the 60 requests" in html and "the model is trusted" in html
    for scenario in ("as today", "2 more coordinators", "automatic chasing off", "triage share 30%"):
        assert scenario in html
    assert "<svg" in html and "Time to first answer by scenario" in html


def test_the_dashboard_loads_the_panel_and_htmx_gets_just_the_fragment(practice):
    _recorded_history(practice)
    client = _client(practice)
    with time_machine.travel(LATER, tick=False):
        dashboard = client.get("/analytics/?days=17").content.decode()
        fragment = client.get("/analytics/what-if/?days=17", headers={"HX-Request": "true"}).content.decode()
    assert 'hx-get="/analytics/what-if/?days=17"' in dashboard
    assert fragment.startswith('<div id="what-if-result">') and "<html" not in fragment
    assert "one more coordinator" in fragment


def test_it_withholds_scenarios_when_the_model_does_not_reproduce_history(practice, monkeypatch):
    answered_in_lockstep(practice.coordinator, practice.types["referral"], T0 + timedelta(days=2), n=120)
    monkeypatch.setattr(views, "_what_if_options", lambda request: whatif.Options(tolerance=0.1))
    with time_machine.travel(LATER, tick=False):
        html = _client(practice).get("/analytics/what-if/?days=17").content.decode()
    assert "does not reproduce the recorded history" in html
    assert "one more coordinator" not in html


def test_an_empty_period_says_why_and_bad_values_are_refused(practice):
    client = _client(practice)
    assert "no arrivals to replay in that period" in client.get("/analytics/what-if/?days=3").content.decode()
    assert client.get("/analytics/what-if/?extra=9").status_code == 400
    assert client.get("/analytics/what-if/?triage=abc").status_code == 400
    assert Client().get("/analytics/what-if/").status_code == 302


def _count_replays(monkeypatch) -> list:
    """Every replay the views run, by its options."""
    calls: list = []
    real = whatif.what_if
    monkeypatch.setattr(whatif, "what_if", lambda scope, options: calls.append(options) or real(scope, options))
    return calls


def test_the_answer_is_kept_a_while_instead_of_replaying_on_every_view(practice, monkeypatch):
    _recorded_history(practice)
    calls = _count_replays(monkeypatch)
    client = _client(practice)
    with time_machine.travel(LATER, tick=False):
        first = client.get("/analytics/what-if/?days=17", headers={"HX-Request": "true"}).content
        second = client.get("/analytics/what-if/?days=17", headers={"HX-Request": "true"}).content
        client.get("/analytics/what-if/?days=17&extra=2")
    assert first == second and len(calls) == 2


def test_a_coordinator_models_only_the_cases_they_may_see(practice):
    _recorded_history(practice)  # every case is the intake team's referral
    with time_machine.travel(LATER, tick=False):
        html = _client(practice, "riley").get("/analytics/what-if/?days=17").content.decode()
    assert "no arrivals to replay in that period" in html


def test_a_case_still_waiting_in_triage_is_not_taken_for_triage_work(practice):
    from closeloop.analytics import measure
    from closeloop.analytics.data import Scope
    from closeloop.cases import actions

    system = actions.Actor.system("intake")
    done = actions.open_case(actor=system, subject="done", now=T0)
    actions.send_to_triage(done, actions.Actor.model("classifier"), reason="unsure", now=T0)
    actions.set_request_type(done, actions.Actor.of(practice.coordinator), practice.types["referral"],
                             now=T0 + timedelta(minutes=20))
    waiting = actions.open_case(actor=system, subject="waiting", now=T0 + timedelta(hours=1))
    actions.send_to_triage(waiting, actions.Actor.model("classifier"), reason="unsure", now=T0 + timedelta(hours=1))
    inputs = measure.recorded(Scope.last_days(practice.supervisor, LATER, 17))
    assert inputs.triage_spans == [pytest.approx(20 * 60)]
    assert [c.triage for c in inputs.cases] == [pytest.approx(20 * 60), 0.0]


def test_a_burst_of_events_replaces_the_kept_answer_within_the_quarter_hour(practice, monkeypatch):
    _recorded_history(practice, n=20)
    calls = _count_replays(monkeypatch)
    client = _client(practice)
    with time_machine.travel(LATER, tick=False):
        before = client.get("/analytics/what-if/?days=17", headers={"HX-Request": "true"}).content.decode()
        _recorded_history(practice, n=60, seed=9)  # far more than cache.WHAT_IF_EVENTS new events
        after = client.get("/analytics/what-if/?days=17", headers={"HX-Request": "true"}).content.decode()
    assert len(calls) == 2
    assert "replays the 20 requests" in before and "replays the 80 requests" in after


def test_a_coordinator_taken_off_a_team_no_longer_gets_the_kept_answer_about_its_cases(practice):
    _recorded_history(practice)  # every case is the intake team's
    jordan = _client(practice, "jordan")  # intake and records
    with time_machine.travel(LATER, tick=False):
        assert "replays the 60 requests" in jordan.get("/analytics/what-if/?days=17").content.decode()
        practice.staff["jordan"].teams.remove(practice.teams["intake"])
        after = jordan.get("/analytics/what-if/?days=17").content.decode()
    assert "no arrivals to replay in that period" in after


def test_a_change_to_the_roster_replaces_the_kept_answer(practice, monkeypatch):
    _recorded_history(practice)
    calls = _count_replays(monkeypatch)
    client = _client(practice)
    with time_machine.travel(LATER, tick=False):
        client.get("/analytics/what-if/?days=17")
        client.get("/analytics/what-if/?days=17")
        assert len(calls) == 1
        practice.staff["riley"].teams.add(practice.teams["intake"])  # someone joins the team
        client.get("/analytics/what-if/?days=17")
        assert len(calls) == 2
        type(practice.staff["riley"]).objects.filter(pk=practice.staff["riley"].pk).update(capacity=5)
        client.get("/analytics/what-if/?days=17")
        assert len(calls) == 3
        practice.staff["riley"].teams.remove(practice.teams["intake"])  # and leaves it again
        client.get("/analytics/what-if/?days=17")
    assert len(calls) == 4
