"""Pages read on the office's clock: the team's business calendar's zone, not the server's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from closeloop.cases.links import status_token
from closeloop.cases.models import Case
from closeloop.followups.models import BusinessCalendar, TeamCalendar

from .conftest import signed_in

pytestmark = pytest.mark.django_db
DUE = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 14:00 in New York (EST)


@pytest.fixture
def new_york(practice: Any) -> BusinessCalendar:
    calendar = BusinessCalendar.objects.create(name="Lakeside", time_zone="America/New_York", is_default=True)
    for team in practice.teams.values():
        TeamCalendar.objects.create(team=team, calendar=calendar)
    return calendar


def _due(case: Case) -> Case:
    Case.objects.filter(pk=case.pk).update(next_due_at=DUE, resolution_due_at=DUE)
    return Case.objects.get(pk=case.pk)


def test_staff_pages_show_times_in_their_teams_zone(referral: Case, new_york: Any, settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    case = _due(referral)
    html = signed_in("coordinator").get(f"/c/{case.pk}/").content.decode()
    assert "Tue 24 Nov 14:00" in html and "Tue 24 Nov 19:00" not in html
    queue = signed_in("coordinator").get("/q/mine/").content.decode()
    assert "Tue 24 Nov 14:00" in queue


def test_the_status_page_shows_the_expected_time_on_the_office_clock_with_its_zone(
        referral: Case, new_york: Any, settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    case = _due(referral)
    html = Client().get(f"/s/{status_token(case)}/").content.decode()
    assert "Tuesday 24 November, 14:00 EST" in html


def test_without_a_business_calendar_the_display_zone_stands(referral: Case, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    case = _due(referral)
    html = signed_in("coordinator").get(f"/c/{case.pk}/").content.decode()
    assert "Tue 24 Nov 20:00" in html
    assert "Tuesday 24 November, 20:00 CET" in Client().get(f"/s/{status_token(case)}/").content.decode()


def test_with_offices_in_several_zones_each_person_reads_their_own_teams(practice: Any, referral: Case,
                                                                         new_york: Any) -> None:
    coast = BusinessCalendar.objects.create(name="Coast", time_zone="America/Los_Angeles")
    first = practice.coordinator.teams.order_by("id").first()
    TeamCalendar.objects.filter(team=first).update(calendar=coast)
    from closeloop.followups.calendar import invalidate_cache

    invalidate_cache()
    case = _due(referral)
    assert "Tue 24 Nov 11:00" in signed_in("coordinator").get(f"/c/{case.pk}/").content.decode()
    practice.supervisor.teams.remove(first)  # a supervisor sees every case; their first team is now in New York
    assert "Tue 24 Nov 14:00" in signed_in("supervisor").get(f"/c/{case.pk}/").content.decode()
