"""Field extraction measured against annotated documents (data/dev/documents/*.json)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from .fields import extract
from .text import extract_pages


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(sorted(_norm(v) for v in value))
    return re.sub(r"\s+", " ", str(value)).strip().lower()


def evaluate_documents(folder: Path, today: date | None = None) -> dict[str, Any]:
    """Micro precision/recall/F1 over every (document, field) pair, plus per-field counts."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    pages = 0
    for truth_path in sorted(folder.glob("*.json")):
        truth = json.loads(truth_path.read_text())["fields"]
        source = next(p for p in folder.glob(truth_path.stem + ".*") if p.suffix != ".json")
        doc_pages = extract_pages(source.read_bytes(), filename=source.name)
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
        "documents": len(list(folder.glob("*.json"))), "pages": pages,
        "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "per_field": {name: {"tp": tp[name], "fp": fp[name], "fn": fn[name]} for name in _SCORED},
    }


_SCORED = ["patient_name", "date_of_birth", "phone", "email", "address", "referring_provider",
           "referring_practice", "npi", "insurance_payer", "member_id", "reason", "icd10_codes", "urgency"]
