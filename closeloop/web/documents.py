"""Documents on the case page: the file itself, page images, and where each field came from.

A field's `source` may name `document` (id), `page` (1-based) and `boxes`: a list of
`[x0, y0, x1, y1]` as fractions of the page's width and height; those boxes are drawn over
the page image when someone clicks the field.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.cache import cache_control

from closeloop.cases.models import Case, Document

from .common import audit, case_for, staff_required

MAX_PAGES_SHOWN = 20
PREVIEW_SCALE = 1.4  # points to pixels: about 100 dpi
PREVIEW_PIXELS = 1400 * 1800  # a page preview never takes more (a hostile PDF may declare a 200-inch page)
INLINE_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain"}


def _page_count(doc: Document) -> int:
    if doc.content_type != "application/pdf":
        return 1 if doc.content_type.startswith("image/") else 0
    if doc.page_count:
        return doc.page_count
    import pypdfium2

    try:
        with doc.file.open("rb") as handle:
            return len(pypdfium2.PdfDocument(handle.read()))
    except (OSError, pypdfium2.PdfiumError):
        return 0


def _boxes(case: Case) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """(document id, page) → boxes with the field they belong to, as percentages for CSS."""
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for name, entry in case.fields.items():
        source = entry.get("source") if isinstance(entry, dict) else None
        if not isinstance(source, dict) or not source.get("boxes"):
            continue
        key = (int(source.get("document") or 0), int(source.get("page") or 1))
        for box in source["boxes"]:
            if isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
                x0, y0, x1, y1 = (max(0.0, min(1.0, float(v))) for v in box)
                out.setdefault(key, []).append({"field": name, "left": x0 * 100, "top": y0 * 100,
                                                "width": (x1 - x0) * 100, "height": (y1 - y0) * 100})
    return out


def documents_for(case: Case) -> list[dict[str, Any]]:
    boxes = _boxes(case)
    docs = []
    for doc in case.documents.all()[:50]:
        pages = [{"number": n, "boxes": boxes.get((doc.pk, n), [])}
                 for n in range(1, min(_page_count(doc), MAX_PAGES_SHOWN) + 1)]
        docs.append({"doc": doc, "pages": pages})
    return docs


def _document(request: HttpRequest, case_id: int, doc_id: int) -> Document:
    case = case_for(request.staff, case_id)  # type: ignore[attr-defined]
    doc = case.documents.filter(pk=doc_id).first()
    if doc is None or not doc.file:
        raise Http404("no such document")
    return doc


@staff_required
def document_file(request: HttpRequest, case_id: int, doc_id: int) -> HttpResponseBase:
    doc = _document(request, case_id, doc_id)
    audit(request, "document_view", doc.case, detail=doc.filename)
    inline = doc.content_type in INLINE_TYPES
    response = FileResponse(doc.file.open("rb"), content_type=doc.content_type or "application/octet-stream",
                            as_attachment=not inline, filename=doc.filename)
    # A stored file is never allowed to run script in our origin.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
    return response


@staff_required
@cache_control(private=True, max_age=3600)
def document_page(request: HttpRequest, case_id: int, doc_id: int, page: int) -> HttpResponse:
    """One page as a PNG (PDF pages rendered with pdfium, images converted as they are)."""
    doc = _document(request, case_id, doc_id)
    if not 1 <= page <= min(_page_count(doc), MAX_PAGES_SHOWN):
        raise Http404("no such page")
    from PIL import Image

    from closeloop.understanding.text import render_scale

    with doc.file.open("rb") as handle:
        content = handle.read()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if doc.content_type == "application/pdf":
                import pypdfium2

                pdf_page = pypdfium2.PdfDocument(content)[page - 1]
                # about 100 dpi, or less for a page so large it would not fit the budget
                width_pt, height_pt = pdf_page.get_size()
                scale = min(PREVIEW_SCALE, render_scale(width_pt, height_pt, PREVIEW_PIXELS))
                image = pdf_page.render(scale=scale).to_pil()
            else:
                image = Image.open(io.BytesIO(content))
                image.thumbnail((1400, 1800))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return HttpResponse("This page is too large to preview; download the document instead.",
                            status=415, content_type="text/plain")
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=True)
    return HttpResponse(out.getvalue(), content_type="image/png")
