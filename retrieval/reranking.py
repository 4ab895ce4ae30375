"""The reranker contract: a second stage that reorders retrieved hits by how well each answers the query.

The answer pipeline's rerankers (answers/rerankers.py) implement it; retrieval evaluation (evaluation.py) scores a
ranking with or without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from search.types import SearchHit


class RerankerError(Exception):
    """A reranking provider failed; the pipeline keeps the fused order and records why."""


class Reranker(Protocol):
    name: str

    def rerank(self, query: str, hits: Sequence[SearchHit], *, top_n: int) -> list[tuple[SearchHit, float]]:
        """The best `top_n` hits for the query with their reranker scores, best first."""
        ...
