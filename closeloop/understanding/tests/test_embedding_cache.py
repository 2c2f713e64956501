from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from closeloop.understanding.embeddings import (
    Embedder,
    EmbeddingModelError,
    default_files,
    derive_fast_model,
    embed,
    get_embedder,
    text_key,
)
from closeloop.understanding.models import EmbeddingVector, ModelVersion
from closeloop.understanding.training import train
from closeloop.understanding.vectorcache import DbVectorCache

TEXTS = ["Please refill my meloxicam", "Send my records to Dr Lee", "Why was I billed twice?"]


def test_the_fast_model_gives_nearly_the_published_vectors(settings):
    settings.CLOSELOOP_EMBEDDING_FAST = False
    published = Embedder(default_files()).encode(TEXTS)
    settings.CLOSELOOP_EMBEDDING_FAST = True
    fast_files = default_files()
    assert fast_files.model.name.startswith("minilm-dyn-")
    fast = Embedder(fast_files).encode(TEXTS)
    assert (published * fast).sum(axis=1).min() > 0.97


def test_it_refuses_a_derived_model_that_changed(tmp_path, settings):
    settings.CLOSELOOP_EMBEDDING_FAST = False
    files = derive_fast_model(default_files(), tmp_path)
    files.model.write_bytes(files.model.read_bytes() + b"tampered")
    with pytest.raises(EmbeddingModelError, match="pinned sha256"):
        Embedder(derive_fast_model(replace(default_files()), tmp_path))


@pytest.mark.django_db
def test_each_distinct_text_is_embedded_once_and_then_read_from_the_cache():
    version = get_embedder().version
    cache = DbVectorCache(version)
    first = embed([TEXTS[0], f"  {TEXTS[0]}\n", TEXTS[1]], cache=cache)
    assert EmbeddingVector.objects.count() == 2  # whitespace-only differences share one vector
    assert np.allclose(first[0], first[1])
    # A vector planted under a text's key is what comes back: the model is not run again.
    planted = np.zeros(384, dtype=np.float32)
    planted[0] = 1.0
    EmbeddingVector.objects.filter(key=text_key(version, TEXTS[1])).update(vector=planted.astype("<f2").tobytes())
    again = embed([TEXTS[1], TEXTS[2]], cache=cache)
    assert np.array_equal(again[0], planted)
    assert EmbeddingVector.objects.count() == 3


@pytest.mark.django_db
def test_retraining_reuses_vectors_and_a_new_embedder_means_a_new_model(settings):
    settings.CLOSELOOP_EMBEDDINGS = True
    texts = ["refill my meloxicam", "refill tramadol please", "my bill is wrong", "charged twice on my bill"]
    labels = ["refill", "refill", "billing", "billing"]
    first = train(texts, labels).version
    assert first is not None
    assert EmbeddingVector.objects.count() == 4
    assert train(texts, labels).skipped  # unchanged data, same embedder: nothing to do
    settings.CLOSELOOP_EMBEDDING_FAST = False
    import closeloop.understanding.embeddings as embeddings

    embeddings._cached = None
    try:
        second = train(texts, labels).version
    finally:
        embeddings._cached = None
    assert second is not None and second.pk != first.pk
    embedder = ModelVersion.objects.get(pk=second.pk).config["embedder"]
    assert EmbeddingVector.objects.exclude(embedder=embedder).count() == 0
