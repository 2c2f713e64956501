from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from closeloop.understanding.classify import Config
from closeloop.understanding.evaluate import DatasetError, compare, load_dataset
from closeloop.understanding.fieldeval import AnnotationError, evaluate_documents


class Command(BaseCommand):
    help = ("Train the current classifier configuration from scratch on one labelled file and measure it on "
            "another; or, with --documents, measure field extraction on a folder of annotated documents.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--train", type=Path, help="CSV (header row) or JSONL")
        parser.add_argument("--test", type=Path, help="CSV (header row) or JSONL")
        parser.add_argument("--documents", type=Path, help="folder of NAME.json annotations beside their documents: "
                            "field precision/recall/F1 instead of classification")
        parser.add_argument("--today", default=None,
                            help="with --documents: the date two-digit birth years are read against (YYYY-MM-DD)")
        parser.add_argument("--text-col", default="text")
        parser.add_argument("--label-col", default="label")
        parser.add_argument("--oos-label", default="oos", help="label of out-of-scope rows (never trained on)")
        parser.add_argument("--threshold", type=float, default=None, help="routing threshold (default: setting)")
        parser.add_argument("--no-embeddings", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        if o.get("documents") is not None:
            self._documents(o["documents"], o.get("today"), bool(o.get("json")))
            return
        if o.get("train") is None or o.get("test") is None:
            raise CommandError("give --train and --test (classification), or --documents DIR (fields)")
        threshold = o["threshold"] if o["threshold"] is not None else settings.CLOSELOOP_ROUTE_THRESHOLD
        embeddings = settings.CLOSELOOP_EMBEDDINGS and not o["no_embeddings"]
        try:
            train = load_dataset(o["train"], o["text_col"], o["label_col"])
            test = load_dataset(o["test"], o["text_col"], o["label_col"])
            result = compare(train, test, oos_label=o["oos_label"], threshold=threshold,
                             config=Config(embeddings=embeddings))
        except DatasetError as exc:
            raise CommandError(str(exc)) from None
        if o["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(render(result))

    def _documents(self, folder: Path, today: str | date | None, as_json: bool) -> None:
        try:
            if isinstance(today, str):
                today = date.fromisoformat(today)
        except ValueError:
            raise CommandError(f"--today must be a date as YYYY-MM-DD, not {today!r}") from None
        try:
            result = evaluate_documents(Path(folder), today=today or timezone.now().date())
        except AnnotationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, indent=2) if as_json else render_fields(result))


ROWS = [("accuracy", "accuracy"), ("macro-F1", "macro_f1"), ("routing coverage", "routing_coverage"),
        ("routing precision", "routing_precision"), ("OOS to people", "oos_recall"),
        ("training time (s)", "train_seconds"), ("predictions/s", "predictions_per_second"),
        ("peak memory (MB)", "peak_memory_mb")]


def render(result: dict[str, Any]) -> str:
    model, base = result["model"], result["baseline"]
    lines = [f"train rows {model['train_rows']}, test rows {model['test_rows']} "
             f"({model['oos_rows']} out of scope), threshold {model['threshold']}", "",
             f"{'figure':<22}{'model':>12}{'TF-IDF+LR':>12}{'difference':>12}"]
    for title, key in ROWS:
        a, b = model.get(key), base.get(key)
        diff = f"{a - b:+.4f}" if isinstance(a, int | float) and isinstance(b, int | float) else ""
        lines.append(f"{title:<22}{_fmt(a):>12}{_fmt(b):>12}{diff:>12}")
    lines += ["", f"{'class':<24}{'precision':>10}{'recall':>10}{'f1':>8}{'n':>6}"]
    for name, c in sorted(model["per_class"].items()):
        lines.append(f"{name[:23]:<24}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>8.3f}{c['support']:>6}")
    lines += ["", "most confused (true -> predicted):"]
    lines += [f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in model["confused"]] or ["  none"]
    return "\n".join(lines)


def render_fields(result: dict[str, Any]) -> str:
    lines = [f"{result['documents']} documents, {result['pages']} pages", "",
             f"{'figure':<12}{'value':>10}"]
    lines += [f"{title:<12}{result[key]:>10.4f}" for title, key in
              (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))]
    lines += ["", f"{'field':<22}{'right':>7}{'wrong':>7}{'missed':>8}{'precision':>11}{'recall':>8}"]
    for name, c in result["per_field"].items():
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = f"{tp / (tp + fp):.3f}" if tp + fp else "n/a"
        recall = f"{tp / (tp + fn):.3f}" if tp + fn else "n/a"
        lines.append(f"{name:<22}{tp:>7}{fp:>7}{fn:>8}{precision:>11}{recall:>8}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
