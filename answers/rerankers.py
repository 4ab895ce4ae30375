"""Rerank fused candidates: a local sentence-transformers CrossEncoder, Cohere Rerank, or none."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from answers.types import ComposerError
from core.config import current
from core.outbound import MeteredClient
from retrieval.reranking import Reranker, RerankerError
from search.types import SearchHit

logger = logging.getLogger("citewise.answering.rerank")


def passage_text(hit: SearchHit) -> str:
    context = " > ".join(p for p in (hit.title, *hit.heading_path) if p)
    return f"{context}\n{hit.text}" if context else hit.text


class NoReranker:
    name = "none"

    def rerank(self, query: str, hits: Sequence[SearchHit], *, top_n: int) -> list[tuple[SearchHit, float]]:
        return [(hit, hit.score) for hit in hits[:top_n]]


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder scoring (query, passage) pairs; loaded once per process."""

    name = "cross-encoder"
    _models: ClassVar[dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, model_name: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        self.model_name = model_name
        self.batch_size = batch_size
        with self._lock:
            if model_name not in self._models:
                logger.info("loading cross-encoder %s", model_name)
                self._models[model_name] = CrossEncoder(model_name, device=device)
            self._model = self._models[model_name]

    def rerank(self, query: str, hits: Sequence[SearchHit], *, top_n: int) -> list[tuple[SearchHit, float]]:
        if not hits:
            return []
        scores = self._model.predict([(query, passage_text(h)) for h in hits], batch_size=self.batch_size,
                                     show_progress_bar=False)
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))
        return [(hits[i], float(scores[i])) for i in order[:top_n]]


class CohereReranker:
    """Cohere Rerank through the cohere SDK (v2 API)."""

    name = "cohere"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout_s: float, max_retries: int) -> None:
        import cohere

        self.model = model
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self._client = cohere.ClientV2(api_key=api_key, base_url=base_url, timeout=timeout_s,
                                       httpx_client=MeteredClient("rerank.cohere", timeout=timeout_s))

    def rerank(self, query: str, hits: Sequence[SearchHit], *, top_n: int) -> list[tuple[SearchHit, float]]:
        if not hits:
            return []
        from answers.llm.cohere import describe_cohere_failure
        from answers.llm.retries import call_with_retry

        try:
            response = call_with_retry(
                lambda: self._client.rerank(
                    model=self.model, query=query, documents=[passage_text(h) for h in hits],
                    top_n=min(top_n, len(hits)), request_options={"timeout": self.timeout_s, "max_retries": 0},
                ),
                describe=lambda exc: describe_cohere_failure(exc, self.timeout_s), what="Cohere rerank",
                max_retries=self.max_retries,
            )
            return [(hits[r.index], float(r.relevance_score)) for r in response.results]
        except (ComposerError, AttributeError, IndexError, TypeError) as exc:
            raise RerankerError(str(exc)) from exc


def get_reranker(name: str | None = None) -> Reranker:
    config = current()
    name = name or config.reranker
    if name == "none":
        return NoReranker()
    if name == "cross-encoder":
        return CrossEncoderReranker(config.rerank_model, device=config.embedding_device)
    if name == "cohere":
        return CohereReranker(api_key=config.cohere_api_key, base_url=config.cohere_base_url,
                              model=config.cohere_rerank_model, timeout_s=config.llm_timeout_s,
                              max_retries=config.llm_max_retries)
    raise ValueError(f"unknown reranker {name!r} (expected none, cross-encoder or cohere)")
