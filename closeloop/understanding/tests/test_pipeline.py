from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from closeloop.cases import actions
from closeloop.cases.documents import store_document
from closeloop.cases.models import Party
from closeloop.cases.stages import Stage
from closeloop.understanding.models import JobState, ModelVersion, PageText, Prediction, Rule, UnderstandingJob
from closeloop.understanding.pipeline import enqueue_case, enqueue_document, run_jobs, schedule_retrain
from closeloop.understanding.training import labelled_examples, train

pytestmark = pytest.mark.django_db
DOCS = Path(__file__).resolve().parents[3] / "data" / "dev" / "documents"

HISTORY = {
    "refill": ["Refill meloxicam please, pharmacy is CVS", "I need a refill of tramadol before the weekend",
               "Pharmacy requesting refill authorization for naproxen", "Can the doctor renew my gabapentin script",
               "Out of my muscle relaxer, please send a new prescription"],
    "billing": ["Question about my statement balance", "Why was I charged twice for the copay",
                "Insurance denied my claim, what do I owe", "Can I set up a payment plan for my bill",
                "I paid online but the statement still shows a balance"],
    "records": ["Please send my medical records to my new doctor", "Lawyer requesting chart copies with authorization",
                "I need a copy of my MRI report and office notes", "Transfer my records to another practice",
                "Insurer requests records for claim review"],
}


@pytest.fixture
def trained(practice, settings):
    settings.CLOSELOOP_EMBEDDINGS = False  # the pipeline, not the embedder, is under test here
    for slug, texts in HISTORY.items():
        for text in texts:
            case = _open(text)
            actions.set_request_type(case, actions.Actor.of(practice.coordinator), practice.types[slug])
    result = train()
    assert result.version is not None
    return result.version


def _open(text, email="pat@example.com"):
    party = Party.objects.create(name="Pat", email=email)
    return actions.open_case(actor=actions.Actor.system(), subject=text[:60], body=text, requester=party)


def test_staff_classifications_are_the_labels_and_unchanged_data_skips_retraining(trained):
    texts, labels = labelled_examples()
    assert len(texts) == 15 and set(labels) == {"refill", "billing", "records"}
    again = train()
    assert again.version == trained and "unchanged" in again.skipped
    assert ModelVersion.objects.count() == 1


def test_a_confident_prediction_routes_the_case_and_records_the_model_version(trained, practice):
    case = _open("Please refill my meloxicam prescription at CVS, I ran out of the refill")
    enqueue_case(case)
    assert run_jobs() == 1
    case.refresh_from_db()
    prediction = Prediction.objects.get(case=case)
    assert prediction.model_version == trained and prediction.label == "refill"
    if prediction.routed:
        assert case.request_type == practice.types["refill"] and case.stage == Stage.IN_PROGRESS
        event = case.events.get(kind="classified")
        assert event.actor_kind == "model" and event.data["label"] is False
    else:
        assert case.stage == Stage.TRIAGE


def test_an_unsure_prediction_goes_to_triage_with_three_suggestions(trained, practice):
    practice.types["refill"].confidence_threshold = 1.0
    practice.types["refill"].save()
    case = _open("Please refill my meloxicam prescription at CVS")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.stage == Stage.TRIAGE and case.request_type is None
    event = case.events.get(kind="sent_to_triage")
    assert [s["type"] for s in event.data["suggestions"]][0] == "refill"
    assert len(event.data["suggestions"]) == 3
    assert Prediction.objects.get(case=case).routed is False


def test_a_matching_rule_wins_over_the_model(trained, practice):
    Rule.objects.create(name="BCBS mail is billing", request_type=practice.types["billing"],
                        sender_domain="bcbs.example", keywords=["claim", "remittance"])
    case = _open("Claim 123 for your patient's refill", email="ops@mail.bcbs.example")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.request_type == practice.types["billing"]
    assert Prediction.objects.get(case=case).source == "rule"


def test_without_a_model_the_case_waits_for_a_person(practice):
    case = _open("Hello, I have a question")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.stage == Stage.TRIAGE
    assert case.events.filter(kind="sent_to_triage", data__reason="no trained model yet").exists()


def test_fields_from_a_scanned_document_are_recorded_with_provenance(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", body="See attached fax",
                             request_type=practice.types["referral"])
    doc = store_document((DOCS / "doc-02.png").read_bytes(), "fax.png", "image/png", source="fax", case=case)
    enqueue_document(doc)
    enqueue_case(case)
    assert run_jobs() == 2
    case.refresh_from_db()
    assert PageText.objects.get(document=doc).method == "ocr"
    name = case.fields["patient_name"]
    assert name["source"]["document"] == doc.pk and name["source"]["boxes"]
    assert "patient_name" not in case.missing_fields and "date_of_birth" not in case.missing_fields
    # The case page highlights the name where it is on the scan (not clamped to the page's corner).
    from django.test import Client

    client = Client()
    client.force_login(practice.supervisor.user)
    page = client.get(f"/c/{case.pk}/").content.decode()
    box = re.search(r'data-box="patient_name" style="left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%',
                    page)
    assert box is not None
    left, top, width, height = (float(v) for v in box.groups())
    assert left < 90 and top < 90 and 0 < width < 60 and 0 < height < 10


