"""Evaluation: train a configuration from scratch on one labelled file, measure it on another.

General on purpose: any label set, CSV or JSONL, any column names. Rows labelled with the
out-of-scope label are never trained on (out-of-scope is a threshold, not a class); in the
test file they measure how many such requests go to people.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .classify import BaselineClassifier, Config, TextClassifier


class DatasetError(ValueError):
    """The labelled file cannot be read as asked."""


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str]


def load_dataset(path: Path, text_col: str = "text", label_col: str = "label") -> Dataset:
    """Rows from CSV (header row), JSONL, or a JSON array of objects; rows with an empty text or
    label are skipped (a label or text of 0 is a value, not empty)."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    rows = _json_rows(path, raw) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else _csv_rows(path, raw)
    if rows and (text_col not in rows[0] or label_col not in rows[0]):
        raise DatasetError(f"{path} has columns {sorted(rows[0])}; asked for {text_col!r} and {label_col!r}")
    pairs = [(_cell(r.get(text_col)), _cell(r.get(label_col))) for r in rows]
    pairs = [(t, lab) for t, lab in pairs if t.strip() and lab.strip()]
    if not pairs:
        raise DatasetError(f"{path} holds no labelled rows")
    return Dataset([t for t, _ in pairs], [lab for _, lab in pairs])


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _csv_rows(path: Path, raw: str) -> list[dict[str, Any]]:
    try:
        return list(csv.DictReader(io.StringIO(raw, newline="")))
    except csv.Error as exc:
        raise DatasetError(f"{path}: not readable as CSV: {exc}") from None


def _json_rows(path: Path, raw: str) -> list[dict[str, Any]]:
    """A JSON array of objects, or one object per line (JSONL)."""
    if raw.lstrip().startswith("["):
        try:
            whole = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DatasetError(f"{path}: not a JSON array: {exc}") from None
        for number, row in enumerate(whole, 1):
            if not isinstance(row, dict):
                raise DatasetError(f"{path}: row {number} of the array is not a JSON object")
        return list(whole)
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DatasetError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: line {number} is not a JSON object with the columns; the file must hold "
                               "one object per line (JSONL) or an array of objects")
        rows.append(row)
    return rows


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score(truth: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    per_class = {}
    for c in classes:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        per_class[c] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(_f1(prec, rec), 4),
                        "support": tp + fn}
    present = [c for c in classes if per_class[c]["support"]]
    correct = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    confused = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return {
        "accuracy": round(correct / len(truth), 4) if truth else 0.0,
        "macro_f1": round(sum(per_class[c]["f1"] for c in present) / len(present), 4) if present else 0.0,
        "per_class": per_class,
        "confused": [{"true": t, "predicted": p, "count": n} for (t, p), n in confused.most_common(5)],
    }


def evaluate(model: TextClassifier, train: Dataset, test: Dataset, *, oos_label: str = "oos",
             threshold: float = 0.8) -> dict[str, Any]:
    keep = [i for i, lab in enumerate(train.labels) if lab != oos_label]
    if model.config.embeddings:  # loading (and, the first time, deriving) the embedder is not training
        from .embeddings import get_embedder

        get_embedder()
    tracemalloc.start()
    model.fit([train.texts[i] for i in keep], [train.labels[i] for i in keep])
    started = time.perf_counter()
    predictions = model.predict(test.texts)
    predict_seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    in_scope = [i for i, lab in enumerate(test.labels) if lab != oos_label]
    oos = [i for i, lab in enumerate(test.labels) if lab == oos_label]
    classes = sorted(set(model.labels) | {test.labels[i] for i in in_scope})  # a class only the test holds scores 0
    result = score([test.labels[i] for i in in_scope], [predictions[i].label for i in in_scope], classes)
    routed = [i for i in in_scope if predictions[i].routed(threshold)]
    routed_right = sum(1 for i in routed if predictions[i].label == test.labels[i])
    result.update({
        "train_rows": len(keep), "test_rows": len(test.texts), "in_scope_rows": len(in_scope), "oos_rows": len(oos),
        "threshold": threshold,
        "routing_coverage": round(len(routed) / len(in_scope), 4) if in_scope else 0.0,
        "routing_precision": round(routed_right / len(routed), 4) if routed else 0.0,
        "oos_recall": round(sum(1 for i in oos if not predictions[i].routed(threshold)) / len(oos), 4) if oos else None,
        "train_seconds": round(model.train_seconds, 3),
        "predictions_per_second": round(len(test.texts) / predict_seconds, 1) if predict_seconds else 0.0,
        "peak_memory_mb": round(peak / 2**20, 1),
    })
    return result


def compare(train: Dataset, test: Dataset, *, oos_label: str = "oos", threshold: float = 0.8,
            config: Config | None = None) -> dict[str, Any]:
    """The configured classifier and the TF-IDF + LR baseline, same files, same run."""
    labels = sorted({label for label in train.labels if label != oos_label})
    if len(labels) < 2:
        raise DatasetError(f"the training file needs at least two labels besides {oos_label!r}; it has {labels}")
    return {
        "model": evaluate(TextClassifier(config), train, test, oos_label=oos_label, threshold=threshold),
        "baseline": evaluate(BaselineClassifier(), train, test, oos_label=oos_label, threshold=threshold),
    }


def few_shot(data: Dataset, per_class: int, seed: int = 0) -> Dataset:
    """The first `per_class` examples of each label after a seeded shuffle."""
    import random

    order = list(range(len(data.texts)))
    random.Random(seed).shuffle(order)
    seen: Counter[str] = Counter()
    keep = []
    for i in order:
        if seen[data.labels[i]] < per_class:
            seen[data.labels[i]] += 1
            keep.append(i)
    return Dataset([data.texts[i] for i in keep], [data.labels[i] for i in keep])
