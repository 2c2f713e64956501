from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from closeloop.understanding.evaluate import DatasetError, load_dataset
from closeloop.understanding.training import train


class Command(BaseCommand):
    help = "Retrain the request classifier on labelled cases (or a file); skipped when the data is unchanged."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, help="train from a labelled CSV/JSONL instead of case history")
        parser.add_argument("--text-col", default="text")
        parser.add_argument("--label-col", default="label")
        parser.add_argument("--oos-label", default="oos")
        parser.add_argument("--force", action="store_true", help="train even if the data is unchanged")

    def handle(self, *args: Any, **o: Any) -> None:
        texts = labels = None
        if o["file"]:
            try:
                data = load_dataset(o["file"], o["text_col"], o["label_col"])
            except DatasetError as exc:
                raise CommandError(str(exc)) from None
            keep = [i for i, label in enumerate(data.labels) if label != o["oos_label"]]
            texts, labels = [data.texts[i] for i in keep], [data.labels[i] for i in keep]
        result = train(texts, labels, force=o["force"])
        if result.version is None:
            raise CommandError(f"not trained: {result.skipped}")
        v = result.version
        verb = f"kept ({result.skipped})" if result.skipped else "trained"
        self.stdout.write(f"{verb}: {v.name} on {v.examples} examples, labels {', '.join(v.labels)}, sha256 {v.sha256}")
