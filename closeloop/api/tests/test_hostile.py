"""What a paying user and a hostile one meet at the API's edges: roles the web app enforces, bad
input that must get a clear 4xx (never a 500) and lose nothing, and the audit trail of reads."""

from __future__ import annotations

import pytest
from django.test import Client

from closeloop.cases.models import Case, Message
from closeloop.cases.tokens import create_token

from .conftest import api

pytestmark = pytest.mark.django_db

REFERRAL = {"subject": "Referral: right knee", "body": "Please see Maria Gonzalez.", "request_type": "referral",
            "requester": {"name": "Dr. Shah", "email": "shah@clinic.example"}}


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def test_four_eyes_replies_cannot_be_sent_or_self_approved_through_the_api(client, token, practice):
    referral = practice.types["referral"]
    referral.policy = {**(referral.policy or {}), "reply_approval": "second_person"}
    referral.save()
    ref = api(client, token, "post", "/cases/", REFERRAL).json()["reference"]
    r = api(client, token, "post", f"/cases/{ref}/send", {"body": "We will call you."})
    assert r.status_code == 403, r.content
    api(client, token, "post", f"/cases/{ref}/drafts", {"body": "We will call you."})
    draft = Message.objects.get(status=Message.Status.DRAFT)
    r = api(client, token, "post", f"/cases/{ref}/send", {"draft_id": draft.pk})
    assert r.status_code == 403 and "other than its author" in r.json()["detail"]
    draft.refresh_from_db()
    assert Case.objects.get().stage == "ready_to_reply" and draft.status == Message.Status.DRAFT
    jordan = create_token(practice.staff["jordan"], "second pair of eyes")
    r = api(client, jordan, "post", f"/cases/{ref}/send", {"draft_id": draft.pk})
    assert r.status_code == 200 and r.json()["stage"] == "answered"



def test_a_specialist_token_cannot_record_requester_messages_or_reopen_a_case(client, token, practice):
    """The web app gives a specialist the brief, the answer, drafts and escalation: recording what the
    requester said (which moves the case, and reopens a closed one) is the coordinators' work."""
    ref = api(client, token, "post", "/cases/", REFERRAL).json()["reference"]
    api(client, token, "post", f"/cases/{ref}/hand-to-specialist", {"specialist": "specialist", "question": "Consult?"})
    specialist = create_token(practice.specialist, "phone")
    assert api(client, specialist, "get", f"/cases/{ref}").status_code == 200  # briefed: they see it
    r = api(client, specialist, "post", f"/cases/{ref}/messages",
            {"sender": "shah@clinic.example", "body": "Never mind, cancel it", "from_requester": True})
    assert r.status_code == 403
    assert not Message.objects.filter(body__contains="cancel").exists()
    assert Case.objects.get().stage == "awaiting_specialist"


def _case(client, token) -> dict:
    r = api(client, token, "post", "/cases/", REFERRAL)
    assert r.status_code == 201, r.content
    return r.json()


def test_a_time_without_a_zone_is_refused_with_the_field_named(client, token):
    case = _case(client, token)
    ref = case["reference"]
    for action, body in (("wait", {"party": "external", "reason": "lab"}), ("snooze", {"reason": "holiday"})):
        r = api(client, token, "post", f"/cases/{ref}/{action}", {**body, "until": "2031-01-01T09:00:00"})
        assert r.status_code == 422, r.content
        assert ["body", "payload", "until"] in [e["loc"] for e in r.json()["detail"]]
    assert Case.objects.get().version == case["version"]
    r = api(client, token, "post", f"/cases/{ref}/snooze", {"reason": "holiday", "until": "2031-01-01T09:00:00-05:00"})
    assert r.status_code == 200


def test_text_with_a_nul_character_is_refused_on_every_database(client, token):
    """PostgreSQL cannot store U+0000 in text or JSON: it must be a 422 naming where it is, not a 500."""
    r = api(client, token, "post", "/cases/", {**REFERRAL, "subject": "Referral\u0000"})
    assert r.status_code == 422, r.content
    assert r.json()["detail"][0]["loc"] == ["body", "subject"]
    assert not Case.objects.exists()
    ref = _case(client, token)["reference"]
    r = api(client, token, "post", f"/cases/{ref}/fields", {"fields": {"dob": {"value": "1961\u0000"}}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fields", "dob", "value"]
    r = api(client, token, "post", f"/cases/{ref}/close", {"outcome": "done\u0000"})
    assert r.status_code == 422 and Case.objects.get().stage == "in_progress"
    r = api(client, token, "get", "/cases/?q=%00")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "q"]
    assert api(client, token, "get", "/analytics/summary?team=%00").status_code == 422


def test_paging_past_any_sensible_offset_is_a_422_and_a_far_page_is_empty(client, token):
    _case(client, token)
    r = api(client, token, "get", "/cases/?offset=99999999999999999999999")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "offset"]
    r = api(client, token, "get", "/cases/?offset=5000")
    assert r.status_code == 200 and r.json() == {"count": 1, "items": []}


def test_a_reference_of_other_scripts_digits_is_not_found(client, token):
    _case(client, token)
    for ref in ("%C2%B2", "%D9%A1"):  # superscript two, Arabic-Indic one: str.isdigit() says yes, int() no
        r = api(client, token, "get", f"/cases/{ref}")
        assert r.status_code == 404, r.content


def test_a_channel_name_longer_than_the_column_is_refused(client, token):
    ref = _case(client, token)["reference"]
    r = api(client, token, "post", f"/cases/{ref}/messages", {"body": "hello", "channel": "c" * 21})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "payload", "channel"]
    assert not Message.objects.filter(body="hello").exists()


def test_reading_a_cases_messages_or_events_through_the_api_is_audited(client, token, practice):
    """The web app records every view of a case page (which shows the messages and timeline); the API's
    message bodies and events are the same data and leave the same trace."""
    from closeloop.cases.models import AuditEntry

    ref = _case(client, token)["reference"]
    assert api(client, token, "get", f"/cases/{ref}/messages").status_code == 200
    assert api(client, token, "get", f"/cases/{ref}/events").status_code == 200
    seen = list(AuditEntry.objects.filter(case__isnull=False).values_list("action", "detail", "user__username"))
    assert seen == [("api_view", "messages", "coordinator"), ("api_view", "events", "coordinator")]


def test_a_filter_value_that_names_nothing_is_a_400_not_an_empty_list(client, token):
    """`stage=in-progress` (a typo) answered 200 with no cases: a caller could not tell a typo from an
    empty queue."""
    _case(client, token)
    for query, field in (("stage=in_progress,in-progress", "stage"), ("waiting_on=patient", "waiting_on"),
                         ("team=nope", "team"), ("request_type=nope", "request_type")):
        r = api(client, token, "get", f"/cases/?{query}")
        assert r.status_code == 400 and r.json()["field"] == field, (query, r.content)
    assert api(client, token, "get", "/cases/?stage=in_progress,triage&waiting_on=owner").json()["count"] == 1