def test_an_unreadable_document_fails_its_job_with_the_error_and_keeps_the_case(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"])
    doc = store_document(b"%PDF-1.4 broken", "broken.pdf", "application/pdf", source="upload", case=case)
    job = enqueue_document(doc)
    run_jobs()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "PDF" in job.error


def test_enqueueing_twice_keeps_one_pending_job_and_retraining_is_scheduled_once(practice):
    case = _open("anything")
    assert enqueue_case(case) == enqueue_case(case)
    assert schedule_retrain() == 1 and schedule_retrain() == 0
    assert UnderstandingJob.objects.filter(kind="train").count() == 1


def test_the_train_command_trains_from_a_file_and_refuses_a_file_without_the_columns(practice, settings, tmp_path):
    settings.CLOSELOOP_EMBEDDINGS = False
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(f'{{"q": "{t}", "y": "{label}"}}' for label, ts in HISTORY.items() for t in ts))
    call_command("train", file=data, text_col="q", label_col="y")
    assert ModelVersion.objects.get().labels == ["billing", "records", "refill"]
    with pytest.raises(CommandError, match="columns"):
        call_command("train", file=data)


def test_a_configured_llm_adds_a_second_opinion_for_the_person_at_triage(trained, practice, settings):
    import json

    from closeloop.understanding.tests.test_llm import Server

    server = Server(json.dumps({"request_type": "refill", "confidence": 0.7, "urgent": False, "reason": "meds"}))
    settings.CLOSELOOP_LLM_URL = server.url
    try:
        practice.types["refill"].confidence_threshold = 1.0
        practice.types["refill"].save()
        case = _open("Please refill my meloxicam prescription at CVS")
        enqueue_case(case)
        run_jobs()
    finally:
        server.close()
    event = case.events.get(kind="sent_to_triage")
    assert event.data["suggestions"][-1]["source"] == "llm"
    assert case.events.filter(kind="classified").count() == 0  # a suggestion, never applied by itself


def test_a_broken_llm_never_stops_the_case_reaching_triage_with_its_fields(trained, practice, settings):
    settings.CLOSELOOP_LLM_URL = "http://[::1"  # a typo in the setting
    practice.types["refill"].confidence_threshold = 1.0
    practice.types["refill"].save()
    case = _open("Please refill my meloxicam prescription at CVS.\nPatient: Maria Gonzalez\nDOB: 04/05/1961")
    enqueue_case(case)
    assert run_jobs() == 1
    case.refresh_from_db()
    assert UnderstandingJob.objects.get(case=case).state == JobState.DONE
    assert case.stage == Stage.TRIAGE
    suggestions = case.events.get(kind="sent_to_triage").data["suggestions"]
    assert suggestions and all(s.get("source") != "llm" for s in suggestions)
    assert case.fields["patient_name"]["value"] == "Maria Gonzalez"
    assert case.fields["date_of_birth"]["value"] == "1961-04-05"


def test_a_letter_uploaded_on_the_status_page_is_read_and_fills_the_missing_fields(practice):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from closeloop.cases.links import status_token

    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"],
                             requester=Party.objects.create(name="Beacon Hill IM", email="office@beacon.example"))
    actions.request_missing_info(case, actions.Actor.of(practice.coordinator))
    case.refresh_from_db()
    assert "patient_name" in case.missing_fields
    letter = SimpleUploadedFile("letter.png", (DOCS / "doc-02.png").read_bytes(), "image/png")
    response = Client().post(f"/s/{status_token(case)}/", {"form": "upload", "document": letter})
    assert response.status_code == 302
    assert run_jobs() >= 1  # the worker reads the upload (Tesseract) and extracts its fields
    case.refresh_from_db()
    document = case.documents.get()
    assert case.fields["patient_name"]["value"] == "Noah Cohen"
    assert case.fields["patient_name"]["source"]["document"] == document.pk
    assert "patient_name" not in case.missing_fields and "date_of_birth" not in case.missing_fields


