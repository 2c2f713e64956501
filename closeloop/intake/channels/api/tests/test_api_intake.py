from __future__ import annotations

import base64
import json

import pytest

from closeloop.cases.tokens import create_token
from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def api(client, practice):
    token = create_token(practice.coordinator, "portal")

    def call(method, path, payload=None, **headers):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token}", **{f"HTTP_{k.upper().replace('-', '_')}": v
                                                              for k, v in headers.items()}}
        if payload is not None:
            kwargs.update(data=json.dumps(payload), content_type="application/json")
        return getattr(client, method)(f"/api/intake{path}", **kwargs)

    return call


SUBMISSION = {"subject": "Referral from Dr Lee", "body": "Knee pain", "email": "office@drlee.example",
              "name": "Dr Lee", "request_type": "referral", "fields": {"patient_name": "Maria Gonzalez"},
              "attachments": [{"filename": "letter.pdf", "content_type": "application/pdf",
                               "content_base64": base64.b64encode(PDF).decode()}]}


def test_it_opens_a_case_with_fields_and_documents(api):
    response = api("post", "/submissions", SUBMISSION, **{"Idempotency-Key": "abc-1"})
    assert response.status_code == 201, response.content
    out = response.json()
    assert out["result"] == "opened" and out["case"].startswith("CL-")
    row = InboundMessage.objects.get(pk=out["id"])
    assert row.case.field_value("patient_name") == "Maria Gonzalez"
    assert row.case.request_type.slug == "referral" and row.case.channel == "api"
    assert row.case.documents.get().filename == "letter.pdf"
    assert row.case.outbox.filter(purpose="ack", to=["office@drlee.example"]).exists()


def test_the_same_idempotency_key_returns_the_first_answer_and_refuses_another_body(api):
    first = api("post", "/submissions", SUBMISSION, **{"Idempotency-Key": "abc-2"}).json()
    again = api("post", "/submissions", SUBMISSION, **{"Idempotency-Key": "abc-2"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    other = api("post", "/submissions", {**SUBMISSION, "body": "changed"}, **{"Idempotency-Key": "abc-2"})
    assert other.status_code == 409
    assert InboundMessage.objects.count() == 1


def test_it_needs_a_token(client, practice):
    assert client.post("/api/intake/submissions", data="{}", content_type="application/json").status_code == 401


def test_staff_see_the_quarantine_and_retry_from_it(api, settings):
    bad, _ = receive_and_process(Inbound(channel="import", raw=b"\x00garbage"))
    listed = api("get", "/inbound?status=quarantined").json()
    assert [item["id"] for item in listed["items"]] == [bad.pk]
    assert "not an internet message" in listed["items"][0]["error"]
    assert api("get", f"/inbound/{bad.pk}").json()["status"] == "quarantined"
    assert api("post", f"/inbound/{bad.pk}/retry").json()["status"] == "quarantined"
    assert InboundMessage.objects.get(pk=bad.pk).attempts == 2
    assert api("get", f"/inbound/{bad.pk}/raw").status_code == 403  # coordinators do not get raw bytes


def test_retrying_a_processed_message_is_refused(api):
    out = api("post", "/submissions", SUBMISSION).json()
    assert api("post", f"/inbound/{out['id']}/retry").status_code == 409


def test_each_token_has_its_own_rate_limit_and_hears_when_to_retry(api, client, practice, settings):
    settings.CLOSELOOP_API_RATE_LIMIT = 3
    settings.CLOSELOOP_API_RATE_WINDOW_SECONDS = 60
    for i in range(3):
        assert api("post", "/submissions", {**SUBMISSION, "body": f"request {i}"}).status_code == 201
    refused = api("post", "/submissions", {**SUBMISSION, "body": "one too many"})
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "too many requests" in refused.json()["detail"]
    assert InboundMessage.objects.count() == 3  # the refused call stored nothing
    # Another system's token is counted on its own.
    other = create_token(practice.supervisor, "ehr")
    response = client.get("/api/intake/inbound", HTTP_AUTHORIZATION=f"Bearer {other}")
    assert response.status_code == 200


def test_the_rate_limit_window_ends_and_calls_are_accepted_again(api, settings):
    import time_machine

    settings.CLOSELOOP_API_RATE_LIMIT = 1
    settings.CLOSELOOP_API_RATE_WINDOW_SECONDS = 60
    with time_machine.travel("2025-03-03 10:00:05+00:00", tick=False) as clock:
        assert api("get", "/inbound").status_code == 200
        refused = api("get", "/inbound")
        assert refused.status_code == 429 and refused["Retry-After"] == "55"
        clock.shift(56)
        assert api("get", "/inbound").status_code == 200


@pytest.mark.parametrize("email", ["office@drlee.example, victim@other.example",
                                   "office@drlee.example\r\nBcc: x@y.example", "not an address"])
def test_a_requester_address_that_is_not_one_address_is_refused_with_a_clear_error(api, email):
    response = api("post", "/submissions", {**SUBMISSION, "email": email})
    assert response.status_code == 422 and "email" in response.content.decode()
    assert not InboundMessage.objects.exists()
