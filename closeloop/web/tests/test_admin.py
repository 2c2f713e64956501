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
