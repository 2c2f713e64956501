"""Text from every input: PDF text layers, scans through Tesseract (with word boxes), images, email.

Per-page output. A PDF page whose text layer is empty (a scan or a fax) is rendered at
300 dpi and OCR'd; a page too large for that (a hostile media box) is rendered at the dpi
that keeps it under CLOSELOOP_OCR_MAX_PIXELS, and says so in its `note`. Multi-page TIFF
faxes give one page per frame.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

# Tesseract's OpenMP threads fight each other on small machines: one a process (OFFLINE-MODELS.md).
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

OCR_DPI = 300
MIN_TEXT_LAYER_CHARS = 20
MAX_PAGES = 200
# A US legal page (8.5 × 14 in) at 300 dpi is 2550 × 4200 pixels; a page may not render larger.
DEFAULT_MAX_PIXELS = 2550 * 4200
log = logging.getLogger("closeloop.understanding")


class ExtractionError(ValueError):
    """The bytes are not a document we can read."""


@dataclass
class Word:
    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float
    start: int  # character offset of the word in the page text

    def as_list(self) -> list[Any]:
        return [self.text, self.left, self.top, self.width, self.height, round(self.conf, 1), self.start]


@dataclass
class Page:
    number: int
    text: str
    method: str
    words: list[Word] = field(default_factory=list)
    width: int = 0  # pixels of the image OCR read (0: not an image)
    height: int = 0
    note: str = ""  # how the page was read, when not as usual (a page rendered below 300 dpi)


def kind_of(data: bytes, content_type: str = "", filename: str = "") -> str:
    name = filename.lower()
    if data[:5] == b"%PDF-" or content_type == "application/pdf" or name.endswith(".pdf"):
        return "pdf"
    if data[:4] in (b"II*\x00", b"MM\x00*") or data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" \
            or data[:6] in (b"GIF87a", b"GIF89a"):  # every image type an upload may be (cases/documents.py)
        return "image"
    if content_type.startswith("text/") or name.endswith((".txt", ".eml")):
        return "text"
    raise ExtractionError(f"cannot read {filename or 'document'} ({content_type or 'unknown type'})")


def extract_pages(data: bytes, content_type: str = "", filename: str = "") -> list[Page]:
    kind = kind_of(data, content_type, filename)
    if kind == "pdf":
        return _pdf_pages(data)
    if kind == "image":
        return _image_pages(data)
    return [Page(1, decode_text(data), "text")]


_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


def decode_text(data: bytes) -> str:
    """A text file's characters: by its byte-order mark, else UTF-8, else Windows-1252 (what office
    PCs write; it maps nearly every byte, so "José" is not turned into "Jos\ufffd")."""
    for bom, encoding in _BOMS:  # UTF-32's LE mark begins with UTF-16's: test it first
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _pdf_pages(data: bytes) -> list[Page]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ExtractionError(f"not a readable PDF: {exc}") from None
    pages = []
    try:
        for index in range(min(len(pdf), MAX_PAGES)):
            page = pdf[index]
            text = page.get_textpage().get_text_range().replace("\r\n", "\n")
            if len(text.strip()) >= MIN_TEXT_LAYER_CHARS:
                pages.append(Page(index + 1, text, "text"))
            else:
                pages.append(_ocr_pdf_page(page, index + 1))
    finally:
        pdf.close()
    return pages


def max_pixels() -> int:
    from django.conf import settings

    return int(getattr(settings, "CLOSELOOP_OCR_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def render_scale(width_pt: float, height_pt: float, budget: int) -> float:
    """Points to pixels: 300 dpi, or less so that the rendered page stays within `budget` pixels."""
    scale = OCR_DPI / 72
    width_pt, height_pt = max(width_pt, 1.0), max(height_pt, 1.0)
    if math.ceil(width_pt * scale) * math.ceil(height_pt * scale) <= budget:
        return scale
    scale = math.sqrt(budget / (width_pt * height_pt))
    while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > budget:
        scale *= 0.995  # ceil() of each side may add a pixel row or column
    return scale


def _ocr_pdf_page(page: Any, number: int) -> Page:
    width_pt, height_pt = page.get_size()
    budget = max_pixels()
    scale = render_scale(width_pt, height_pt, budget)
    note = ""
    if scale < OCR_DPI / 72:
        note = (f"rendered at {scale * 72:.0f} dpi, not {OCR_DPI}: the page ({width_pt / 72:.0f} × "
                f"{height_pt / 72:.0f} in) would pass the {budget:,} pixel limit")
        log.warning("page %s %s", number, note)
    import pypdfium2 as pdfium

    try:
        image = page.render(scale=scale).to_pil()
    except pdfium.PdfiumError as exc:  # no bitmap could be made: unreadable, not worth retrying
        raise ExtractionError(f"page {number} could not be rendered: {exc}") from None
    result = ocr_image(image, number)
    result.note = note
    return result


def _image_pages(data: bytes) -> list[Page]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow only warns between its limit and twice it; such an image is refused all the same.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ExtractionError(_too_large("it")) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ExtractionError(f"not a readable image: {exc}") from None
    pages = []
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_PAGES:
            break
        if frame.width * frame.height > (Image.MAX_IMAGE_PIXELS or 0) > 0:  # Pillow checks the first frame only
            raise ExtractionError(_too_large(f"page {index + 1}"))
        pages.append(_ocr_frame(frame, index + 1))
    return pages


def _ocr_frame(frame: Any, number: int) -> Page:
    """One image page: decoded (a truncated or corrupt page is a reason, not a crash) and, when over
    the OCR pixel budget, scaled down to it first, as a huge PDF page is rendered at a lower dpi."""
    try:
        gray = frame.convert("L")
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's words for a page it cannot decode
        raise ExtractionError(f"page {number} could not be decoded: {exc}") from None
    budget, note = max_pixels(), ""
    if gray.width * gray.height > budget:
        scale = math.sqrt(budget / (gray.width * gray.height))
        size = (max(int(gray.width * scale), 1), max(int(gray.height * scale), 1))
        note = (f"scaled to {size[0]} × {size[1]} pixels from {gray.width} × {gray.height}: the page would pass "
                f"the {budget:,} pixel limit")
        log.warning("page %s %s", number, note)
        gray = gray.resize(size)
    page = ocr_image(gray, number)
    page.note = note
    return page


def _too_large(what: str) -> str:
    from PIL import Image

    return (f"the image is too large to read safely: {what} would decode to more than "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or a scan at an absurd resolution)")


def ocr_image(image: Any, number: int = 1) -> Page:
    """OCR one page; the page text is rebuilt from Tesseract's words so offsets match boxes."""
    import pytesseract

    data = pytesseract.image_to_data(image, lang="eng", config="--psm 3", output_type=pytesseract.Output.DICT)
    words: list[Word] = []
    parts: list[str] = []
    offset = 0
    last_line: tuple[int, int, int] | None = None
    for i, token in enumerate(data["text"]):
        token = (token or "").strip()
        if not token:
            continue
        line = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if last_line is not None:
            sep = " " if line == last_line else "\n"
            parts.append(sep)
            offset += 1
        last_line = line
        words.append(Word(token, data["left"][i], data["top"][i], data["width"][i], data["height"][i],
                          float(data["conf"][i]), offset))
        parts.append(token)
        offset += len(token)
    return Page(number, "".join(parts), "ocr", words, width=image.width, height=image.height)
