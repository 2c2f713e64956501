from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", [
    "/admin/cases/requesttype/", "/admin/cases/requesttype/add/", "/admin/cases/team/", "/admin/cases/staff/",
    "/admin/followups/businesscalendar/", "/admin/followups/businesscalendar/add/", "/admin/followups/leave/",
    "/admin/understanding/rule/", "/admin/understanding/rule/add/", "/admin/intake/mailbox/",
    "/admin/intake/smtproute/", "/admin/cases/auditentry/",
])
def test_admins_configure_policies_teams_calendars_rules_and_channels(practice, path):
    client = Client()
    client.force_login(practice.admin.user)
    assert client.get(path).status_code == 200


def test_coordinators_have_no_admin(practice):
    client = Client()
    client.force_login(practice.coordinator.user)
    assert client.get("/admin/cases/requesttype/").status_code == 302


def test_a_team_is_given_its_business_calendar_where_the_team_is_edited(practice):
    """The team's clock is its business calendar; the team form offers that, not a time-zone field that
    nothing reads."""
    from closeloop.followups.calendar import calendar_for_team
    from closeloop.followups.models import BusinessCalendar

    team = practice.teams["intake"]
    coast = BusinessCalendar.objects.create(name="Coast", time_zone="America/Los_Angeles")
    client = Client()
    client.force_login(practice.admin.user)
    form = client.get(f"/admin/cases/team/{team.pk}/change/").content.decode()
    assert 'name="business_calendar-0-calendar"' in form and 'name="time_zone"' not in form
    response = client.post(f"/admin/cases/team/{team.pk}/change/", {
        "name": team.name, "slug": team.slug, "email": team.email, "lead": team.lead_id or "",
        "business_calendar-TOTAL_FORMS": "1", "business_calendar-INITIAL_FORMS": "0",
        "business_calendar-MIN_NUM_FORMS": "0", "business_calendar-MAX_NUM_FORMS": "1",
        "business_calendar-0-calendar": coast.pk, "business_calendar-0-team": team.pk,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert str(calendar_for_team(team.pk).tz) == "America/Los_Angeles"
