"""A document's page preview must not let a hostile file exhaust the web process: a PDF page with a huge
media box is drawn within a pixel budget, and an image bomb is refused with a clear answer, not a 500."""

from __future__ import annotations

import io
from typing import Any

from django.test import Client
from PIL import Image

from closeloop.cases.documents import store_document
from closeloop.understanding.tests.test_hostile import _pdf, _png_bomb
from closeloop.web.documents import PREVIEW_PIXELS


def _page(client: Client, referral: Any, data: bytes, name: str, content_type: str) -> Any:
    doc = store_document(data, name, content_type, source="upload", case=referral)
    return client.get(f"/c/{referral.pk}/d/{doc.pk}/p/1.png")


def test_a_huge_pdf_page_is_drawn_within_the_preview_budget(coordinator_client: Client, referral: Any) -> None:
    response = _page(coordinator_client, referral, _pdf(14_400, 14_400), "poster.pdf", "application/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    width, height = Image.open(io.BytesIO(response.content)).size
    assert width * height <= PREVIEW_PIXELS and width > 500  # 200 × 200 inches at scale 1.4 is 406 M pixels


def test_an_ordinary_page_is_drawn_as_before(coordinator_client: Client, referral: Any) -> None:
    response = _page(coordinator_client, referral, _pdf(8.5 * 72, 11 * 72), "letter.pdf", "application/pdf")
    assert Image.open(io.BytesIO(response.content)).size == (857, 1109)  # scale 1.4


def test_an_image_bomb_is_refused_clearly(coordinator_client: Client, referral: Any) -> None:
    for side in (15_000, 10_000):  # Pillow's error (225 M pixels), its warning (100 M)
        response = _page(coordinator_client, referral, _png_bomb(side, side), "scan.png", "image/png")
        assert response.status_code == 415 and b"too large to preview" in response.content
