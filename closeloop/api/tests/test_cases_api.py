from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from closeloop.cases.models import AuditEntry, Case
from closeloop.cases.tokens import create_token

from .conftest import api

pytestmark = pytest.mark.django_db


REFERRAL = {
    "subject": "Referral: right knee", "body": "Please see Maria Gonzalez, DOB 1961-03-14.",
    "request_type": "referral", "requester": {"name": "Dr. Shah", "email": "shah@clinic.example"},
    "fields": {"patient_name": {"value": "Maria Gonzalez", "confidence": 0.99, "source": {"kind": "body"}}},
}


def test_it_opens_a_case_with_a_document_and_returns_the_reference(client, token):
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"
    body = {**REFERRAL, "documents": [{"filename": "letter.pdf", "content_type": "application/pdf",
                                       "content_base64": base64.b64encode(pdf).decode()}]}
    r = api(client, token, "post", "/cases/", body)
    assert r.status_code == 201, r.content
    data = r.json()
    assert data["reference"].startswith("CL-") and data["stage"] == "in_progress" and data["team"] == "intake"
    assert data["documents"][0]["filename"] == "letter.pdf" and "date_of_birth" in data["missing_fields"]


def test_bad_input_gets_field_level_errors_never_a_500(client, token):
    r = api(client, token, "post", "/cases/", {"subject": "", "requester": {"email": "not-an-email"}})
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "payload", "subject") in locs and ("body", "payload", "requester", "email") in locs
    r = api(client, token, "post", "/cases/", {**REFERRAL, "request_type": "nope"})
    assert r.status_code == 400 and r.json()["field"] == "request_type"
    exe = base64.b64encode(b"MZ\x90\x00binary").decode()
    r = api(client, token, "post", "/cases/", {**REFERRAL, "documents": [
        {"filename": "invoice.exe", "content_base64": exe}]})
    assert r.status_code == 400 and r.json()["field"] == "documents.0"
    assert not Case.objects.exists()
    r = api(client, token, "post", "/cases/", {**REFERRAL, "documents": [
        {"filename": "a.pdf", "content_base64": "!!!"}]})
    assert r.status_code == 400 and r.json()["field"] == "documents.0.content_base64"


def test_it_works_a_case_through_the_whole_loop(client, token, practice):
    ref = api(client, token, "post", "/cases/", REFERRAL).json()["reference"]
    r = api(client, token, "post", f"/cases/{ref}/assign", {"owner": "coordinator"})
    assert r.json()["owner"] == "coordinator"
    r = api(client, token, "post", f"/cases/{ref}/request-info", {"message": "Please send DOB."})
    assert r.json()["waiting_on"] == "requester"
    r = api(client, token, "post", f"/cases/{ref}/fields", {"fields": {
        k: {"value": "x"} for k in r.json()["missing_fields"]}})
    assert r.json()["stage"] == "in_progress" and r.json()["missing_fields"] == []
    r = api(client, token, "post", f"/cases/{ref}/hand-to-specialist", {"specialist": "specialist",
                                                                        "question": "Consult?"})
    assert r.json()["waiting_on"] == "specialist"
    specialist = create_token(practice.specialist, "phone")
    r = api(client, specialist, "post", f"/cases/{ref}/specialist-answer", {"answer": "Yes, within 2 weeks"})
    assert r.json()["stage"] == "ready_to_reply"
    r = api(client, token, "post", f"/cases/{ref}/send", {"body": "We will call you to book."})
    assert r.json()["stage"] == "answered"
    r = api(client, token, "post", f"/cases/{ref}/close", {"outcome": "booked"})
    assert r.json()["stage"] == "closed" and r.json()["next_due_at"] is None
    kinds = [e["kind"] for e in api(client, token, "get", f"/cases/{ref}/events").json()]
    assert kinds == ["opened", "assigned", "info_requested", "fields_recorded", "handed_to_specialist",
                     "specialist_answered", "reply_sent", "closed"]


