"""Reads from the search index. Every read takes the asker's principals: there is no unfiltered path."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Max

from core.config import current
from retrieval.chunking import merge_section_text
from retrieval.embeddings import get_embedder
from retrieval.metrics import SEARCHES, timed
from retrieval.models import RankingRule
from retrieval.ranking import EXTRA_CANDIDATES, Effect, apply_rules, effective_rules, question_hash
from retrieval.services import fusion_config, get_backend
from retrieval.signals import index_found_empty
from retrieval.spelling import Correction, correct, vocabulary
from search.analysis import analyzed_text, identifiers
from search.backends import SearchBackend
from search.types import Chunk, FusionConfig, IndexedDocument, IndexMissing, SearchFilters, SearchHit, SearchMode
from search.versions import VersionInfo, asks_for_this_version, demoted, successor

# A pasted log or document as a "query" must not become a 50,000-clause query.
MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 256


def search(
    query: str,
    *,
    principals: frozenset[str],
    mode: SearchMode = SearchMode.HYBRID,
    filters: SearchFilters | None = None,
    limit: int = 10,
    backend: SearchBackend | None = None,
    fusion: FusionConfig | None = None,
    timings: dict[str, float] | None = None,
    with_unit_vectors: bool = False,
) -> list[SearchHit]:
    """Hits the principals may read, best first; `with_unit_vectors` for answering (SearchHit.unit_vectors).

    Reviewers' ranking rules (retrieval.ranking) apply to every search, on every backend: the global ones and those
    for this query's question. They reorder or remove what the principals' search returned, never add to it.
    """
    if not isinstance(principals, frozenset):
        raise TypeError("principals must be a frozenset of the asker's principals")
    query = query[:MAX_QUERY_CHARS]
    terms = " ".join(analyzed_text(query).split()[:MAX_QUERY_TERMS])
    named = identifiers(query)[:MAX_QUERY_TERMS]
    backend = backend or get_backend()
    effects = ranking_effects(query)
    embedding_model = current().embedding_model
    query_vector = None
    if mode != SearchMode.BM25:  # BM25 alone never loads the model
        with timed("embed_query", timings):
            # At full precision even when documents are embedded with int8 weights: one short text costs about
            # the same either way, and int8 on both sides moved answers the fp32 query does not (docs/benchmarks.md,
            # "Embedding backends").
            query_vector = get_embedder(embedding_model).full_precision().embed_query(query)
    with timed("retrieve", timings):
        hits = backend.search(
            principals=principals, query=query, analyzed_query=terms, query_vector=query_vector,
            embedding_model=embedding_model, mode=mode, filters=filters or SearchFilters(),
            limit=limit + EXTRA_CANDIDATES if effects else limit,
            fusion=fusion or fusion_config(), identifiers=named, with_unit_vectors=with_unit_vectors,
        )
        hits = apply_rules(_rank_superseded_lower(hits, query, principals, backend), effects, limit)
    SEARCHES.labels(backend.name, mode.value).inc()
    if not hits:  # nothing found, or nothing there to find: only the second is an outage
        _raise_if_missing(backend)
    return hits


def ranking_effects(question: str) -> dict[str, Effect]:
    """document_id -> effect of the active ranking rules for a question: the global ones, overridden per document by
    the question's own."""
    rules = RankingRule.objects.filter(removed_at=None, question_hash__in=("", question_hash(question)))
    pairs = list(rules.values_list("document_id", "effect", "question_hash"))
    return effective_rules(((d, e) for d, e, scope in pairs if not scope), ((d, e) for d, e, scope in pairs if scope))


def hidden_documents(question: str) -> frozenset[str]:
    """The documents no search for this question returns (a global or this question's "hide" rule)."""
    return frozenset(d for d, effect in ranking_effects(question).items() if effect is Effect.HIDE)


def active_ranking_rules(*, document_ids: Sequence[str] | None = None) -> list[RankingRule]:
    """Rules in force, newest first; only those for `document_ids` when given."""
    rules = RankingRule.objects.filter(removed_at=None).select_related("created_by")
    if document_ids is not None:
        rules = rules.filter(document_id__in=list(document_ids))
    return list(rules)


def ranking_version() -> str:
    """Changes whenever a ranking rule is added or undone: part of what a cached answer depends on."""
    stamps = RankingRule.objects.aggregate(count=Count("id"), added=Max("created_at"), removed=Max("removed_at"))
    return f"{stamps['count']}:{stamps['added']}:{stamps['removed']}"


