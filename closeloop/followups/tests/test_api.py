"""The follow-ups API: due lists scoped to what the caller may see, snooze and wake,
policies (admins change them), team calendars and the noise budget."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.models import Case, Party
from closeloop.cases.tokens import create_token
from closeloop.followups import noise

pytestmark = pytest.mark.django_db


def call(client: Client, staff, method: str, path: str, body: dict | None = None, **query):
    kwargs: dict = {"HTTP_AUTHORIZATION": f"Bearer {create_token(staff, 'test')}"}
    if body is not None:
        kwargs.update(data=json.dumps(body, default=str), content_type="application/json")
    elif query:
        kwargs["data"] = query
    return getattr(client, method)(f"/api/followups{path}", **kwargs)


def _case(practice, slug="referral", email="maria@example.com", **kw):
    requester = Party.objects.create(name="Maria Gonzalez", email=email)
    return actions.open_case(actor=actions.Actor.system(), subject="Knee pain referral", body="Please see Maria.",
                             request_type=practice.types[slug], requester=requester, **kw)


def test_the_due_list_shows_due_and_upcoming_cases_the_caller_may_see(client, practice):
    mine = _case(practice)  # intake: the coordinator's team
    billing = _case(practice, "billing")  # billing: not the coordinator's team
    Case.objects.filter(pk=mine.pk).update(next_due_at=timezone.now() - timedelta(minutes=5))
    Case.objects.filter(pk=billing.pk).update(next_due_at=timezone.now() - timedelta(minutes=5))
    r = call(client, practice.coordinator, "get", "/due", within_hours=0)
    assert r.status_code == 200, r.content
    refs = [row["reference"] for row in r.json()]
    assert mine.reference in refs and billing.reference not in refs
    assert r.json()[0]["overdue"] is True
    r = call(client, practice.supervisor, "get", "/due", within_hours=0)
    assert {mine.reference, billing.reference} <= {row["reference"] for row in r.json()}
    assert call(client, practice.specialist, "get", "/due").json() == []
    assert client.get("/api/followups/due").status_code == 401


def test_staff_snooze_and_wake_a_case_and_a_specialist_may_not(client, practice):
    case = _case(practice)
    until = timezone.now() + timedelta(days=2)
    r = call(client, practice.coordinator, "post", f"/cases/{case.reference}/snooze",
             {"until": until.isoformat(), "reason": "fax promised", "version": case.version})
    assert r.status_code == 200, r.content
    assert r.json()["next_action"] == "wake" and r.json()["snooze_reason"] == "fax promised"
    r = call(client, practice.coordinator, "post", f"/cases/{case.reference}/snooze",
             {"until": until.isoformat(), "reason": "again", "version": case.version})
    assert r.status_code == 409
    r = call(client, practice.coordinator, "post", f"/cases/{case.reference}/snooze",
             {"until": (timezone.now() - timedelta(hours=1)).isoformat(), "reason": "past"})
    assert r.status_code == 400 and r.json()["field"] == "until"
    actions.hand_to_specialist(Case.objects.get(pk=case.pk), actions.Actor.of(practice.coordinator),
                               specialist=practice.specialist, question="Surgery?")
    assert call(client, practice.specialist, "post", f"/cases/{case.reference}/wake", {}).status_code == 403
    r = call(client, practice.coordinator, "post", f"/cases/{case.reference}/wake", {})
    assert r.status_code == 200 and r.json()["snoozed_until"] is None
    assert call(client, practice.coordinator, "post", f"/cases/{case.reference}/wake", {}).status_code == 400
    other = _case(practice, "billing")
    assert call(client, practice.coordinator, "post", f"/cases/{other.reference}/wake", {}).status_code == 404


def test_anyone_reads_a_policy_with_defaults_and_only_admins_change_it(client, practice):
    r = call(client, practice.coordinator, "get", "/policies/referral")
    assert r.status_code == 200
    policy = r.json()
    assert policy["followup_cadence_days"] and policy["policy"]["escalation_chain"] == ["team_lead", "supervisor"]
    assert "daily_cap" in policy["policy"]
    change = {"followup_cadence_days": [2, 4], "daily_cap": 3, "quiet_hours": ["20:00", "08:00"]}
    assert call(client, practice.coordinator, "patch", "/policies/referral", change).status_code == 403
    r = call(client, practice.admin, "patch", "/policies/referral", change)
    assert r.status_code == 200, r.content
    assert r.json()["followup_cadence_days"] == [2.0, 4.0] and r.json()["policy"]["daily_cap"] == 3
    rt = practice.types["referral"]
    rt.refresh_from_db()
    assert rt.followup_cadence_days == [2, 4] and rt.policy["quiet_hours"] == ["20:00", "08:00"]
    r = call(client, practice.admin, "patch", "/policies/referral", {"daily_cap": None})
    assert "daily_cap" not in (practice.types["referral"].__class__.objects.get(pk=rt.pk).policy)
    for bad in ({"reminder_fractions": [1.5]}, {"escalation_chain": ["ceo"]}, {"quiet_hours": ["25:00", "08:00"]},
                {"followup_cadence_days": [0]}, {"daily_cap": 0}):
        assert call(client, practice.admin, "patch", "/policies/referral", bad).status_code == 422, bad
    r = call(client, practice.admin, "patch", "/policies/referral", {"resolution_hours": None})
    assert r.status_code == 400 and r.json()["field"] == "resolution_hours"
    assert call(client, practice.admin, "get", "/policies/nope").status_code == 404


def test_a_team_calendar_answers_open_next_opening_and_due_times(client, practice, office):
    r = call(client, practice.coordinator, "get", "/calendars/intake", at="2026-03-06T16:00:00-05:00", hours="3")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["calendar"] == "Lakeside" and data["time_zone"] == "America/New_York"
    assert data["hours"]["mon"] == [["09:00", "17:00"]] and "sat" not in data["hours"]
    assert data["is_open"] is True
    # Friday 16:00 + 3 business hours: Monday 11:00, and the clocks moved on Sunday (EDT, UTC-4)
    assert data["due"] in ("2026-03-09T15:00:00Z", "2026-03-09T15:00:00+00:00")
    r = call(client, practice.coordinator, "get", "/calendars/intake", at="2026-03-07T12:00:00+00:00")
    assert r.json()["is_open"] is False and r.json()["next_open"].startswith("2026-03-09T13:00:00")
    r = call(client, practice.coordinator, "get", "/calendars/intake", at="2026-03-07T12:00:00")
    assert r.status_code == 400 and r.json()["field"] == "at"
    assert call(client, practice.coordinator, "get", "/calendars/nope").status_code == 404


def test_the_noise_budget_shows_what_a_recipient_heard_and_when_they_may_hear_again(client, practice, settings):
    settings.CLOSELOOP_NOISE_DAILY_CAP = 2
    mine, billing = _case(practice), _case(practice, "billing")
    now = timezone.now()
    noise.record(mine, "maria@example.com", "requester_chased", now - timedelta(hours=3))
    noise.record(billing, "maria@example.com", "requester_chased", now - timedelta(hours=2))
    r = call(client, practice.coordinator, "get", "/noise", recipient="maria@example.com")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["sent_last_24h"] == 2 and data["daily_cap"] == 2
    assert [row["case"] for row in data["recent"]] == [mine.reference]  # the billing case is not theirs to see
    assert data["next_allowed_at"].startswith((now + timedelta(hours=21)).isoformat()[:16])
    r = call(client, practice.coordinator, "get", "/noise", recipient="maria@example.com", case=mine.reference)
    assert r.status_code == 200 and r.json()["next_allowed_at"] == data["next_allowed_at"]
    assert call(client, practice.specialist, "get", "/noise", recipient="maria@example.com").status_code == 403
