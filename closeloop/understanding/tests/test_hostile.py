"""Documents built to hurt the reader: huge pages and decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

from closeloop.cases import actions
from closeloop.cases.documents import store_document
from closeloop.understanding.models import JobState, PageText
from closeloop.understanding.pipeline import enqueue_case, enqueue_document, run_jobs
from closeloop.understanding.text import DEFAULT_MAX_PIXELS, extract_pages

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _pdf(width_pt: float, height_pt: float, lines: tuple[str, ...] = ()) -> bytes:
    """A real PDF with one page of this media box and no text layer (so the reader renders it);
    `lines` are drawn on a scanned image that fills the page."""
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(width_pt, height_pt)
    if lines:
        scan = Image.new("L", (1500, 2000), 255)
        draw = ImageDraw.Draw(scan)
        for n, line in enumerate(lines):
            draw.text((100, 150 + n * 120), line, fill=0, font=ImageFont.truetype(FONT, 60))
        image = pdfium.PdfImage.new(pdf)
        image.set_bitmap(pdfium.PdfBitmap.from_pil(scan))
        image.set_matrix(pdfium.PdfMatrix().scale(width_pt, height_pt))
        page.insert_obj(image)
        page.gen_content()
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


def test_a_page_with_a_huge_media_box_is_rendered_under_the_pixel_budget_and_says_so(settings):
    settings.CLOSELOOP_OCR_MAX_PIXELS = 4_000_000
    # 200 × 200 inches: at 300 dpi that would be 60,000 × 60,000 pixels (3.6 billion, ~10 GB as RGB).
    page = extract_pages(_pdf(14_400, 14_400))[0]
    assert page.method == "ocr"
    assert page.width * page.height <= 4_000_000, (page.width, page.height)
    assert page.width > 1000  # scaled down, not given up on
    assert "dpi" in page.note and "4,000,000" in page.note


def test_a_legal_page_is_still_read_at_300_dpi_under_the_default_budget():
    page = extract_pages(_pdf(8.5 * 72, 14 * 72))[0]
    assert (page.width, page.height) == (2550, 4200)
    assert page.note == ""


@pytest.mark.django_db
def test_a_scan_on_a_huge_page_is_read_at_a_lower_dpi_and_its_fields_say_how(practice):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"])
    data = _pdf(60 * 72, 80 * 72, ("Patient: Maria Gonzalez", "DOB: 03/14/1961"))  # 18,000 × 24,000 px at 300 dpi
    doc = store_document(data, "poster.pdf", "application/pdf", source="upload", case=case)
    enqueue_document(doc)
    enqueue_case(case)
    assert run_jobs() == 2
    page = PageText.objects.get(document=doc)
    assert page.method == "ocr" and 0 < page.width * page.height <= DEFAULT_MAX_PIXELS
    assert "dpi" in page.note
    case.refresh_from_db()
    name = case.fields["patient_name"]
    assert name["value"] == "Maria Gonzalez" and "dpi" in name["source"]["read"]
    assert not case.documents.get().understandingjob_set.exclude(state=JobState.DONE).exists()


def _png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of this size, all white: a few hundred KB that decode to width × height pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.django_db
@pytest.mark.parametrize("side", [15_000, 10_000])  # Pillow's error (225 M pixels), its warning (100 M)
def test_a_decompression_bomb_fails_at_once_with_a_reason_staff_see_and_the_file_is_kept(practice, side):
    case = actions.open_case(actor=actions.Actor.system(), subject="Referral", request_type=practice.types["referral"],
                             body="Referral. Patient: Maria Gonzalez, DOB 03/14/1961.")
    bomb = _png_bomb(side, side)
    doc = store_document(bomb, "scan.png", "image/png", source="upload", case=case)
    job = enqueue_document(doc)
    enqueue_case(case)
    assert run_jobs() == 2
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 1  # at once, no retries
    assert "too large" in job.error and "ExtractionError" in job.error
    event = case.events.get(kind="document_unreadable")
    assert event.data["document"] == doc.pk and "too large" in event.data["reason"]
    assert "scan.png" in event.data["reason"]
    case.refresh_from_db()
    assert case.fields["patient_name"]["value"] == "Maria Gonzalez"  # the rest of the case was still read
    with doc.file.open("rb") as handle:
        assert handle.read() == bomb  # the raw document is kept
    # Staff see the reason on the case page's timeline.
    from django.test import Client

    client = Client()
    client.force_login(practice.coordinator.user)
    page = client.get(f"/c/{case.pk}/").content.decode()
    assert "Document unreadable" in page and "too large" in page


def _tiff_with_a_later_page(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A real two-page TIFF fax: page 1 a small readable page, page 2 declared `width` × `height`
    (8-bit grey, uncompressed), carrying `pixels` (default: a few bytes; the rest of it missing)."""
    from PIL import Image, ImageDraw

    first = Image.new("L", (1200, 200), 255)
    ImageDraw.Draw(first).text((20, 80), "Patient: Maria Gonzalez", fill=0, font_size=48)
    out = io.BytesIO()
    first.save(out, format="TIFF", save_all=True, append_images=[Image.new("L", (16, 16), 255)])
    data = bytearray(out.getvalue())
    second = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from("<I", data, second + 2 + 12 * struct.unpack_from("<H", data, second)[0])[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        at = second + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, at)
        if tag in (256, 257):  # ImageWidth, ImageLength: the bomb is in the header, not the bytes
            struct.pack_into("<H" if kind == 3 else "<I", data, at + 8, width if tag == 256 else height)
        if pixels is not None and tag == 273:  # StripOffsets → the pixels, appended; StripByteCounts below
            struct.pack_into("<I", data, at + 8, len(data))
        if pixels is not None and tag == 279:
            struct.pack_into("<I", data, at + 8, len(pixels))
    return bytes(data) + (pixels or b"")


@pytest.mark.parametrize("side", [20_000, 10_000])  # past Pillow's error, in its warning band
def test_a_later_tiff_page_that_is_a_decompression_bomb_is_refused_before_decoding(side):
    from closeloop.understanding.text import ExtractionError, extract_pages

    with pytest.raises(ExtractionError, match="page 2 would decode to more than"):
        extract_pages(_tiff_with_a_later_page(side, side), "image/tiff", "fax.tif")


def test_a_later_tiff_page_cut_short_is_a_reason_not_a_crash():
    from closeloop.understanding.text import ExtractionError, extract_pages

    with pytest.raises(ExtractionError, match="page 2 could not be decoded"):
        extract_pages(_tiff_with_a_later_page(3000, 3000), "image/tiff", "fax.tif")


def test_a_later_tiff_page_over_the_ocr_budget_is_scaled_down_and_says_so(settings):
    from closeloop.understanding.text import extract_pages

    settings.CLOSELOOP_OCR_MAX_PIXELS = 1_000_000
    pages = extract_pages(_tiff_with_a_later_page(2000, 2000, b"\xff" * 4_000_000), "image/tiff", "fax.tif")
    assert [p.number for p in pages] == [1, 2] and "Maria" in pages[0].text
    assert pages[1].width * pages[1].height <= 1_000_000 and "scaled to" in pages[1].note
