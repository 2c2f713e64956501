"""Splitting a fax packet into its documents by classifying each page.

Where a request type's policy says `{"split_packets": true}`, each multi-page document on a
case is split: every page is classified (cover_sheet, referral_letter, insurance_card,
clinical_notes, lab_results; trained on `data/page_kinds.csv`, TF-IDF words and characters,
which copes with OCR noise), consecutive pages of the same kind form one part unless a page says
it begins a new document (its "Page 1 of n", or the page before it was "Page n of n"), and each part
is stored as its own Document (PDF pages copied, or TIFF frames) linked to the original by a
DocumentPart row with its page range. Its page text is copied, not OCR'd again, so fields
are extracted per part with provenance pointing at the part and its pages.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from closeloop.cases.documents import store_document
from closeloop.cases.models import Document

from .classify import Config, TextClassifier
from .models import DocumentPart, PageText
from .text import Page

PAGE_KINDS = Path(__file__).parent / "data" / "page_kinds.csv"
ALWAYS_ALONE = {"cover_sheet", "insurance_card"}  # two in a row are two documents, not one
PAGE_OF = re.compile(r"\bpage\s+(\d{1,3})\s*(?:of|/)\s*(\d{1,3})\b", re.IGNORECASE)


@dataclass
class Part:
    kind: str
    first: int
    last: int
    confidence: float


_model: TextClassifier | None = None
_lock = threading.Lock()


def page_classifier() -> TextClassifier:
    """The page-kind classifier, trained once per process from the shipped examples (under a second)."""
    global _model
    with _lock:
        if _model is None:
            with PAGE_KINDS.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            config = Config(embeddings=False, novelty=False, strip_boilerplate=False, folds=3)
            _model = TextClassifier(config).fit([r["text"] for r in rows], [r["label"] for r in rows])
        return _model


def group(pages: list[Page]) -> list[Part]:
    """Consecutive pages of one kind are one document."""
    parts: list[Part] = []
    if not pages:
        return parts
    previous = pages[0]
    for page, prediction in zip(pages, page_classifier().predict([p.text for p in pages]), strict=True):
        last = parts[-1] if parts else None
        if last and last.kind == prediction.label and last.kind not in ALWAYS_ALONE \
                and not begins_document(previous.text, page.text):
            last.last = page.number
            last.confidence = min(last.confidence, prediction.confidence)
        else:
            parts.append(Part(prediction.label, page.number, page.number, prediction.confidence))
        previous = page
    return parts


def _page_of(text: str) -> tuple[int, int] | None:
    for match in PAGE_OF.finditer(text):
        number, total = int(match.group(1)), int(match.group(2))
        if 1 <= number <= total:
            return number, total
    return None


def begins_document(before: str, text: str) -> bool:
    """Whether a page starts a document of its own although the page before it is of the same kind:
    two lab reports or two letters faxed back to back, told apart by their page footers."""
    here, there = _page_of(text), _page_of(before)
    return bool((here and here[0] == 1) or (there and there[0] == there[1]))


def split_document(document: Document, pages: list[Page]) -> list[Document]:
    """Store each part of a packet as its own Document; idempotent (parts made once)."""
    existing = list(Document.objects.filter(part_of__original=document).order_by("part_of__first_page"))
    if existing or document.case_id is None:
        return existing
    parts = group(pages)
    if len(parts) < 2:
        return []
    with document.file.open("rb") as fh:
        data = fh.read()
    by_number = {p.number: p for p in pages}
    made = []
    with transaction.atomic():
        for part in parts:
            content, content_type, suffix = _pages_file(data, document.content_type, part.first, part.last)
            stem = Path(document.filename).stem
            child = store_document(content, f"{stem}-p{part.first}-{part.last}-{part.kind}{suffix}", content_type,
                                   source=document.source or "packet", case=document.case)
            DocumentPart.objects.create(original=document, document=child, kind=part.kind, first_page=part.first,
                                        last_page=part.last, confidence=round(part.confidence, 4))
            own = [by_number[n] for n in range(part.first, part.last + 1) if n in by_number]
            PageText.objects.bulk_create([PageText(document=child, number=i, text=p.text, method=p.method,
                                                   words=[w.as_list() for w in p.words])
                                          for i, p in enumerate(own, 1)])
            Document.objects.filter(pk=child.pk).update(page_count=len(own),
                                                        text="\n\f\n".join(p.text for p in own)[:1_000_000])
            made.append(child)
    return made


def _pages_file(data: bytes, content_type: str, first: int, last: int) -> tuple[bytes, str, str]:
    """Pages first..last (1-based) of a PDF or multi-frame TIFF as a file of their own."""
    if data.startswith(b"%PDF-"):
        import pypdfium2 as pdfium

        source, out = pdfium.PdfDocument(data), pdfium.PdfDocument.new()
        try:
            out.import_pages(source, list(range(first - 1, last)))
            buf = io.BytesIO()
            out.save(buf)
        finally:
            out.close()
            source.close()
        return buf.getvalue(), "application/pdf", ".pdf"
    from PIL import Image, ImageSequence

    frames = [f.copy() for i, f in enumerate(ImageSequence.Iterator(Image.open(io.BytesIO(data))), 1)
              if first <= i <= last]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return buf.getvalue(), "image/tiff", ".tiff"
