"""Policies as data: a malformed policy is refused where an admin edits it, and one bad request type
never stops the worker for the others."""

from __future__ import annotations

import pytest
from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import Case, Party, RequestType
from closeloop.followups.worker import run_due

from .conftest import ny

pytestmark = pytest.mark.django_db


def _form(rt: RequestType, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": rt.name, "slug": rt.slug, "description": rt.description, "is_active": "on",
        "routing_team": rt.routing_team_id or "", "default_priority": rt.default_priority,
        "required_fields": '["patient_name"]', "confidence_threshold": rt.confidence_threshold,
        "first_response_hours": rt.first_response_hours, "resolution_hours": rt.resolution_hours,
        "followup_cadence_days": "[1, 3, 7]", "auto_send": "[]", "templates": "{}", "policy": "{}",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(("field", "value", "says"), [
    ("followup_cadence_days", "[-1, 3]", "each cadence step is between 0 and 365 business days"),
    ("followup_cadence_days", '"1, 3, 7"', "followup_cadence_days: Input should be a valid list"),
    ("followup_cadence_days", '[1, "soon"]', "followup_cadence_days[1]: Input should be a valid number"),
    ("first_response_hours", "-4", "first_response_hours: Input should be greater than 0"),
    ("policy", '{"reminder_fractions": "half"}', "reminder_fractions: Input should be a valid list"),
    ("policy", '{"escalation_chain": ["boss"]}', "escalation steps are"),
    ("policy", '{"quiet_hours": ["20:00"]}', "quiet_hours: List should have at least 2 items"),
    ("policy", '{"triage_hours": "four"}', "triage_hours: Input should be a valid number"),
    ("policy", '{"autoclose_days": 0}', "autoclose_days: Input should be greater than 0"),
    ("policy", '{"priority_targets": {"urgent": {"resolution_hours": -1}}}', "priority_targets[urgent]"),
    ("policy", '["not", "a", "mapping"]', "the policy is a mapping of keys to values"),
])
def test_the_admin_refuses_a_malformed_policy_with_a_clear_error(practice, field, value, says):
    client = Client()
    client.force_login(practice.admin.user)
    rt = practice.types["referral"]
    before = (rt.followup_cadence_days, rt.first_response_hours, rt.policy)
    response = client.post(f"/admin/cases/requesttype/{rt.pk}/change/", _form(rt, **{field: value}))
    assert response.status_code == 200, "the change was saved"
    assert says in response.content.decode()
    rt.refresh_from_db()
    assert (rt.followup_cadence_days, rt.first_response_hours, rt.policy) == before


def test_the_admin_saves_a_sound_policy(practice):
    client = Client()
    client.force_login(practice.admin.user)
    rt = practice.types["referral"]
    response = client.post(f"/admin/cases/requesttype/{rt.pk}/change/", _form(
        rt, followup_cadence_days="[2, 5]",
        policy='{"reminder_fractions": [0.75], "quiet_hours": ["20:00", "08:00"], "reply_approval": "second_person"}'))
    assert response.status_code == 302, response.content.decode()[:2000]
    rt.refresh_from_db()
    assert rt.followup_cadence_days == [2, 5] and rt.policy["reminder_fractions"] == [0.75]


def test_a_request_type_with_a_broken_policy_does_not_stop_the_others_being_chased(practice, office):
    """A policy written before it was checked (or by hand in the database): its cases are pushed forward
    and the error is logged; every other case of the batch is still chased."""
    good, bad = [], []
    for slug, into in (("referral", good), ("records", bad), ("referral", good)):
        requester = Party.objects.create(name="M", email=f"m{len(good) + len(bad)}@example.com")
        case = actions.open_case(actor=actions.Actor.system(), subject="s", body="b", requester=requester,
                                 request_type=practice.types[slug], now=ny(2026, 3, 2, 10))
        actions.request_missing_info(case, actions.Actor.of(practice.coordinator), fields=["date_of_birth"],
                                     now=ny(2026, 3, 2, 10))
        into.append(case)
    RequestType.objects.filter(slug="records").update(followup_cadence_days="1, 3, 7")
    Case.objects.update(next_due_at=ny(2026, 3, 3, 10, 5))
    with pytest.raises(ValueError):
        run_due(now=ny(2026, 3, 3, 10, 5))
    assert [Case.objects.get(pk=c.pk).followup_step for c in good] == [1, 1]
    broken = Case.objects.get(pk=bad[0].pk)
    assert broken.followup_step == 0 and broken.next_due_at == ny(2026, 3, 3, 10, 20)