def _rank_superseded_lower(hits: list[SearchHit], query: str, principals: frozenset[str],
                           backend: SearchBackend) -> list[SearchHit]:
    """Hits with `superseded_by` set where the asker may read a newer edition, and those ranked a little lower
    (search.versions.SUPERSEDED_SCORE_FACTOR) unless the query names the old edition ("the 2025 policy").

    Only documents the principals may read count as newer editions: a successor's title is shown to the asker.
    """
    if not hits:
        return hits
    documents = {hit.document_id: VersionInfo(hit.document_id, hit.title, hit.effective_date) for hit in hits}
    candidates = backend.version_candidates(
        title_keys=sorted({d.key for d in documents.values()}),
        families=sorted({d.family for d in documents.values() if d.family and d.effective_date}),
        principals=principals,
    )
    if not candidates:
        return hits
    # A hit that is itself a candidate is known in full (what it supersedes too).
    documents.update((c.document_id, c) for c in candidates if c.document_id in documents)
    successors = {document_id: successor(info, candidates) for document_id, info in documents.items()}
    ranked = []
    for hit in hits:
        newer = successors.get(hit.document_id)
        if newer is None:
            ranked.append(hit)
            continue
        score = hit.score if asks_for_this_version(query, hit.title, newer.title) else demoted(hit.score)
        ranked.append(dataclasses.replace(hit, superseded_by=newer.title, score=score))
    return sorted(ranked, key=lambda hit: -hit.score)


def correct_spelling(query: str, *, principals: frozenset[str], backend: SearchBackend | None = None) -> Correction:
    """The query with its misspelt words corrected to words of the index that the principals may read
    (retrieval/spelling.py). Keep only what `retrieval.spelling.confirmed` keeps once the corrected query is searched.
    """
    if not isinstance(principals, frozenset):
        raise TypeError("principals must be a frozenset of the asker's principals")
    return correct(query[:MAX_QUERY_CHARS], vocabulary(backend or get_backend()), principals)


def index_status(backend: SearchBackend | None = None) -> str:
    """"ok", "empty" (nothing ingested yet) or "index missing" (what was indexed says otherwise: index_found_empty).

    Raises SearchUnavailable when the index cannot be read at all.
    """
    backend = backend or get_backend()
    info = backend.index_info()
    if info is not None and info.chunk_count > 0:
        return "ok"
    replies = index_found_empty.send(sender=type(backend), backend_kind=backend.name, index_name=backend.index_name)
    return "index missing" if any(expected for _, expected in replies) else "empty"


def _raise_if_missing(backend: SearchBackend) -> None:
    if index_status(backend) == "index missing":
        raise IndexMissing(f"the {backend.name} index {backend.index_name!r} is missing or empty, but the "
                           "database records documents indexed in it; restore it or run `manage.py reindex`")


def expand_to_section(hit: SearchHit, *, principals: frozenset[str], backend: SearchBackend | None = None) -> str:
    """The whole section a hit came from (parent-document retrieval), or "" if the asker may not read it."""
    backend = backend or get_backend()
    pieces = backend.section_chunks(hit.document_id, hit.section_ordinal, principals=principals)
    return merge_section_text(pieces)


def readable_document(
    document_id: str, principals: frozenset[str], *, backend: SearchBackend | None = None
) -> IndexedDocument | None:
    """The document as indexed if the principals may read it now, per the search index; else None.

    The index is the authority (the same ACL filter every search applies), so a document that is gone,
    not yet indexed, or not readable all look the same: None.
    """
    if not isinstance(principals, frozenset):
        raise TypeError("principals must be a frozenset of the asker's principals")
    if not document_id or len(document_id) > 64:
        return None
    backend = backend or get_backend()
    document = backend.get_document(document_id, principals)
    if document is None:  # not readable, or no index to read: only the second is an outage
        _raise_if_missing(backend)
    return document


@dataclass(frozen=True)
class DocumentSection:
    """One section of a document as indexed: its place, its headings, its text rebuilt from its chunks."""

    ordinal: int
    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ReadableDocument:
    document: IndexedDocument
    sections: list[DocumentSection]


def readable_document_text(
    document_id: str, principals: frozenset[str], *, backend: SearchBackend | None = None
) -> ReadableDocument | None:
    """The document and its indexed text, section by section in order, if the principals may read it now; else None
    (gone, never indexed and not readable look the same, as in readable_document)."""
    document = readable_document(document_id, principals, backend=backend)
    if document is None:
        return None
    chunks = (backend or get_backend()).document_chunks(document_id, principals=principals)
    if not chunks:  # made unreadable or deleted between the two reads: the ACL filter applies to both
        return None
    by_section: dict[int, list[Chunk]] = {}
    for chunk in chunks:
        by_section.setdefault(chunk.section_ordinal, []).append(chunk)
    sections = [DocumentSection(ordinal, pieces[0].heading_path,
                                merge_section_text([(c.text, c.section_start, c.section_end) for c in pieces]))
                for ordinal, pieces in sorted(by_section.items())]
    return ReadableDocument(document, sections)
