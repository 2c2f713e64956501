from __future__ import annotations

import json
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from closeloop.cases import actions
from closeloop.cases.documents import store_document
from closeloop.understanding.evaluate import load_dataset
from closeloop.understanding.models import DocumentPart, PageText
from closeloop.understanding.packets import group, page_classifier
from closeloop.understanding.pipeline import enqueue_case, run_jobs
from closeloop.understanding.text import Page

DEV = Path(__file__).resolve().parents[3] / "data" / "dev"
PACKET = DEV / "packets" / "packet-01.pdf"


def test_pages_are_classified_by_kind_on_held_out_pages():
    held_out = load_dataset(DEV / "pages_test.csv")
    predicted = [p.label for p in page_classifier().predict(held_out.texts)]
    right = sum(p == t for p, t in zip(predicted, held_out.labels, strict=True))
    assert right / len(predicted) >= 0.95


@pytest.mark.django_db
def test_a_fax_packet_is_split_into_its_documents_when_the_type_asks_for_it(practice):
    referral = practice.types["referral"]
    referral.policy = {**referral.policy, "split_packets": True}
    referral.save()
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral packet", body="See fax",
                             request_type=referral)
    packet = store_document(PACKET.read_bytes(), "packet.pdf", "application/pdf", source="fax", case=case)
    enqueue_case(case)
    assert run_jobs() == 1
    parts = list(DocumentPart.objects.filter(original=packet).select_related("document"))
    truth = json.loads((DEV / "packets" / "packet-01.json").read_text())["parts"]
    assert [[p.kind, p.first_page, p.last_page] for p in parts] == truth
    assert [p.method for p in PageText.objects.filter(document=packet)] == ["text", "ocr", "ocr", "text", "text"]
    notes = parts[-1].document
    assert notes.page_count == 2 and len(pdfium.PdfDocument(notes.file.open("rb").read())) == 2
    assert PageText.objects.filter(document=parts[1].document, method="ocr").count() == 1  # copied, not re-read
    case.refresh_from_db()
    part_ids = {p.document_id for p in parts}
    by_part = {name: f["source"]["document"] for name, f in case.fields.items()
               if isinstance(f, dict) and isinstance(f.get("source"), dict) and f["source"].get("document")}
    assert by_part and set(by_part.values()) <= part_ids  # provenance points at the parts, not the packet
    enqueue_case(case)
    run_jobs()
    assert DocumentPart.objects.filter(original=packet).count() == len(truth)  # split once


@pytest.mark.django_db
def test_without_the_policy_flag_a_packet_stays_one_document(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral packet", body="See fax",
                             request_type=practice.types["referral"])
    store_document(PACKET.read_bytes(), "packet.pdf", "application/pdf", source="fax", case=case)
    enqueue_case(case)
    run_jobs()
    assert not DocumentPart.objects.exists()
    assert case.documents.count() == 1


def _page(number: int, text: str) -> Page:
    return Page(number=number, text=text, method="text")


LAB = """Lab Results
Patient: {name}  DOB: {dob}
Collected: 7/10/2026
Test  Result  Flag  Reference range
Hemoglobin  7.5    13.5-17.5
CRP  85.5  H  <10
Specimen: serum
{marker}"""


def test_two_lab_reports_faxed_back_to_back_are_two_documents():
    pages = [_page(1, LAB.format(name="Liam Silva", dob="06/26/1967", marker="Page 1 of 2")),
             _page(2, LAB.format(name="Liam Silva", dob="06/26/1967", marker="Page 2 of 2")),
             _page(3, LAB.format(name="Liam Silva", dob="06/26/1967", marker="Page 1 of 1")),
             _page(4, LAB.format(name="Liam Silva", dob="06/26/1967", marker="")),
             _page(5, LAB.format(name="Liam Silva", dob="06/26/1967", marker="PAGE 2 OF 2"))]
    assert [(p.kind, p.first, p.last) for p in group(pages)] == [
        ("lab_results", 1, 2), ("lab_results", 3, 3), ("lab_results", 4, 5)]


def test_continuation_pages_without_markers_stay_together():
    pages = [_page(1, LAB.format(name="Liam Silva", dob="06/26/1967", marker="")),
             _page(2, LAB.format(name="Liam Silva", dob="06/26/1967", marker="page 2/3")),
             _page(3, LAB.format(name="Liam Silva", dob="06/26/1967", marker="Pages (including cover): 3"))]
    assert [(p.first, p.last) for p in group(pages)] == [(1, 3)]
