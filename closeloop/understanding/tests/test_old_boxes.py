"""Migration 0005: field boxes stored as OCR pixels [left, top, width, height] become page fractions."""

from __future__ import annotations

import importlib
import io
from typing import Any

import pypdfium2 as pdfium
import pytest
from django.apps import apps
from PIL import Image

from closeloop.cases import actions
from closeloop.cases.documents import store_document
from closeloop.cases.models import Case, Document
from closeloop.understanding.models import PageText
from closeloop.understanding.text import extract_pages

pytestmark = pytest.mark.django_db
migration = importlib.import_module("closeloop.understanding.migrations.0005_fraction_boxes")


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


def pdf(width_pt: float, height_pt: float, pages: int = 1) -> bytes:
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(width_pt, height_pt)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def case_with(practice: Any, **sources: dict[str, Any]) -> Case:
    fields = {name: {"value": f"{name} value", "confidence": 0.9, "source": {"kind": "document", **source}}
              for name, source in sources.items()}
    return actions.open_case(actor=actions.Actor.system(), subject="Scanned referral",
                             request_type=practice.types["referral"], fields=fields)


def migrate() -> None:
    migration.forwards(apps, None)


def boxes(case: Case, name: str) -> Any:
    case.refresh_from_db()
    return case.fields[name]["source"].get("boxes")


def test_old_pixel_boxes_on_an_image_become_fractions_of_its_header_size(practice):
    doc = store_document(png(1000, 800), "scan.png", "image/png", source="fax")
    case = case_with(practice, patient_name={"document": doc.pk, "page": 1, "boxes": [[100, 200, 300, 40]]})
    migrate()
    assert boxes(case, "patient_name") == [[0.1, 0.25, 0.4, 0.3]]
    assert case.fields["patient_name"]["value"] == "patient_name value"  # nothing else changes
    migrate()  # twice is harmless: fractions are left alone
    assert boxes(case, "patient_name") == [[0.1, 0.25, 0.4, 0.3]]


def test_old_pixel_boxes_on_a_pdf_page_use_the_ocr_render_size(practice, settings):
    doc = store_document(pdf(612, 792, pages=2), "letter.pdf", "application/pdf", source="fax")
    # Letter at 300 dpi is 2550 x 3300 pixels (3301: pdfium rounds 3300.000...1 up), as OCR renders it.
    case = case_with(practice, patient_name={"document": doc.pk, "page": 2, "boxes": [[255, 330, 510, 66]]})
    migrate()
    assert boxes(case, "patient_name") == [[0.1, 0.1, 0.3, 0.12]]
    [page] = extract_pages(pdf(612, 792), "application/pdf")  # the same size OCR reads
    assert migration.pdf_size(pdf(612, 792), 1) == (page.width, page.height) == (2550, 3301)


def test_a_pdf_page_over_the_pixel_budget_is_sized_as_ocr_renders_it(practice, settings):
    settings.CLOSELOOP_OCR_MAX_PIXELS = 1_000_000
    doc = store_document(pdf(612, 792), "big.pdf", "application/pdf", source="fax")
    [page] = extract_pages(pdf(612, 792), "application/pdf")
    assert page.width * page.height <= 1_000_000 and migration.pdf_size(pdf(612, 792), 1) == (page.width, page.height)
    case = case_with(practice, patient_name={"document": doc.pk, "page": 1,
                                             "boxes": [[0, 0, page.width / 2, page.height / 4]]})
    migrate()
    [[x0, y0, x1, y1]] = boxes(case, "patient_name")
    assert (x0, y0) == (0, 0) and x1 == pytest.approx(0.5, abs=1e-4) and y1 == pytest.approx(0.25, abs=1e-4)


def test_the_pages_kept_pixel_size_wins_over_the_file(practice):
    doc = store_document(png(1000, 800), "scan.png", "image/png", source="fax")
    PageText.objects.create(document=doc, number=1, text="x", method="ocr", width=500, height=400)
    case = case_with(practice, patient_name={"document": doc.pk, "page": 1, "boxes": [[100, 200, 300, 40]]})
    migrate()
    assert boxes(case, "patient_name") == [[0.2, 0.5, 0.8, 0.6]]


def test_boxes_that_cannot_be_converted_are_dropped_not_left_wrong(practice):
    image = store_document(png(1000, 800), "scan.png", "image/png", source="fax")
    gone = store_document(png(640, 480), "gone.png", "image/png", source="fax")
    gone.file.delete(save=False)
    letter = store_document(pdf(612, 792), "letter.pdf", "application/pdf", source="fax")
    fresh = [[0.1, 0.2, 0.3, 0.25]]
    case = case_with(
        practice,
        patient_name={"document": gone.pk, "page": 1, "boxes": [[10, 10, 50, 20]]},  # its file is gone
        phone={"document": letter.pk, "page": 3, "boxes": [[10, 10, 50, 20]]},  # no such page
        member_id={"document": image.pk, "page": 1, "boxes": [[900, 700, 400, 40]]},  # off the page
        npi={"document": 999_999, "page": 1, "boxes": [[10, 10, 50, 20]]},  # no such document
        date_of_birth={"document": image.pk, "page": 1, "boxes": fresh},  # already fractions
    )
    migrate()
    case.refresh_from_db()
    for name in ("patient_name", "phone", "member_id", "npi"):
        source = case.fields[name]["source"]
        assert "boxes" not in source and source["document"] and case.fields[name]["value"], name
    assert boxes(case, "date_of_birth") == fresh
    assert Document.objects.filter(pk=image.pk).exists()


def test_a_part_split_from_a_packet_takes_its_pages_size_from_the_original(practice):
    from closeloop.understanding.models import DocumentPart

    packet = store_document(pdf(612, 792, pages=4), "packet.pdf", "application/pdf", source="fax")
    part = store_document(pdf(612, 792, pages=2) + b"\n", "packet-p2-3.pdf", "application/pdf", source="fax")
    DocumentPart.objects.create(original=packet, document=part, kind="referral_letter", first_page=2, last_page=3)
    PageText.objects.create(document=packet, number=3, text="x", method="ocr", width=1000, height=2000)
    PageText.objects.create(document=part, number=2, text="x", method="ocr")  # split pages kept no size
    case = case_with(practice, patient_name={"document": part.pk, "page": 2, "boxes": [[100, 200, 300, 40]]})
    migrate()
    assert boxes(case, "patient_name") == [[0.1, 0.1, 0.4, 0.12]]
