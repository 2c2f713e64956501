"""The persisted embedding cache: vectors in the database, keyed by embedder version and text."""

from __future__ import annotations

import numpy as np

from .embeddings import DIMENSIONS
from .models import EmbeddingVector

CHUNK = 500


class DbVectorCache:
    """`VectorCache` over the EmbeddingVector table (float16: 768 bytes a text)."""

    def __init__(self, embedder: str) -> None:
        self.embedder = embedder

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), CHUNK):
            rows = EmbeddingVector.objects.filter(key__in=keys[start:start + CHUNK]).values_list("key", "vector")
            for key, blob in rows:
                vector = np.frombuffer(bytes(blob), dtype="<f2")
                if vector.shape == (DIMENSIONS,):
                    out[key] = vector.astype(np.float32)
        return out

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [EmbeddingVector(key=key, embedder=self.embedder, vector=np.asarray(v, dtype="<f2").tobytes())
                for key, v in vectors.items()]
        EmbeddingVector.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)

    def forget_other_embedders(self) -> int:
        """Vectors from another embedding model can never be used again."""
        deleted, _ = EmbeddingVector.objects.exclude(embedder=self.embedder).delete()
        return deleted
