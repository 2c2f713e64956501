from __future__ import annotations

import json

import pytest

from closeloop.cases import actions
from closeloop.cases.models import Party
from closeloop.cases.tokens import create_token
from closeloop.understanding.models import EmbeddingVector, UnderstandingJob
from closeloop.understanding.pipeline import enqueue_case, run_jobs
from closeloop.understanding.training import train

pytestmark = pytest.mark.django_db

HISTORY = {
    "refill": ["Refill meloxicam please, pharmacy is CVS", "I need a refill of tramadol before the weekend",
               "Pharmacy requesting refill authorization for naproxen", "Can the doctor renew my gabapentin"],
    "billing": ["Question about my statement balance", "Why was I charged twice for the copay",
                "Insurance denied my claim, what do I owe", "Can I set up a payment plan for my bill"],
}


def call(client, staff, method, path, body=None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {create_token(staff, 'test')}"}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(client, method)(f"/api/understanding{path}", **kwargs)


@pytest.fixture
def model(settings, practice):
    settings.CLOSELOOP_EMBEDDINGS = True
    texts = [t for ts in HISTORY.values() for t in ts]
    labels = [label for label, ts in HISTORY.items() for _ in ts]
    return train(texts, labels).version


def test_a_case_s_predictions_carry_type_confidence_top_three_model_version_and_fields(client, practice, model):
    party = Party.objects.create(name="Pat", email="pat@example.com")
    case = actions.open_case(actor=actions.Actor.system(), subject="Refill",
                             body="Please refill my meloxicam at CVS. Pat Doe, DOB 01/02/1960, phone 617-555-0142",
                             requester=party)
    enqueue_case(case)
    run_jobs()
    r = call(client, practice.coordinator, "get", f"/cases/{case.reference}/predictions")
    assert r.status_code == 200, r.content
    data = r.json()
    latest = data["latest"]
    assert latest["type"] == "refill" and latest["model_version"] == model.name and latest["source"] == "model"
    assert 0 < latest["confidence"] <= 1 and [s["type"] for s in latest["top"]][0] == "refill"
    assert data["fields"]["date_of_birth"]["source"]["start"] >= 0  # a value with its provenance
    assert data["fields"]["date_of_birth"]["value"] == "1960-01-02"


def test_a_case_the_person_may_not_see_is_not_found(client, practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Refill", body="x",
                             request_type=practice.types["refill"])
    assert call(client, practice.specialist, "get", f"/cases/{case.reference}/predictions").status_code == 404
    assert call(client, practice.coordinator, "get", "/cases/CL-nonsense/predictions").status_code == 404


def test_only_supervisors_and_admins_may_queue_a_retrain(client, practice):
    assert call(client, practice.coordinator, "post", "/train").status_code == 403
    assert call(client, practice.specialist, "post", "/train").status_code == 403
    r = call(client, practice.supervisor, "post", "/train")
    assert r.status_code == 202 and r.json()["state"] == "pending"
    assert call(client, practice.admin, "post", "/train").json()["job"] == r.json()["job"]  # one pending job
    assert UnderstandingJob.objects.filter(kind="train").count() == 1


def test_model_versions_are_listed_for_staff_and_not_for_strangers(client, practice, model):
    r = call(client, practice.coordinator, "get", "/models")
    assert r.status_code == 200 and r.json()[0]["name"] == model.name and r.json()[0]["active"]
    assert r.json()[0]["embedder"].startswith("minilm-")
    assert client.get("/api/understanding/models").status_code == 401


def test_classifying_text_creates_no_case_and_keeps_nothing(client, practice, model):
    from closeloop.cases.models import Case

    cases, vectors = Case.objects.count(), EmbeddingVector.objects.count()
    r = call(client, practice.specialist, "post", "/classify",
             {"text": "URGENT: out of tramadol, please refill today. DOB 03/04/1970"})
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["type"] == "refill" and data["model_version"] == model.name and len(data["top"]) == 2
    assert data["urgency_cue"] == "URGENT" and data["fields"]["date_of_birth"]["value"] == "1970-03-04"
    assert Case.objects.count() == cases and EmbeddingVector.objects.count() == vectors
    assert call(client, practice.specialist, "post", "/classify", {"text": ""}).status_code == 422
    assert call(client, practice.specialist, "post", "/classify", {"text": "x" * 20_001}).status_code == 422
    assert client.post("/api/understanding/classify", data=json.dumps({"text": "hi"}),
                       content_type="application/json").status_code == 401


def test_the_llm_opinion_is_shown_beside_the_model_s_top_three(client, practice, settings):
    from closeloop.understanding.tests.test_llm import Server

    settings.CLOSELOOP_EMBEDDINGS = False
    more = {**HISTORY, "records": ["Send my records to my new doctor", "Copy of my MRI report please",
                                   "Lawyer requesting chart copies", "Transfer my chart to another practice"],
            "appointment": ["Book me a follow up visit", "Can I reschedule my appointment",
                            "I need to see the doctor next week", "Is there an opening on Friday"]}
    train([t for ts in more.values() for t in ts], [label for label, ts in more.items() for _ in ts])
    for request_type in practice.types.values():
        request_type.confidence_threshold = 1.0
        request_type.save()
    server = Server(json.dumps({"request_type": "refill", "confidence": 0.7, "urgent": False, "reason": "meds"}))
    settings.CLOSELOOP_LLM_URL = server.url
    try:
        case = actions.open_case(actor=actions.Actor.system(), subject="Refill", body="Refill my meloxicam please",
                                 requester=Party.objects.create(name="Pat", email="pat@example.com"))
        enqueue_case(case)
        run_jobs()
    finally:
        server.close()
    latest = call(client, practice.coordinator, "get", f"/cases/{case.reference}/predictions").json()["latest"]
    assert [s["source"] for s in latest["top"]] == ["model", "model", "model", "llm"]
