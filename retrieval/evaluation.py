"""Retrieval quality on BEIR-format data (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import ir_measures
from ir_measures import MRR, R, nDCG
from tqdm import tqdm

from retrieval import selectors
from retrieval.reranking import Reranker
from search.backends import SearchBackend
from search.types import FusionConfig, SearchHit, SearchMode

MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": MRR @ 10}


@dataclass(frozen=True)
class EvaluationResult:
    dataset: str
    backend: str
    mode: str
    queries: int
    metrics: dict[str, float]
    seconds: float
    reranker: str = "none"

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "backend": self.backend, "mode": self.mode, "reranker": self.reranker,
                "queries": self.queries, **self.metrics, "seconds": round(self.seconds, 2)}


def load_qrels(dataset: Path, split: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with (dataset / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader)
        if header[0].isdigit():  # some exports have no header row
            qrels.setdefault(header[0], {})[header[1]] = int(header[2])
        for query_id, doc_id, score in reader:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


def load_queries(dataset: Path, query_ids: set[str]) -> dict[str, str]:
    queries = {}
    with (dataset / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if str(record["_id"]) in query_ids:
                queries[str(record["_id"])] = record["text"]
    return queries


def evaluate(
    dataset: Path,
    *,
    backend: SearchBackend,
    mode: SearchMode,
    external_ids: dict[str, str],
    split: str = "test",
    fusion: FusionConfig,
    depth: int = 100,
    progress: bool = False,
    reranker: Reranker | None = None,
    rerank_candidates: int = 50,
) -> EvaluationResult:
    """Run each judged query as an anonymous public reader and score the document ranking.

    Hits are chunks; a document ranks where its best chunk ranks. `external_ids` maps our
    document ids back to the dataset's ids. With a `reranker`, the top `rerank_candidates` chunks
    of each query are reordered by it before documents are ranked; the rest keep the fused order.
    """
    qrels = load_qrels(dataset, split)
    queries = load_queries(dataset, set(qrels))
    started = time.perf_counter()
    run: dict[str, dict[str, float]] = {}
    for query_id, text in tqdm(sorted(queries.items()), desc=f"evaluate {mode.value}", disable=not progress):
        hits = selectors.search(text, principals=frozenset(), mode=mode, limit=depth * 3, backend=backend,
                                fusion=fusion)
        if reranker is not None:
            hits = rerank_head(reranker, text, hits, rerank_candidates)
        ranking: dict[str, float] = {}
        for hit in hits:
            doc_id = external_ids.get(hit.document_id)
            if doc_id is not None and doc_id not in ranking:
                ranking[doc_id] = float(depth * 3 - len(ranking))
            if len(ranking) == depth:
                break
        run[query_id] = ranking
    seconds = time.perf_counter() - started
    judged = {q: docs for q, docs in qrels.items() if q in queries}
    aggregate = ir_measures.calc_aggregate(list(MEASURES.values()), judged, run)
    metrics = {name: round(float(aggregate[measure]), 4) for name, measure in MEASURES.items()}
    return EvaluationResult(dataset.name, backend.name, mode.value, len(queries), metrics, seconds,
                            reranker=reranker.name if reranker is not None else "none")


def rerank_head(reranker: Reranker, query: str, hits: list[SearchHit], candidates: int) -> list[SearchHit]:
    """The first `candidates` hits in the reranker's order, then the others in their fused order."""
    head, tail = hits[:candidates], hits[candidates:]
    return [hit for hit, _ in reranker.rerank(query, head, top_n=len(head))] + tail
