"""Benchmark understanding: requests classified+extracted per second on one core (with and without
embeddings), OCR pages per minute, training time on N labelled examples, peak memory; the TF-IDF +
logistic-regression baseline in the same run. `--json` for JSON. Training time is given cold (no
vector cached) and warm (every vector cached, as when retraining on unchanged rows); training
embeds on every core (CLOSELOOP_TRAIN_THREADS), everything else runs on one.

    .venv/bin/python bench/understanding.py [--train-rows 10000] [--requests 300] [--ocr-pages 4] [--json]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_THREAD_LIMIT"):
    os.environ[var] = "1"  # one core, as the figures claim
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings_test")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from closeloop.understanding.classify import BaselineClassifier, Config, TextClassifier  # noqa: E402
from closeloop.understanding.embeddings import training_threads  # noqa: E402
from closeloop.understanding.evaluate import evaluate, few_shot, load_dataset  # noqa: E402
from closeloop.understanding.fields import extract_page  # noqa: E402
from closeloop.understanding.text import Page, extract_pages  # noqa: E402

DEV = ROOT / "data" / "dev"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate_requests", DEV / "generate_requests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic(rows: int, seed: int = 1) -> tuple[list[str], list[str]]:
    gen = _generator()
    r = random.Random(seed)
    labels = [label for label in gen.T if label != "oos"]
    out = [gen.make_row(r, label, gen.T[label]) for label in labels for _ in range(rows // len(labels))]
    return [row["text"] for row in out], [row["label"] for row in out]


class MemoryCache:
    """The vector cache in memory (the product keeps it in the database): for the warm figure."""

    def __init__(self) -> None:
        self.vectors: dict[str, object] = {}

    def get_many(self, keys: list[str]) -> dict[str, object]:
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def put_many(self, vectors: dict[str, object]) -> None:
        self.vectors.update(vectors)


def train_seconds(make, texts: list[str], labels: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(cold, warm): from nothing, then again with every vector already cached (retraining unchanged rows)."""
    cache = MemoryCache()
    cold = make()
    cold.vector_cache = cache
    cold.fit(texts, labels)
    warm = make()
    warm.vector_cache = cache
    warm.fit(texts, labels)
    return cold.train_seconds, warm.train_seconds


def throughput(model: TextClassifier, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:  # one request at a time, as the worker sees them
        model.predict([text])
        extract_page(Page(1, text, "email"))
    return len(texts) / (time.perf_counter() - started)


def ocr_rate(pages: int) -> float:
    scans = sorted(DEV.glob("documents/doc-*.png"))[:pages]
    started = time.perf_counter()
    done = sum(len(extract_pages(p.read_bytes(), filename=p.name)) for p in scans)
    return done / (time.perf_counter() - started) * 60


def run(args: argparse.Namespace) -> dict[str, object]:
    train, test = load_dataset(DEV / "requests_train.csv"), load_dataset(DEV / "requests_test.csv")
    texts = (test.texts * (args.requests // len(test.texts) + 1))[:args.requests]
    figures: dict[str, object] = {}
    for name, make in (("model", lambda: TextClassifier()),
                       ("model_no_embeddings", lambda: TextClassifier(Config(embeddings=False))),
                       ("baseline", BaselineClassifier)):
        quality = evaluate(make(), train, test)
        few = evaluate(make(), few_shot(train, 10), test)
        model = make().fit(*_in_scope(train))
        cold, warm = train_seconds(make, *synthetic(args.train_rows))
        clean = evaluate(make(), load_dataset(DEV / "requests_clean_train.csv"),
                         load_dataset(DEV / "requests_clean_test.csv"))
        figures[name] = {
            "macro_f1": quality["macro_f1"], "macro_f1_10_per_type": few["macro_f1"],
            "routing_coverage": quality["routing_coverage"], "routing_precision": quality["routing_precision"],
            "oos_recall": quality["oos_recall"],
            "requests_per_second_one_core": round(throughput(model, texts), 1),
            f"train_seconds_{args.train_rows}_cold": round(cold, 2),
            f"train_seconds_{args.train_rows}_warm": round(warm, 2),
            "clean_split_macro_f1": clean["macro_f1"], "clean_split_routing_coverage": clean["routing_coverage"],
            "clean_split_routing_precision": clean["routing_precision"], "clean_split_oos_recall": clean["oos_recall"],
        }
    figures["ocr_pages_per_minute"] = round(ocr_rate(args.ocr_pages), 1)
    figures["embedding_threads_for_training"] = training_threads()
    figures["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _in_scope(data):  # type: ignore[no-untyped-def]
    keep = [i for i, label in enumerate(data.labels) if label != "oos"]
    return [data.texts[i] for i in keep], [data.labels[i] for i in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--ocr-pages", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    rows = sorted({k for v in figures.values() if isinstance(v, dict) for k in v})
    cols = ["model", "model_no_embeddings", "baseline"]
    print(f"{'figure':<32}" + "".join(f"{c:>22}" for c in cols) + f"{'model/baseline':>16}")
    for row in rows:
        vals = [figures[c].get(row) for c in cols]  # type: ignore[union-attr]
        ratio = f"{vals[0] / vals[2]:.2f}x" if isinstance(vals[0], float) and vals[2] else ""
        print(f"{row:<32}" + "".join(f"{v!s:>22}" for v in vals) + f"{ratio:>16}")
    print(f"{'OCR pages per minute':<32}{figures['ocr_pages_per_minute']!s:>22}")
    print(f"{'peak memory (MB, RSS)':<32}{figures['peak_memory_mb']!s:>22}")
    print(f"{'embedding threads (training)':<32}{figures['embedding_threads_for_training']!s:>22}")


if __name__ == "__main__":
    main()
