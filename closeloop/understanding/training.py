"""Training from labelled history: staff corrections are labels; a model version per distinct data set."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import OuterRef, Subquery

from closeloop.cases.models import Case, Event

from .classify import Config, TextClassifier
from .models import ModelVersion
from .vectorcache import DbVectorCache

MIN_EXAMPLES_PER_LABEL = 2


@dataclass
class TrainResult:
    version: ModelVersion | None
    skipped: str = ""


def case_text(case: Case) -> str:
    return f"{case.subject}\n{case.summary}".strip()


def labelled_examples() -> tuple[list[str], list[str]]:
    """(text, label) for every case whose latest staff classification names its type."""
    latest = Event.objects.filter(case=OuterRef("pk"), kind="classified", data__label=True).order_by("-at", "-id")
    rows = (Case.objects.annotate(label=Subquery(latest.values("data__to_type")[:1]))
            .filter(label__isnull=False).order_by("pk").values_list("subject", "summary", "label"))
    texts, labels = [], []
    for subject, summary, label in rows:
        texts.append(f"{subject}\n{summary}".strip())
        labels.append(str(label))
    return texts, labels


def data_hash(texts: list[str], labels: list[str], config: Config, embedder: str = "") -> str:
    digest = hashlib.sha256(json.dumps([config.__dict__, embedder], sort_keys=True).encode())
    for text, label in sorted(zip(texts, labels, strict=True)):
        digest.update(json.dumps([text, label]).encode())
    return digest.hexdigest()


def model_dir() -> Path:
    return Path(settings.DATA_DIR) / "models"


def default_config() -> Config:
    return Config(embeddings=bool(getattr(settings, "CLOSELOOP_EMBEDDINGS", True)))


def train(texts: list[str] | None = None, labels: list[str] | None = None, *, force: bool = False) -> TrainResult:
    """Train on the labelled history (or the given rows); skip when the data has not changed."""
    if texts is None or labels is None:
        texts, labels = labelled_examples()
    config = default_config()
    counts = {label: labels.count(label) for label in set(labels)}
    usable = {label for label, n in counts.items() if n >= MIN_EXAMPLES_PER_LABEL}
    pairs = [(t, lab) for t, lab in zip(texts, labels, strict=True) if lab in usable]
    if len(usable) < 2:
        return TrainResult(None, f"need at least two types with {MIN_EXAMPLES_PER_LABEL}+ labelled cases each")
    texts, labels = [t for t, _ in pairs], [lab for _, lab in pairs]
    embedder = _embedder_version(config)
    digest = data_hash(texts, labels, config, embedder)
    current = ModelVersion.objects.filter(is_active=True).first()
    if current and current.data_hash == digest and not force:
        return TrainResult(current, "labelled data unchanged since the active model")
    model = TextClassifier(config)
    if embedder:
        cache = DbVectorCache(embedder)
        cache.forget_other_embedders()
        model.vector_cache = cache
    model.fit(texts, labels)
    path = model_dir() / f"clf-{digest[:16]}.pkl"
    sha = model.dump(path)
    version = ModelVersion.objects.create(path=str(path), sha256=sha, data_hash=digest, examples=len(texts),
                                          labels=model.labels, config=model.describe(),
                                          metrics={"train_seconds": round(model.train_seconds, 3)})
    ModelVersion.objects.exclude(pk=version.pk).filter(is_active=True).update(is_active=False)
    return TrainResult(version)


def _embedder_version(config: Config) -> str:
    """The embedding model's version (part of the data hash: a new embedder means a new model)."""
    if not config.embeddings:
        return ""
    from .embeddings import get_embedder

    return get_embedder().version


_loaded: dict[str, TextClassifier] = {}
_lock = threading.Lock()


def active_model() -> tuple[ModelVersion, TextClassifier] | None:
    """The active model, loaded once per process and checked against its recorded sha256."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return None
    with _lock:
        if version.sha256 not in _loaded:
            _loaded.clear()
            model = TextClassifier.load(Path(version.path), version.sha256)
            if model.embedder_version:
                model.vector_cache = DbVectorCache(model.embedder_version)
            _loaded[version.sha256] = model
        return version, _loaded[version.sha256]