def test_a_stale_version_gets_409_and_an_impossible_move_gets_409(client, token):
    case = api(client, token, "post", "/cases/", REFERRAL).json()
    ref, version = case["reference"], case["version"]
    api(client, token, "post", f"/cases/{ref}/assign", {"owner": "coordinator", "version": version})
    r = api(client, token, "post", f"/cases/{ref}/snooze", {"until": str(timezone.now() + timedelta(days=1)),
                                                            "reason": "x", "version": version})
    assert r.status_code == 409 and "changed by someone else" in r.json()["detail"]
    r = api(client, token, "post", f"/cases/{ref}/specialist-answer", {"answer": "no"})
    assert r.status_code == 409


def test_listing_filters_by_stage_team_owner_waiting_on_overdue_type_and_text(client, token):
    a = api(client, token, "post", "/cases/", REFERRAL).json()
    b = api(client, token, "post", "/cases/", {**REFERRAL, "subject": "Reschedule please",
                                               "request_type": "appointment"}).json()
    api(client, token, "post", f"/cases/{b['reference']}/request-info", {"message": "which day suits?"})

    def refs(query):
        return {c["reference"] for c in api(client, token, "get", f"/cases/?{query}").json()["items"]}

    assert refs("team=intake") == {a["reference"]}
    assert refs("request_type=appointment") == {b["reference"]}
    assert refs("waiting_on=requester") == {b["reference"]}
    assert refs("stage=in_progress") == {a["reference"]}
    assert refs("q=reschedule") == {b["reference"]}
    assert refs(f"q={a['reference']}") == {a["reference"]}
    assert refs("overdue=true") == set()


def test_roles_and_teams_limit_what_people_see_and_do(client, practice, token):
    ref = api(client, token, "post", "/cases/", {**REFERRAL, "request_type": "billing"}).json()["reference"]
    riley = create_token(practice.staff["riley"], "t")  # billing team
    jordan = create_token(practice.staff["jordan"], "t")  # intake + records
    specialist = create_token(practice.specialist, "t")
    assert api(client, riley, "get", f"/cases/{ref}").status_code == 200
    assert api(client, jordan, "get", f"/cases/{ref}").status_code == 404
    assert api(client, specialist, "get", "/cases/").json()["count"] == 0
    assert api(client, specialist, "post", "/cases/", REFERRAL).status_code == 403
    assert api(client, "cl_wrong", "get", "/cases/").status_code == 401
    assert AuditEntry.objects.filter(action="api_view", case__isnull=False).count() == 1


def test_staff_sessions_work_and_need_csrf_for_writes(practice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(practice.coordinator.user)
    assert client.get("/api/cases/").status_code == 200
    r = client.post("/api/cases/", data=json.dumps(REFERRAL), content_type="application/json")
    assert r.status_code == 403


def test_the_openapi_document_and_docs_are_served(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/cases/" in paths and "/api/cases/{ref}/close" in paths
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert b"cdn." not in docs.content and b"/static/ninja/swagger-ui-bundle.js" in docs.content


def test_a_case_opened_or_added_to_through_the_api_is_read_like_any_other(client, token):
    """Text and documents sent through the API are understood: the date of birth in the body becomes a
    field with its source, and a later message that supplies the phone number fills that in too."""
    from closeloop.understanding.pipeline import run_jobs

    r = api(client, token, "post", "/cases/", REFERRAL)
    ref = r.json()["reference"]
    assert run_jobs() >= 1
    case = Case.objects.get(pk=r.json()["id"])
    assert case.field_value("date_of_birth") == "1961-03-14"
    assert case.field_value("patient_name") == "Maria Gonzalez"  # the caller's own value stands
    r = api(client, token, "post", f"/cases/{ref}/messages", {
        "sender": "shah@clinic.example", "subject": "Re: referral", "body": "Phone: (617) 555-0142",
        "from_requester": True})
    assert r.status_code == 200, r.content
    assert run_jobs() >= 1
    case.refresh_from_db()
    assert "617" in str(case.field_value("phone")) and "phone" not in case.missing_fields
