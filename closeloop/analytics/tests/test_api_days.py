"""The analytics API's start/end are the office's days, as the pages read them, not UTC's."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import Party
from closeloop.cases.tokens import create_token
from closeloop.followups.calendar import invalidate_cache
from closeloop.followups.models import BusinessCalendar, TeamCalendar

pytestmark = pytest.mark.django_db
NY, LA = ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles")


def _open(practice, at: datetime, kind: str = "billing"):
    return actions.open_case(actor=actions.Actor.system(), subject="x", request_type=practice.types[kind],
                             requester=Party.objects.create(name="P", email="p@example.com"), now=at)


def _get(practice, url: str, username: str = "supervisor"):
    key = create_token(practice.staff[username], "bi")
    with time_machine.travel(datetime(2026, 3, 12, 12, 0, tzinfo=NY), tick=False):
        r = Client().get(f"/api/analytics{url}", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200, r.content
    return r.json()


@pytest.fixture
def office(practice):
    """One office in New York: its calendar is every team's."""
    calendar = BusinessCalendar.objects.create(name="Lakeside", time_zone="America/New_York", is_default=True)
    for team in practice.teams.values():
        TeamCalendar.objects.create(team=team, calendar=calendar)
    invalidate_cache()
    yield practice
    invalidate_cache()


def test_a_day_is_the_offices_day_across_midnight_utc(office):
    """20:30 on the 9th in New York is 01:30 on the 10th in UTC: it belongs to the 9th."""
    _open(office, datetime(2026, 3, 9, 20, 30, tzinfo=NY))
    _open(office, datetime(2026, 3, 10, 9, 0, tzinfo=NY))
    _open(office, datetime(2026, 3, 10, 23, 30, tzinfo=NY))  # 04:30 on the 11th in UTC
    assert _get(office, "/summary?start=2026-03-09&end=2026-03-09")["cases"] == 1
    assert _get(office, "/summary?start=2026-03-10&end=2026-03-10")["cases"] == 2
    assert _get(office, "/summary?start=2026-03-11&end=2026-03-11")["cases"] == 0


def test_rows_by_day_are_the_offices_days_too(office):
    _open(office, datetime(2026, 3, 9, 20, 30, tzinfo=NY))
    rows = _get(office, "/latency?by=period&period=day&start=2026-03-09&end=2026-03-10")["rows"]
    assert [r["key"] for r in rows] == ["2026-03-09"]


def test_without_a_calendar_the_days_are_closeloop_time_zones(practice, settings):
    settings.TIME_ZONE = "America/New_York"
    _open(practice, datetime(2026, 3, 9, 20, 30, tzinfo=NY))
    assert _get(practice, "/summary?start=2026-03-09&end=2026-03-09")["cases"] == 1


def test_with_offices_in_several_zones_a_team_reads_on_its_own_clock(office):
    coast = BusinessCalendar.objects.create(name="Coast", time_zone="America/Los_Angeles")
    TeamCalendar.objects.filter(team=office.teams["billing"]).update(calendar=coast)
    invalidate_cache()
    _open(office, datetime(2026, 3, 9, 22, 30, tzinfo=LA))  # the 10th in New York, the 9th on the coast
    assert _get(office, "/summary?start=2026-03-09&end=2026-03-09&team=billing")["cases"] == 1
    assert _get(office, "/summary?start=2026-03-10&end=2026-03-10&team=billing")["cases"] == 0


def test_the_first_day_of_the_calendar_east_of_utc_is_refused_not_a_500(practice, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # its midnight on 0001-01-01 is the day before in UTC, which does not exist
    key = create_token(practice.supervisor, "bi")
    r = Client().get("/api/analytics/summary?start=0001-01-01&end=0001-01-02", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 400 and "start must be after 0001-01-01" in r.json()["detail"]
