"""Field boxes stored before boxes became page fractions were OCR pixels [left, top, width, height]; the case
page reads [x0, y0, x1, y1] fractions of the page, so it drew every old highlight in the page's corner.

An old list is recognisable: some value in it is over 1. Each is rewritten as fractions of the page's pixel
size: the size kept on the page's text (`PageText.width/height`, read since 0004), else the size of the page
that was read (of the original, for a part split from a packet), else derived from the stored document: an
image page's pixel size from its header (Pillow, the frame for a TIFF page), a PDF page's size in points at
the OCR scale (`text.render_scale`, capped at CLOSELOOP_OCR_MAX_PIXELS as OCR renders it). A box that cannot
be converted (no document, an unreadable file, no such page, a box off the page) is dropped: no highlight
rather than a wrong one. The value, its confidence and the rest of its source stay. No event: the case did
not change, only how its highlight is written.
"""

from __future__ import annotations

import io
from typing import Any

from django.db import migrations
from django.db.models import TextField
from django.db.models.functions import Cast

Size = tuple[int, int] | None
OFF_PAGE = 1.01  # a little past the edge is rounding; more is a box from another size


def is_old(boxes: Any) -> bool:
    return isinstance(boxes, list) and any(
        isinstance(box, list) and any(isinstance(v, int | float) and v > 1 for v in box) for box in boxes)


def convert(boxes: list[Any], size: Size) -> list[list[float]]:
    """Pixel [left, top, width, height] → [x0, y0, x1, y1] fractions of a page `size` pixels large."""
    if size is None or not size[0] or not size[1]:
        return []
    width, height = size
    out = []
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            continue
        left, top, w, h = (float(v) for v in box)
        x0, y0, x1, y1 = left / width, top / height, (left + w) / width, (top + h) / height
        if min(x0, y0, w, h) < 0 or max(x1, y1) > OFF_PAGE:
            continue
        out.append([round(x0, 4), round(y0, 4), round(min(x1, 1.0), 4), round(min(y1, 1.0), 4)])
    return out


def image_size(data: bytes, page: int) -> Size:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header, not the pixels
            if page > 1:
                image.seek(page - 1)
            return image.size
    except Exception:  # noqa: BLE001 - any file Pillow cannot read, or a page it does not have: no size
        return None


def pdf_size(data: bytes, page: int) -> Size:
    import math

    import pypdfium2 as pdfium

    from closeloop.understanding.text import max_pixels, render_scale

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return None
    try:
        if not 1 <= page <= len(pdf):
            return None
        width_pt, height_pt = pdf[page - 1].get_size()
    finally:
        pdf.close()
    scale = render_scale(width_pt, height_pt, max_pixels())
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)  # as pdfium renders it


def file_size(document: Any, page: int) -> Size:
    try:
        with document.file.open("rb") as fh:
            data = fh.read()
    except (OSError, ValueError):  # the file is gone, or was never stored
        return None
    if data[:5] == b"%PDF-" or document.content_type == "application/pdf":
        return pdf_size(data, page)
    return image_size(data, page)


class Sizes:
    """The pixel size of each (document, page), looked up once."""

    def __init__(self, apps: Any) -> None:
        self.Document = apps.get_model("cases", "Document")
        self.PageText = apps.get_model("understanding", "PageText")
        self.DocumentPart = apps.get_model("understanding", "DocumentPart")
        self.known: dict[tuple[int, int], Size] = {}

    def __call__(self, document_id: int, page: int) -> Size:
        key = (document_id, page)
        if key not in self.known:
            self.known[key] = self._find(document_id, page)
        return self.known[key]

    def _kept(self, document_id: int, page: int) -> Size:
        row = self.PageText.objects.filter(document_id=document_id, number=page).values("width", "height").first()
        return (row["width"], row["height"]) if row and row["width"] and row["height"] else None

    def _find(self, document_id: int, page: int) -> Size:
        kept = self._kept(document_id, page)
        if kept is not None:
            return kept
        part = self.DocumentPart.objects.filter(document_id=document_id).values("original_id", "first_page").first()
        if part is not None:  # a part of a packet: its page was read as a page of the original
            kept = self._kept(part["original_id"], part["first_page"] + page - 1)
            if kept is not None:
                return kept
        document = self.Document.objects.filter(pk=document_id).first()
        return file_size(document, page) if document is not None else None


def rewrite(fields: dict[str, Any], sizes: Any) -> bool:
    """Rewrite every old box list in a case's fields; whether anything changed."""
    changed = False
    for entry in fields.values():
        source = entry.get("source") if isinstance(entry, dict) else None
        if not isinstance(source, dict) or not is_old(source.get("boxes")):
            continue
        try:
            document, page = int(source.get("document") or 0), int(source.get("page") or 1)
        except (TypeError, ValueError):
            document, page = 0, 1
        boxes = convert(source["boxes"], sizes(document, page)) if document else []
        if boxes:
            source["boxes"] = boxes
        else:
            del source["boxes"]
        changed = True
    return changed


def forwards(apps: Any, schema_editor: Any) -> None:
    Case = apps.get_model("cases", "Case")
    sizes = Sizes(apps)
    with_boxes = Case.objects.annotate(as_text=Cast("fields", TextField())).filter(as_text__contains='"boxes"')
    for pk, fields in with_boxes.values_list("pk", "fields").iterator(chunk_size=500):
        if isinstance(fields, dict) and rewrite(fields, sizes):
            Case.objects.filter(pk=pk).update(fields=fields)


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0003_requesttype_threshold_range"),
        ("understanding", "0004_page_render"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
