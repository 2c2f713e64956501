"""The request classifier: TF-IDF words + characters + sentence embeddings into logistic regression.

Features: word 1-2 grams and char_wb 2-5 grams (TF-IDF, sublinear, each block L2-normalised)
concatenated with the MiniLM sentence vector times `embedding_weight`. Logistic regression on
top. Confidence is calibrated by temperature scaling fitted on out-of-fold scores (argmax
unchanged, probabilities honest). Out-of-scope is not a class: a request whose calibrated
confidence falls below the threshold, or that lies far from every training example in
embedding space, goes to a person. The sentence vector and the nearest-neighbour test see the
text without the boilerplate learned from the training set (greetings, footers, disclaimers:
see boilerplate.py), so a footer shared with known requests cannot make a stranger look familiar.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .boilerplate import Boilerplate


@dataclass(frozen=True)
class Config:
    embeddings: bool = True
    embedding_weight: float = 1.5
    C: float = 20.0
    char_min_df: int = 1
    calibrate: bool = True
    folds: int = 5
    novelty: bool = True
    strip_boilerplate: bool = True


@dataclass
class Suggestion:
    label: str
    confidence: float


@dataclass
class Prediction:
    label: str
    confidence: float
    suggestions: list[Suggestion] = field(default_factory=list)
    novelty: float = 0.0

    def routed(self, threshold: float) -> bool:
        return self.confidence >= threshold


def _embed(texts: Sequence[str], cache: Any = None, training: bool = False) -> np.ndarray:
    from .embeddings import embed, training_threads

    return embed(texts, threads=training_threads() if training else None, cache=cache)


def _scores(model: LogisticRegression, features: sparse.csr_matrix) -> np.ndarray:
    scores = model.decision_function(features)
    if scores.ndim == 1:  # binary problems give one column: the softmax of (-s/2, s/2) is the sigmoid of s
        scores = np.column_stack([-scores, scores]) / 2
    return np.asarray(scores)


NOVELTY_NEIGHBOURS = 3
NOVELTY_SHARPNESS = 2.0


def _top_k_mean(queries: np.ndarray, base: np.ndarray, skip_self: int | None = None) -> np.ndarray:
    """Mean cosine similarity of each query to its nearest training examples (vectors are unit length)."""
    sims = queries @ base.T
    if skip_self is not None:  # leave-one-out: a training example is not its own neighbour
        rows = np.arange(len(queries))
        sims[rows, rows + skip_self] = -1.0
    k = min(NOVELTY_NEIGHBOURS, sims.shape[1])
    return np.asarray(np.sort(sims, axis=1)[:, -k:].mean(axis=1))


class TextClassifier:
    """Fit on (text, label) pairs; predict calibrated label distributions."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.labels: list[str] = []
        self.temperature = 1.0
        self.embedder_version = ""
        self.train_seconds = 0.0
        self._train_emb: np.ndarray | None = None
        self._novelty_scale = 0.0
        self.vector_cache: Any = None  # where already-embedded texts are kept; never pickled

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["vector_cache"] = None
        return state

    # ---------------------------------------------------------------- features

    def _vectorizers(self) -> tuple[TfidfVectorizer, TfidfVectorizer]:
        words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, strip_accents="unicode")
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True,
                                min_df=self.config.char_min_df, dtype=np.float32)
        return words, chars

    def _features(self, texts: Sequence[str], vecs: tuple[TfidfVectorizer, TfidfVectorizer],
                  emb: np.ndarray | None, fit: bool = False) -> sparse.csr_matrix:
        blocks = [v.fit_transform(texts) if fit else v.transform(texts) for v in vecs]
        if emb is not None:
            blocks.append(sparse.csr_matrix(emb * self.config.embedding_weight))
        return sparse.hstack(blocks, format="csr")

    def _model(self) -> LogisticRegression:
        return LogisticRegression(C=self.config.C, max_iter=300, tol=1e-3)

    def _for_embedding(self, texts: list[str]) -> list[str]:
        """What the sentence vector sees: the text without the boilerplate learned at training."""
        boilerplate = getattr(self, "_boilerplate", None)
        return [boilerplate.remove(t) for t in texts] if boilerplate is not None else texts

    # ---------------------------------------------------------------- training

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TextClassifier:
        if len(set(labels)) < 2:
            raise ValueError("training needs at least two labels")
        started = time.perf_counter()
        texts = [t or "" for t in texts]
        y = np.asarray(labels)
        self._boilerplate = Boilerplate().fit(texts, labels) if self.config.strip_boilerplate else None
        emb = (_embed(self._for_embedding(texts), self.vector_cache, training=True)
               if self.config.embeddings else None)
        if emb is not None:
            from .embeddings import get_embedder

            self.embedder_version = get_embedder().version
        if self.config.calibrate:
            self.temperature = self._fit_temperature(texts, y, emb)
        self._vecs = self._vectorizers()
        self._lr = self._model().fit(self._features(texts, self._vecs, emb, fit=True), y)
        self.labels = [str(c) for c in self._lr.classes_]
        if emb is not None and self.config.novelty:
            self._fit_novelty(emb, y)
        self.train_seconds = time.perf_counter() - started
        return self

    def _fit_temperature(self, texts: list[str], y: np.ndarray, emb: np.ndarray | None) -> float:
        """Temperature that minimises the log-loss of out-of-fold scores."""
        _, counts = np.unique(y, return_counts=True)
        # Three folds are plenty once there are thousands of examples, and save two fits.
        folds = min(self.config.folds if len(y) <= 2000 else 3, int(counts.min()))
        if folds < 2:
            return 1.0
        logits, truth = [], []
        for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, y):
            vecs = self._vectorizers()
            tr = [texts[i] for i in train_idx]
            te = [texts[i] for i in test_idx]
            model = self._model().fit(self._features(tr, vecs, emb[train_idx] if emb is not None else None, True),
                                      y[train_idx])
            scores = _scores(model, self._features(te, vecs, emb[test_idx] if emb is not None else None))
            index = {c: i for i, c in enumerate(model.classes_)}
            keep = np.array([label in index for label in y[test_idx]])
            logits.append(scores[keep])
            truth.append(np.array([index[label] for label in y[test_idx][keep]]))
        z, t = np.vstack(logits), np.concatenate(truth)

        def nll(log_temp: float) -> float:
            s = z / np.exp(log_temp)
            s = s - s.max(axis=1, keepdims=True)
            return float(-(s[np.arange(len(t)), t] - np.log(np.exp(s).sum(axis=1))).mean())

        return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))

    def _fit_novelty(self, emb: np.ndarray, y: np.ndarray) -> None:
        """Keep the training vectors and how close a training example typically is to its neighbours."""
        self._train_emb = emb.astype(np.float16)
        own = np.concatenate([_top_k_mean(emb[i:i + 1000], emb, skip_self=i) for i in range(0, len(emb), 1000)])
        # Familiarity below a low percentile of the training examples' own counts as unfamiliar.
        # Few examples cover little of the space a type's requests span, so small sets use a
        # stricter cut (10th percentile at 50 examples, easing to the 1st from 500 on).
        percentile = float(np.clip(500 / len(emb), 1, 10))
        self._novelty_scale = float(np.percentile(own, percentile))

    # ---------------------------------------------------------------- prediction

    def predict_proba(self, texts: Sequence[str], remember: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """`remember=False`: the texts' vectors are not kept in the vector cache (text that is not a case)."""
        texts = [t or "" for t in texts]
        cache = getattr(self, "vector_cache", None) if remember else None
        emb = (_embed(self._for_embedding(texts), cache)
               if self.config.embeddings else None)
        scores = _scores(self._lr, self._features(texts, self._vecs, emb))
        s = scores / self.temperature
        s = s - s.max(axis=1, keepdims=True)
        probs = np.exp(s)
        return probs / probs.sum(axis=1, keepdims=True), emb

    def predict(self, texts: Sequence[str], remember: bool = True) -> list[Prediction]:
        probs, emb = self.predict_proba(texts, remember)
        novelty = self._novelty(emb, probs)
        out = []
        for row, raw_novelty in zip(probs, novelty, strict=True):
            nov = float(raw_novelty)  # numpy scalars do not serialise to JSON
            top = np.argsort(-row)[:3]
            confidence = float(row[top[0]]) * (1.0 - nov)
            out.append(Prediction(self.labels[top[0]], confidence,
                                  [Suggestion(self.labels[i], round(float(row[i]), 4)) for i in top], nov))
        return out

    def _novelty(self, emb: np.ndarray | None, probs: np.ndarray) -> np.ndarray:
        """0 for text like the training data; towards 1 for text unlike anything seen (out of scope)."""
        if emb is None or self._train_emb is None:
            return np.zeros(len(probs))
        familiarity = _top_k_mean(emb, self._train_emb.astype(np.float32))
        gap = np.clip((self._novelty_scale - familiarity) / max(self._novelty_scale, 1e-6), 0.0, 1.0)
        return np.asarray(np.clip(gap * NOVELTY_SHARPNESS, 0.0, 1.0))

    # ---------------------------------------------------------------- storage

    def describe(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "labels": self.labels, "temperature": self.temperature,
                "embedder": self.embedder_version}

    def dump(self, path: Path) -> str:
        data = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def load(path: Path, sha256: str) -> TextClassifier:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"{path} does not match its recorded sha256; refusing to load it")
        model = pickle.loads(data)  # noqa: S301 - our own file, checked against the recorded sha256
        if not isinstance(model, TextClassifier):
            raise ValueError(f"{path} does not hold a classifier")
        return model


class BaselineClassifier(TextClassifier):
    """The yardstick: word TF-IDF into logistic regression, probabilities as they come."""

    def __init__(self) -> None:
        super().__init__(Config(embeddings=False, calibrate=False, novelty=False, C=1.0))

    def _vectorizers(self) -> tuple[TfidfVectorizer, ...]:  # type: ignore[override]
        return (TfidfVectorizer(ngram_range=(1, 2)),)

    def _model(self) -> LogisticRegression:
        return LogisticRegression(C=1.0, max_iter=1000)
