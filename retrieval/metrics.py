"""Prometheus metrics for every stage of indexing and retrieval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from core import tracing

STAGE_SECONDS = Histogram(
    "citewise_stage_seconds", "Time spent in one pipeline stage", ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CHUNKS_EMBEDDED = Counter("citewise_chunks_embedded_total", "Chunks sent to the embedding model", ["model"])
EMBEDDING_CACHE_HITS = Counter("citewise_embedding_cache_hits_total", "Chunks whose vector came from the cache", ["model"])
UNITS_EMBEDDED = Counter("citewise_units_embedded_total", "Answer units sent to the embedding model", ["model"])
UNIT_CACHE_HITS = Counter("citewise_unit_cache_hits_total", "Answer units whose vector came from the cache", ["model"])
CHUNKS_INDEXED = Counter("citewise_chunks_indexed_total", "Chunks written to a search index", ["backend"])
SEARCHES = Counter("citewise_searches_total", "Searches run", ["backend", "mode"])


@contextmanager
def timed(stage: str, into: dict[str, float] | None = None) -> Iterator[None]:
    """Observe the stage's duration; also add it to `into` (per-call timings) when given."""
    started = time.perf_counter()
    try:
        with tracing.span(f"citewise.{stage}"):
            yield
    finally:
        elapsed = time.perf_counter() - started
        STAGE_SECONDS.labels(stage).observe(elapsed)
        if into is not None:
            into[stage] = into.get(stage, 0.0) + elapsed
