"""Values that cross the SearchBackend boundary: what is indexed, what is asked, what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from core.errors import ServiceUnavailable


class SearchMode(StrEnum):
    BM25 = "bm25"
    DENSE = "dense"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class DocumentAcl:
    """Read permissions copied onto every chunk of a document. Anything but status ok hides it."""

    principals: frozenset[str] = frozenset()
    public: bool = False
    status: str = "unknown"

    @classmethod
    def public_ok(cls) -> DocumentAcl:
        return cls(public=True, status="ok")


@dataclass(frozen=True)
class IndexedDocument:
    """Document-level fields every chunk carries, so a hit needs no second lookup."""

    document_id: str
    source_id: str
    title: str
    url: str
    mime_type: str
    modified_at: datetime | None
    acl: DocumentAcl = field(default_factory=DocumentAcl.public_ok)
    # What the text states (search/versions.py): the date it takes effect, and title keys of what it replaces.
    effective_date: date | None = None
    supersedes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    document_id: str
    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    section_ordinal: int
    # Character span of `text` inside its section, so neighbouring chunks can be merged back.
    section_start: int
    section_end: int
    content_hash: str

    def embedding_input(self, title: str) -> str:
        context = " > ".join(p for p in (title, *self.heading_path) if p)
        return f"{context}\n{self.text}" if context else self.text


@dataclass(frozen=True)
class SearchFilters:
    source_ids: tuple[str, ...] = ()
    mime_types: tuple[str, ...] = ()
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    document_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    document_id: str
    source_id: str
    title: str
    url: str
    mime_type: str
    modified_at: datetime | None
    heading_path: tuple[str, ...]
    section_ordinal: int
    text: str
    score: float
    bm25_rank: int | None
    dense_rank: int | None
    highlight: str
    effective_date: date | None = None
    # Title of a newer edition the asker may read (retrieval.selectors sets it); "" when there is none.
    superseded_by: str = ""
    # The chunk's answer-unit vectors as stored at index time (search/unit_vectors.py), b"" when the index holds
    # none or they were not asked for. Internal to answering: never in as_dict, reprs or logs.
    unit_vectors: bytes = field(default=b"", repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "source_id": self.source_id,
            "title": self.title,
            "url": self.url,
            "mime_type": self.mime_type,
            "modified_at": self.modified_at.isoformat() if self.modified_at else None,
            "heading_path": list(self.heading_path),
            "section_ordinal": self.section_ordinal,
            "text": self.text,
            "score": self.score,
            "bm25_rank": self.bm25_rank,
            "dense_rank": self.dense_rank,
            "highlight": self.highlight,
            "effective_date": self.effective_date.isoformat() if self.effective_date else None,
            "superseded_by": self.superseded_by,
        }


@dataclass(frozen=True)
class LegHit:
    """One retrieval leg's result before fusion: a chunk id and its rank-ordered score."""

    chunk_id: str
    score: float


@dataclass(frozen=True)
class FusionConfig:
    method: str = "rrf"  # rrf | linear
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    candidates_per_leg: int = 100
    knn_num_candidates: int = 200
    # Hybrid search's third leg: chunks naming an identifier the query names (search.analysis.identifiers).
    identifier_weight: float = 1.0


@dataclass(frozen=True)
class IndexInfo:
    embedding_model: str
    dimensions: int
    chunk_count: int
    physical_name: str


class IndexModelMismatch(ServiceUnavailable):
    """The index holds vectors from another embedding model; mixing them would make kNN meaningless."""

    code = "index_not_ready"
    user_message = "The search index is not ready (nothing has been ingested yet, or it is being rebuilt)."


class SearchUnavailable(ServiceUnavailable):
    """The search backend could not be reached or answered with an error."""

    code = "search_unavailable"
    user_message = "Search is unavailable right now; please try again in a moment."


class IndexMissing(SearchUnavailable):
    """The database says documents are indexed, but the index is not there (deleted, or the wrong directory,
    cluster or index name): an outage, not an empty install."""
