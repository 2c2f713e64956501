from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from closeloop.understanding.boilerplate import Boilerplate
from closeloop.understanding.classify import BaselineClassifier, Config, TextClassifier
from closeloop.understanding.embeddings import Embedder, EmbeddingModelError, default_files
from closeloop.understanding.evaluate import evaluate, few_shot, load_dataset

DEV = Path(__file__).resolve().parents[3] / "data" / "dev"


@pytest.fixture(scope="module")
def dev():
    return load_dataset(DEV / "requests_train.csv"), load_dataset(DEV / "requests_test.csv")


def test_it_beats_the_tfidf_baseline_with_ten_examples_per_type(dev):
    train, test = dev
    small = few_shot(train, 10)
    ours = evaluate(TextClassifier(), small, test)
    base = evaluate(BaselineClassifier(), small, test)
    assert ours["macro_f1"] > base["macro_f1"] + 0.1
    assert ours["routing_precision"] >= 0.95
    assert ours["oos_recall"] >= 0.8


def test_it_routes_most_in_scope_requests_and_sends_out_of_scope_ones_to_people(dev):
    train, test = dev
    result = evaluate(TextClassifier(), train, test)
    assert result["routing_coverage"] >= 0.9
    assert result["routing_precision"] >= 0.99
    assert result["oos_recall"] >= 0.95
    assert result["macro_f1"] >= 0.95


def test_it_holds_up_on_a_differently_shaped_split_of_short_clean_utterances():
    train, test = load_dataset(DEV / "requests_clean_train.csv"), load_dataset(DEV / "requests_clean_test.csv")
    result = evaluate(TextClassifier(), train, test)
    assert result["routing_coverage"] >= 0.9
    assert result["routing_precision"] >= 0.99
    assert result["oos_recall"] >= 0.95


def test_boilerplate_shared_across_types_is_learned_and_stripped_but_content_is_kept():
    texts = [f"Hello team, {body}. CONFIDENTIALITY NOTICE: this message may contain PHI." for body in
             ["refill my meloxicam", "refill my tramadol please", "my bill is wrong", "charged twice on my bill",
              "send my records to Dr Lee", "copy of my chart please"]]
    labels = ["refill", "refill", "billing", "billing", "records", "records"]
    boilerplate = Boilerplate(min_count=3).fit(texts, labels)
    assert boilerplate.remove("Hello team, are you hiring? CONFIDENTIALITY NOTICE: this message may contain PHI.") \
        == "are you hiring?"
    assert boilerplate.remove("Hello team,") == "Hello team,"  # nothing else left: the text as it was
    assert Boilerplate(min_count=3).fit(["refill a", "refill b", "bill c", "bill d"],
                                        ["refill", "refill", "billing", "billing"]).known == frozenset()


def test_it_gives_three_suggestions_that_sum_to_at_most_one():
    texts = ["refill my meloxicam please", "need a refill of tramadol", "refill request for naproxen",
             "question about my bill", "why was I charged twice", "billing statement wrong"] * 2
    labels = ["refill"] * 3 + ["billing"] * 3
    model = TextClassifier(Config(embeddings=False)).fit(texts, labels * 2)
    (p,) = model.predict(["can you refill my naproxen"])
    assert p.label == "refill"
    assert [s.label for s in p.suggestions] == ["refill", "billing"]
    assert sum(s.confidence for s in p.suggestions) <= 1.0001


def test_it_refuses_to_load_a_model_file_that_changed(tmp_path):
    model = TextClassifier(Config(embeddings=False, calibrate=False))
    model.fit(["knee pain", "bill paid", "knee hurts", "bill wrong"], ["one", "two", "one", "two"])
    path = tmp_path / "m.pkl"
    sha = model.dump(path)
    assert TextClassifier.load(path, sha).labels == ["one", "two"]
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError, match="sha256"):
        TextClassifier.load(path, sha)


def test_it_refuses_an_embedding_model_whose_hash_is_not_the_pinned_one():
    files = replace(default_files(), model_sha256="0" * 64)
    with pytest.raises(EmbeddingModelError, match="pinned sha256"):
        Embedder(files)


def test_embeddings_are_unit_vectors_that_put_paraphrases_close():
    embedder = Embedder(default_files())
    a, b, c = embedder.encode(["Please refill my prescription", "I need more of my medication", "Parking validation"])
    assert abs(float((a * a).sum()) - 1) < 1e-4
    assert float(a @ b) > float(a @ c) + 0.2
