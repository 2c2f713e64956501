"""Field extraction measured against annotated documents (data/dev/documents/*.json)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from .fields import extract
from .text import ExtractionError, extract_pages


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(sorted(_norm(v) for v in value))
    return re.sub(r"\s+", " ", str(value)).strip().lower()


class AnnotationError(ValueError):
    """The folder does not hold annotated documents we can score (the message names the file)."""


def _annotation(truth_path: Path) -> tuple[dict[str, Any], Path]:
    """The truth's fields and the document beside it (same stem, another suffix)."""
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{truth_path.name} is not a JSON annotation: {exc}") from None
    if not isinstance(truth, dict) or not isinstance(truth.get("fields"), dict):
        raise AnnotationError(f'{truth_path.name} needs an object {{"fields": {{name: value}}}}')
    source = next((p for p in sorted(truth_path.parent.glob(truth_path.stem + ".*")) if p.suffix != ".json"), None)
    if source is None:
        raise AnnotationError(f"{truth_path.name} has no document beside it ({truth_path.stem}.pdf, .png, .tiff …)")
    return truth["fields"], source


def evaluate_documents(folder: Path, today: date | None = None) -> dict[str, Any]:
    """Micro precision/recall/F1 over every (document, field) pair, plus per-field counts.

    Raises AnnotationError for a folder without annotations, an annotation without its document,
    or a document that cannot be read."""
    truths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not truths:
        raise AnnotationError(f"{folder} holds no annotated documents (NAME.json beside NAME.pdf/.png/.tiff/.txt)")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    pages = 0
    for truth_path in truths:
        truth, source = _annotation(truth_path)
        try:
            doc_pages = extract_pages(source.read_bytes(), filename=source.name)
        except ExtractionError as exc:
            raise AnnotationError(f"{source.name}: {exc}") from None
        pages += len(doc_pages)
        found = {k: v.value for k, v in extract(doc_pages, today=today).items() if k in _SCORED}
        for name in _SCORED:
            want, got = truth.get(name), found.get(name)
            if want is not None and got is not None and _norm(want) == _norm(got):
                tp[name] += 1
            else:
                if got is not None:
                    fp[name] += 1
                if want is not None:
                    fn[name] += 1
    t, p, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision = t / (t + p) if t + p else 0.0
    recall = t / (t + n) if t + n else 0.0
    return {
        "documents": len(truths), "pages": pages,
        "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "per_field": {name: {"tp": tp[name], "fp": fp[name], "fn": fn[name]} for name in _SCORED},
    }


_SCORED = ["patient_name", "date_of_birth", "phone", "email", "address", "referring_provider",
           "referring_practice", "npi", "insurance_payer", "member_id", "reason", "icd10_codes", "urgency"]
