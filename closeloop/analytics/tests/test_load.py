from __future__ import annotations

from datetime import timedelta

import pytest

from closeloop.analytics.data import Scope
from closeloop.analytics.load import drowning, flows, forecast
from closeloop.cases import actions
from closeloop.cases.models import Party

from .conftest import T0, at

pytestmark = pytest.mark.django_db


def _scope(history, now=None):
    now = now or history.now
    return Scope(history.practice.supervisor, now - timedelta(days=28), now, now)


def test_it_counts_arrivals_reopenings_completions_and_merges_per_team_and_day(history):
    """Intake: Mon A, C, D arrive, C merged; Tue A closes → backlog 2, 1, 1, 1 (D).
    Scheduling: Mon B arrives and closes; Tue B reopens and closes again → backlog 0."""
    team_flows = flows(_scope(history), days=4)
    intake = team_flows[history.practice.teams["intake"].pk]
    assert (intake.arrivals, intake.completions, intake.backlog) == ([3, 0, 0, 0], [1, 1, 0, 0], [2, 1, 1, 1])
    scheduling = team_flows[history.practice.teams["scheduling"].pk]
    assert (scheduling.arrivals, scheduling.completions, scheduling.backlog) == ([1, 1, 0, 0], [1, 1, 0, 0],
                                                                                 [0, 0, 0, 0])


def test_it_warns_when_arrivals_beat_completions_several_days_running(practice):
    requester = Party.objects.create(name="P", email="p@example.com")
    for day in range(4):
        for _ in range(2):
            actions.open_case(actor=actions.Actor.system(), subject="x", request_type=practice.types["billing"],
                              requester=requester, now=at(24 * day))
    now = at(24 * 3 + 1)
    tables = drowning(Scope(practice.supervisor, now - timedelta(days=28), now, now))
    billing = next(r for r in tables["backlog"].rows if r["label"] == "Billing")
    assert (billing["open"], billing["run"], billing["warning"]) == (8, 4, "DROWNING")
    assert billing["arrive"] == round(8 / 14, 2)
    assert tables["forecast"].rows[-1]["backlog"] == 16.0  # 8 + 14 days × 8/14 a day, nothing completing


def test_the_forecast_uses_littles_law_for_the_time_to_complete(history):
    intake = flows(_scope(history), days=14)[history.practice.teams["intake"].pk]
    ahead = forecast(intake, days=2)
    # 14 days: 3 arrivals and 2 completions → backlog rises by 1/14 a day from 1; wait = backlog / (2/14).
    assert ahead[0][1] == round(1 + 1 / 14, 1) and ahead[0][2] == round((1 + 1 / 14) / (2 / 14), 1)


def test_it_sets_work_owed_against_capacity(history):
    workload = drowning(_scope(history))["workload"]
    casey = next(r for r in workload.rows if r["label"] == "Casey Morgan")
    assert (casey["owned"], casey["capacity"], casey["load"]) == (1, 20, 5.0)
    assert workload.cases[casey["key"]] == [history.d.pk]


def test_flow_days_follow_the_clock_not_the_calendar_month(history):
    assert flows(_scope(history, now=T0 + timedelta(days=40)), days=3)[history.practice.teams["intake"].pk].backlog \
        == [1, 1, 1]


def test_days_are_the_offices_days_not_utcs(practice):
    """20:00 in New York is 01:00 UTC the next day: an arrival then belongs to today's row on the office's
    clock, and the last row is today, not tomorrow (empty)."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    ny = ZoneInfo("America/New_York")
    evening = datetime(2026, 3, 9, 20, 0, tzinfo=ny)
    actions.open_case(actor=actions.Actor.system(), subject="x", request_type=practice.types["billing"],
                      requester=Party.objects.create(name="P", email="p@example.com"), now=evening)
    now = (evening + timedelta(minutes=30)).astimezone(ZoneInfo("UTC"))  # as timezone.now() gives it
    with timezone.override(ny):
        billing = flows(Scope(practice.supervisor, now - timedelta(days=28), now, now), days=2)[
            practice.teams["billing"].pk]
    assert billing.days == [date(2026, 3, 8), date(2026, 3, 9)]
    assert billing.arrivals == [0, 1] and billing.backlog == [0, 1]
