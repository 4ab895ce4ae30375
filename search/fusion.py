"""Client-side fusion of the BM25 and kNN legs: runs the same on every Elasticsearch distribution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.types import FusionConfig, LegHit, SearchMode


@dataclass(frozen=True)
class FusedHit:
    chunk_id: str
    score: float
    bm25_rank: int | None
    dense_rank: int | None


def fuse(bm25: Sequence[LegHit], dense: Sequence[LegHit], config: FusionConfig,
         exact: Sequence[LegHit] = ()) -> list[FusedHit]:
    """Merge rank-ordered legs; ranks are 1-based and kept on every hit for explanation.

    `exact` (chunks naming identifiers the query names, scored by how many) is a third leg with
    config.identifier_weight; among chunks naming as many, the BM25 leg's order decides.
    """
    bm25_ranks = {hit.chunk_id: rank for rank, hit in enumerate(bm25, start=1)}
    dense_ranks = {hit.chunk_id: rank for rank, hit in enumerate(dense, start=1)}
    exact = sorted(exact, key=lambda h: (-h.score, bm25_ranks.get(h.chunk_id, len(bm25) + 1), h.chunk_id))
    if config.method == "rrf":
        scores = _rrf(bm25_ranks, dense_ranks, config)
        for rank, hit in enumerate(exact, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + config.identifier_weight / (config.rrf_k + rank)
    elif config.method == "linear":
        scores = _linear(bm25, dense, config)
        for chunk_id, value in _min_max(exact).items():
            scores[chunk_id] = scores.get(chunk_id, 0.0) + config.identifier_weight * value
    else:
        raise ValueError(f"unknown fusion method {config.method!r} (expected rrf or linear)")
    fused = [
        FusedHit(chunk_id, score, bm25_ranks.get(chunk_id), dense_ranks.get(chunk_id))
        for chunk_id, score in scores.items()
    ]
    fused.sort(key=lambda h: (-h.score, h.chunk_id))
    return fused


def _rrf(bm25_ranks: dict[str, int], dense_ranks: dict[str, int], config: FusionConfig) -> dict[str, float]:
    scores: dict[str, float] = {}
    for ranks, weight in ((bm25_ranks, config.bm25_weight), (dense_ranks, config.dense_weight)):
        for chunk_id, rank in ranks.items():
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (config.rrf_k + rank)
    return scores


def _min_max(hits: Sequence[LegHit]) -> dict[str, float]:
    if not hits:
        return {}
    low = min(h.score for h in hits)
    high = max(h.score for h in hits)
    span = high - low
    return {h.chunk_id: (h.score - low) / span if span else 1.0 for h in hits}


def _linear(bm25: Sequence[LegHit], dense: Sequence[LegHit], config: FusionConfig) -> dict[str, float]:
    scores: dict[str, float] = {}
    for normalised, weight in ((_min_max(bm25), config.bm25_weight), (_min_max(dense), config.dense_weight)):
        for chunk_id, value in normalised.items():
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * value
    return scores


def single_leg(hits: Sequence[LegHit], leg: str) -> list[FusedHit]:
    return [
        FusedHit(h.chunk_id, h.score, rank if leg == "bm25" else None, rank if leg == "dense" else None)
        for rank, h in enumerate(hits, start=1)
    ]


def rank(mode: SearchMode, bm25: Sequence[LegHit], dense: Sequence[LegHit], config: FusionConfig,
         exact: Sequence[LegHit] = ()) -> list[FusedHit]:
    """The final order for a search mode: fused legs for hybrid (with the identifier leg), the one leg otherwise."""
    if mode == SearchMode.HYBRID:
        return fuse(bm25, dense, config, exact)
    return single_leg(bm25, "bm25") if mode == SearchMode.BM25 else single_leg(dense, "dense")