def test_an_ambiguous_two_digit_birth_year_stays_on_the_checklist_until_someone_confirms_it(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"],
                             body="Referral. Patient: Ana Silva, DOB 01/02/24, phone (617) 555-0142.",
                             requester=Party.objects.create(name="Harbor FM", email="office@harbor.example"))
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    dob = case.fields["date_of_birth"]
    assert dob["value"].endswith("-01-02") and dob["confidence"] < 0.5 and "confirm" in dob["source"]
    assert "date_of_birth" in case.missing_fields  # shown for confirmation, not passed as certain
    # The requester's reply with the full year confirms it; nothing else is needed.
    actions.record_inbound_message(case, actions.Actor.requester(), sender="office@harbor.example",
                                   subject="Re: Referral", body="Sorry: DOB 01/02/1924.")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert case.fields["date_of_birth"]["value"] == "1924-01-02"
    assert "confirm" not in case.fields["date_of_birth"]["source"]
    assert "date_of_birth" not in case.missing_fields


def test_a_staff_member_confirming_the_birth_date_takes_it_off_the_checklist(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"],
                             body="Please see Patient: Ana Silva, DOB 01/02/24.")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    assert "date_of_birth" in case.missing_fields
    actions.record_fields(case, actions.Actor.of(practice.coordinator),
                          {"date_of_birth": {"value": "2024-01-02", "confidence": 1.0, "source": {"kind": "staff"}}})
    case.refresh_from_db()
    assert "date_of_birth" not in case.missing_fields
    enqueue_case(case)  # a later run does not bring the doubt back over the person's answer
    run_jobs()
    case.refresh_from_db()
    assert "date_of_birth" not in case.missing_fields and case.fields["date_of_birth"]["confidence"] == 1.0


def test_a_threshold_set_to_zero_still_sends_a_low_confidence_guess_to_a_person(trained, practice):
    # An admin's 0 (or a typo such as 0.08 for 80 %) must not turn every guess into a routing.
    for request_type in practice.types.values():
        request_type.confidence_threshold = 0.0
        request_type.save()
    case = _open("I would like to apply for the receptionist job you advertised last week")
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    prediction = Prediction.objects.get(case=case)
    assert prediction.confidence < 0.5, prediction.confidence
    assert case.stage == Stage.TRIAGE and case.request_type is None and prediction.routed is False
    assert prediction.scores["threshold"] == 0.5


def test_the_case_page_offers_a_doubtful_birth_date_for_confirmation_in_one_click(practice):
    from django.test import Client

    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"],
                             body="Please see Patient: Ana Silva, DOB 01/02/24.", owner=practice.coordinator)
    enqueue_case(case)
    run_jobs()
    case.refresh_from_db()
    reading = case.fields["date_of_birth"]
    client = Client()
    client.force_login(practice.coordinator.user)
    page = client.get(f"/c/{case.pk}/").content.decode()
    checklist = page[page.index('class="checklist"'):]
    checklist = checklist[:checklist.index("</ul>")]
    assert f'id="fill-date_of_birth" name="field-value" value="{reading["value"]}"' in checklist
    assert "it may be 1924" in checklist  # the reason to look twice, beside the input
    response = client.post(f"/c/{case.pk}/do/field/", {"field-version": case.version, "field-name": "date_of_birth",
                                                       "field-value": reading["value"]})
    assert response.status_code == 302
    case.refresh_from_db()
    assert "date_of_birth" not in case.missing_fields
    assert case.fields["date_of_birth"]["value"] == reading["value"] == "2024-01-02"
    assert case.fields["date_of_birth"]["source"]["kind"] == "staff"


def _type_form(request_type, threshold):
    import json

    return {"name": request_type.name, "slug": request_type.slug, "description": request_type.description,
            "is_active": "on", "routing_team": request_type.routing_team_id or "",
            "default_priority": request_type.default_priority,
            "required_fields": json.dumps(request_type.required_fields), "confidence_threshold": threshold,
            "first_response_hours": request_type.first_response_hours,
            "resolution_hours": request_type.resolution_hours,
            "followup_cadence_days": json.dumps(request_type.followup_cadence_days),
            "auto_send": json.dumps(request_type.auto_send), "templates": json.dumps(request_type.templates),
            "policy": json.dumps(request_type.policy)}


@pytest.mark.parametrize("typed, message", [("8", "less than or equal to 1"), ("-1", "greater than or equal to 0")])
def test_the_admin_refuses_a_confidence_threshold_outside_0_to_1(practice, typed, message):
    from django.test import Client

    referral = practice.types["referral"]
    client = Client()
    client.force_login(practice.admin.user)
    url = f"/admin/cases/requesttype/{referral.pk}/change/"
    response = client.post(url, _type_form(referral, typed))
    assert response.status_code == 200 and message in response.content.decode()
    referral.refresh_from_db()
    assert referral.confidence_threshold == 0.8
    assert client.post(url, _type_form(referral, "0.9")).status_code == 302
    referral.refresh_from_db()
    assert referral.confidence_threshold == 0.9
