"""Actions on the search index: chunk, embed (cached), write and delete documents, change their ACLs, swap in a
rebuilt index. Each change is announced with the index_changed signal (retrieval/signals.py). Reviewers' ranking
rules are added and undone here too."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from core.config import CitewiseSettings, current
from core.errors import InvalidInput
from retrieval.chunking import ChunkingConfig, SectionLike, TooManyChunks, chunk_sections
from retrieval.embeddings import Embedder, get_embedder
from retrieval.metrics import (
    CHUNKS_EMBEDDED,
    CHUNKS_INDEXED,
    EMBEDDING_CACHE_HITS,
    UNIT_CACHE_HITS,
    UNITS_EMBEDDED,
    timed,
)
from retrieval.models import EmbeddingCacheEntry, RankingRule
from retrieval.ranking import question_hash
from retrieval.signals import index_changed
from retrieval.units import embedding_texts
from search.analysis import analyzed_text, identifiers
from search.backends import SearchBackend, create_backend
from search.backends.base import DocumentChunks
from search.types import Chunk, DocumentAcl, FusionConfig, IndexedDocument
from search.unit_vectors import encode_unit_vectors

logger = logging.getLogger("citewise.search")

_backends: dict[tuple[str, str], SearchBackend] = {}
_backends_lock = threading.Lock()


def get_backend(index_name: str | None = None, kind: str | None = None) -> SearchBackend:
    """The configured backend for an index (default: the main index), shared within the process."""
    config = current()
    key = (kind or config.search_backend, index_name or config.index_name)
    with _backends_lock:
        if key not in _backends:
            _backends[key] = create_backend(*key)
        return _backends[key]


def discard_backend(index_name: str, kind: str) -> None:
    """Drop a throwaway index (an evaluation run's) and forget its backend; nothing if it was never opened."""
    with _backends_lock:
        backend = _backends.pop((kind, index_name), None)
    if backend is not None:
        backend.drop()


def fusion_config(**overrides: Any) -> FusionConfig:
    """The settings' fusion, with any of FusionConfig's fields given here (and not None) in their place."""
    config = current()
    configured = FusionConfig(
        method=config.fusion, rrf_k=config.rrf_k, bm25_weight=config.bm25_weight, dense_weight=config.dense_weight,
        candidates_per_leg=config.candidates_per_leg, knn_num_candidates=config.knn_num_candidates,
    )
    return dataclasses.replace(configured, **{k: v for k, v in overrides.items() if v is not None})


# Bump when parsing or chunking changes what the same bytes turn into, so everything re-indexes.
# 4: structured text (pipe tables, fenced code, list lines), hidden characters removed; identifiers, effective
# dates and supersedes read at index time; answer-unit vectors stored with each chunk (an index from v3 serves
# without them: answering embeds them until the next sync re-indexes).
# 5: "Supersedes: <title>." ends with its sentence (a following sentence on the line was read as part of the title).
# 6: in plain text, a term over its indented explanation is a heading, not the start of the explanation's sentence.
PIPELINE_VERSION = 6


def pipeline_signature(config: CitewiseSettings | None = None) -> str:
    config = config or current()
    return f"{config.embedding_model}|chunk={config.chunk_max_tokens}/{config.chunk_overlap_tokens}|v{PIPELINE_VERSION}"


def chunking_config(config: CitewiseSettings | None = None) -> ChunkingConfig:
    config = config or current()
    return ChunkingConfig(config.chunk_max_tokens, config.chunk_overlap_tokens)


@dataclass(frozen=True)
class DocumentToIndex:
    document: IndexedDocument
    sections: Sequence[SectionLike]


@dataclass
class IndexingStats:
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    embedding_cache_hits: int = 0
    # Answer units (retrieval/units.py), embedded so that answering need not: sent to the model, and from cache.
    units_embedded: int = 0
    unit_cache_hits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    chunks_per_document: dict[str, int] = field(default_factory=dict)
    # Documents left out, each with its "code: message"; the index keeps whatever it held for them.
    rejected: dict[str, str] = field(default_factory=dict)


def embed_cached(embedder: Embedder, texts: Sequence[str], hashes: Sequence[str], *,
                 units: bool = False) -> tuple[np.ndarray, int, int]:
    """Vectors for texts, embedding only those whose (model, content hash) is not cached yet.

    Returns (vectors, embedded count, cache hit count); `units` counts them as answer units, not chunks.
    """
    vectors = np.zeros((len(texts), embedder.dimensions), dtype=np.float32)
    cached: dict[str, bytes] = {}
    unique_hashes = list(dict.fromkeys(hashes))
    for start in range(0, len(unique_hashes), 500):
        cached.update(EmbeddingCacheEntry.objects.filter(
            model_name=embedder.model_name, content_hash__in=unique_hashes[start:start + 500],
        ).values_list("content_hash", "vector"))
    missing: dict[str, str] = {}
    for i, digest in enumerate(hashes):
        if digest in cached:
            vectors[i] = np.frombuffer(bytes(cached[digest]), dtype="<f4")
        else:
            missing.setdefault(digest, texts[i])
    if missing:
        fresh = embedder.embed_documents(list(missing.values()))
        by_hash = dict(zip(missing, fresh, strict=True))
        EmbeddingCacheEntry.objects.bulk_create(
            [EmbeddingCacheEntry(model_name=embedder.model_name, content_hash=digest, dimensions=embedder.dimensions,
                                 vector=np.asarray(vector, dtype="<f4").tobytes()) for digest, vector in by_hash.items()],
            ignore_conflicts=True, batch_size=500,
        )
        for i, digest in enumerate(hashes):
            if digest in by_hash:
                vectors[i] = by_hash[digest]
    hits = sum(1 for digest in hashes if digest in cached)
    (UNITS_EMBEDDED if units else CHUNKS_EMBEDDED).labels(embedder.model_name).inc(len(missing))
    (UNIT_CACHE_HITS if units else EMBEDDING_CACHE_HITS).labels(embedder.model_name).inc(hits)
    return vectors, len(missing), hits


def index_documents(
    items: Sequence[DocumentToIndex], *, backend: SearchBackend | None = None,
    max_chunks_per_document: int | None = None, config: CitewiseSettings | None = None,
) -> IndexingStats:
    """Chunk, embed and write documents, replacing whatever the index held for each of them.

    A document that makes more than `max_chunks_per_document` chunks is left out (stats.rejected) before
    anything is embedded.
    """
    backend = backend or get_backend()
    stats = IndexingStats(documents=len(items))
    if not items:
        return stats
    embedder = get_embedder()
    backend.ensure_index(embedder.model_name, embedder.dimensions)
    chunking = chunking_config(config)
    per_document: list[list[Chunk]] = []
    kept: list[DocumentToIndex] = []
    with timed("chunk", stats.seconds):
        for item in items:
            doc = item.document
            try:
                chunks = chunk_sections(doc.document_id, doc.title, item.sections, embedder.count_tokens, chunking,
                                        max_chunks=max_chunks_per_document)
            except TooManyChunks as exc:
                stats.rejected[doc.document_id] = (
                    f"too_many_chunks: the file makes more than {exc.limit:,} chunks; the limit is {exc.limit:,} "
                    f"(CITEWISE_MAX_CHUNKS_PER_DOCUMENT)")
                continue
            kept.append(item)
            per_document.append(chunks)
    items = kept
    stats.documents = len(items)
    if not items:
        return stats
    inputs = [c.embedding_input(item.document.title) for item, chunks in zip(items, per_document, strict=True) for c in chunks]
    hashes = [c.content_hash for chunks in per_document for c in chunks]
    with timed("embed", stats.seconds):
        vectors, stats.embedded, stats.embedding_cache_hits = embed_cached(embedder, inputs, hashes)
    with timed("embed_units", stats.seconds):
        unit_vectors = _embed_units(embedder, items, per_document, stats)
    with timed("analyze", stats.seconds):
        terms = [analyzed_text(text) for text in inputs]
        named = [identifiers(text) for text in inputs]
    batch, offset = [], 0
    for item, chunks in zip(items, per_document, strict=True):
        batch.append(DocumentChunks(item.document, chunks, vectors[offset:offset + len(chunks)],
                                    terms[offset:offset + len(chunks)],
                                    identifiers=named[offset:offset + len(chunks)],
                                    unit_vectors=unit_vectors[offset:offset + len(chunks)]))
        offset += len(chunks)
    with timed("index", stats.seconds):
        backend.replace_documents(batch, embedding_model=embedder.model_name)
    stats.chunks = offset
    stats.chunks_per_document = {item.document.document_id: len(c) for item, c in zip(items, per_document, strict=True)}
    CHUNKS_INDEXED.labels(backend.name).inc(offset)
    _announce(backend, [item.document.document_id for item in items], [item.document.source_id for item in items])
    return stats


def _embed_units(embedder: Embedder, items: Sequence[DocumentToIndex], per_document: Sequence[Sequence[Chunk]],
                 stats: IndexingStats) -> list[bytes]:
    """Each chunk's answer-unit vectors, encoded for the index, so answering embeds only the question.

    One batch for every chunk of the call, through the embedding cache (keyed by sha256 of the exact string, as
    chunks are): a sentence that overlapping chunks share is embedded once.
    """
    texts = [embedding_texts(item.document.title, chunk.heading_path, chunk.text)
             for item, chunks in zip(items, per_document, strict=True) for chunk in chunks]
    flat = [text for chunk_texts in texts for text in chunk_texts]
    vectors, stats.units_embedded, stats.unit_cache_hits = embed_cached(
        embedder, flat, [hashlib.sha256(text.encode()).hexdigest() for text in flat], units=True)
    encoded, offset = [], 0
    for chunk_texts in texts:
        encoded.append(encode_unit_vectors(chunk_texts, vectors[offset:offset + len(chunk_texts)]))
        offset += len(chunk_texts)
    return encoded


def delete_documents(
    document_ids: Sequence[str], *, backend: SearchBackend | None = None, source_ids: Sequence[str | int] = (),
) -> None:
    """Delete documents' chunks from the index; `source_ids` (their sources, where the caller knows) go with the
    announcement."""
    if not document_ids:
        return
    backend = backend or get_backend()
    backend.delete_documents(list(document_ids))
    _announce(backend, document_ids, source_ids)


def update_acls(acls: Sequence[tuple[str, DocumentAcl]], *, backend: SearchBackend | None = None) -> None:
    """Replace the ACL every chunk of each document carries, by document id; nothing is re-embedded."""
    if not acls:
        return
    backend = backend or get_backend()
    backend.update_acls(list(acls))
    _announce(backend, [document_id for document_id, _ in acls])


def promote(live: SearchBackend, staged: SearchBackend) -> None:
    """Swap a rebuilt staging index in for the live one (atomically, on both backends)."""
    live.promote(staged)
    _announce(live, None)


def _announce(backend: SearchBackend, document_ids: Sequence[str] | None, source_ids: Sequence[str | int] = ()) -> None:
    index_changed.send(sender=type(backend), backend=backend,
                       document_ids=None if document_ids is None else frozenset(document_ids),
                       source_ids=frozenset(str(source_id) for source_id in source_ids))


# -- reviewers' ranking rules ---------------------------------------------------------------------------


class InvalidRankingRule(InvalidInput):
    """The rule cannot be added as given (unknown effect, no document)."""

    code = "invalid_ranking_rule"


def add_ranking_rule(document_id: str, effect: str, *, user: Any, question: str = "", note: str = "",
                     source_feedback: Any = None, surface: str = "admin") -> RankingRule:
    """Boost, demote or hide a document in every search (`question` blank) or in searches for one question, replacing
    the rule already in force for that document and scope; audited as "ranking.<effect>"."""
    if effect not in RankingRule.Effect.values:
        raise InvalidRankingRule(f"effect must be one of {', '.join(RankingRule.Effect.values)}")
    document_id, question = (document_id or "").strip(), (question or "").strip()
    if not document_id or len(document_id) > 64:
        raise InvalidRankingRule("a ranking rule needs the document it is about")
    scope = question_hash(question) if question else ""
    with transaction.atomic():
        replaced = [remove_ranking_rule(rule, user=user, surface=surface) for rule in RankingRule.objects.filter(
            document_id=document_id, question_hash=scope, removed_at=None).select_for_update()]
        rule = RankingRule.objects.create(document_id=document_id, effect=effect, question_hash=scope,
                                          question=question, note=(note or "").strip()[:4000],
                                          source_feedback=source_feedback, created_by=_user_or_none(user))
        audit.record(user, f"ranking.{effect}", object_type="retrieval.rankingrule", object_id=rule.pk,
                     surface=surface, detail={"document_id": document_id, "question": question,
                                              "scope": "question" if question else "global", "note": rule.note,
                                              "feedback_id": getattr(source_feedback, "pk", None),
                                              "replaced": [r.pk for r in replaced]})
    return rule


def remove_ranking_rule(rule: RankingRule, *, user: Any, surface: str = "admin") -> RankingRule:
    """Undo a rule: it stops applying and stays on record with who removed it and when; audited as
    "ranking.undo"."""
    if rule.removed_at is not None:
        return rule
    with transaction.atomic():
        rule.removed_at, rule.removed_by = timezone.now(), _user_or_none(user)
        rule.save(update_fields=["removed_at", "removed_by"])
        audit.record(user, "ranking.undo", object_type="retrieval.rankingrule", object_id=rule.pk, surface=surface,
                     detail={"document_id": rule.document_id, "effect": rule.effect, "question": rule.question,
                             "scope": "global" if rule.is_global else "question"})
    return rule


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None
