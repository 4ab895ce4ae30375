"""The contract every search backend keeps; tests/search/test_backend_contract.py checks it on each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from search.types import (
    Chunk,
    DocumentAcl,
    FusionConfig,
    IndexedDocument,
    IndexInfo,
    SearchFilters,
    SearchHit,
    SearchMode,
)
from search.versions import VersionInfo


@dataclass(frozen=True)
class DocumentChunks:
    """Everything the index holds for one document: replaced as a unit."""

    document: IndexedDocument
    chunks: Sequence[Chunk]
    vectors: np.ndarray  # one normalised row per chunk
    analyzed_texts: Sequence[str]  # BM25 terms per chunk (search.analysis)
    identifiers: Sequence[Sequence[str]] = ()  # per chunk, search.analysis.identifiers; none when empty
    # Per chunk, its answer-unit vectors as one opaque blob (search/unit_vectors.py); empty: none stored.
    unit_vectors: Sequence[bytes] = field(default=())


class SearchBackend(Protocol):
    name: str
    index_name: str

    def ensure_index(self, embedding_model: str, dimensions: int) -> None:
        """Create the index for this model, or raise IndexModelMismatch if it holds another model's vectors."""
        ...

    def index_info(self) -> IndexInfo | None: ...

    def replace_documents(self, batch: Sequence[DocumentChunks], *, embedding_model: str) -> None:
        """Atomically swap each document's chunks for the given ones; visible to search on return."""
        ...

    def update_acls(self, acls: Sequence[tuple[str, DocumentAcl]]) -> None:
        """Replace the ACL of documents already indexed, without touching text or vectors; visible on return."""
        ...

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Remove documents; gone from search on return.

        Raises SearchUnavailable unless the index confirmed every removal (a document it does not hold counts
        as removed), so callers delete their own records only after this returns.
        """
        ...

    def document_ids(self, *, source_ids: Sequence[str] | None = None) -> set[str]:
        """Ids of the documents indexed, or of those from the given sources only, all at once (small indices)."""
        ...

    def document_id_pages(
        self, *, source_ids: Sequence[str] | None = None, page_size: int = 1000
    ) -> Iterator[list[str]]:
        """The same ids, at most `page_size` at a time, each once, in id order.

        Each page is read when the previous one has been consumed, so memory stays bounded by a page and a
        caller may delete a page's documents before asking for the next.
        """
        ...

    def source_ids(self) -> set[str]:
        """The distinct source ids of the documents indexed (to find documents whose source is gone)."""
        ...

    def search(
        self,
        *,
        principals: frozenset[str],
        query: str,
        analyzed_query: str,
        query_vector: np.ndarray | None,
        embedding_model: str,
        mode: SearchMode,
        filters: SearchFilters,
        limit: int,
        fusion: FusionConfig,
        identifiers: Sequence[str] = (),
        with_unit_vectors: bool = False,
    ) -> list[SearchHit]:
        """Hits the principals may read, best first. `principals` has no default: callers must say who asks.

        In hybrid mode, chunks that name any of `identifiers` (exactly, as search.analysis.identifiers spells them)
        form a third leg of the fusion, so an exact part number or ticket id outranks its near neighbours.
        `with_unit_vectors`: each hit carries its chunk's stored unit vectors (answering wants them; a plain
        search does not pay for reading them).
        """
        ...

    def version_candidates(
        self, *, title_keys: Sequence[str], families: Sequence[str], principals: frozenset[str], limit: int = 100,
    ) -> list[VersionInfo]:
        """Documents the principals may read that say they supersede one of `title_keys`, or that belong to one of
        `families` (search.versions.title_family) and state an effective date; one entry per document."""
        ...

    def get_document(self, document_id: str, principals: frozenset[str]) -> IndexedDocument | None:
        """The document as indexed if the principals may read it now (the ACL filter every search applies).

        None when it is not indexed (gone, never, or without chunks) and when it is not readable, alike.
        """
        ...

    def section_chunks(
        self, document_id: str, section_ordinal: int, *, principals: frozenset[str]
    ) -> list[tuple[str, int, int]]:
        """(text, start, end) of every chunk in a section the principals may read, for parent expansion."""
        ...

    def document_chunks(self, document_id: str, *, principals: frozenset[str], limit: int = 5000) -> list[Chunk]:
        """The document's chunks in order (at most `limit`) if the principals may read it, for showing it whole
        (the web app's document viewer); [] when it is not indexed or not readable, alike."""
        ...

    def chunk_texts(self, *, page_size: int = 500) -> Iterator[list[tuple[str, DocumentAcl]]]:
        """Every indexed chunk's text with its document's ACL, at most `page_size` at a time, each chunk once.

        For statistics over the whole index (retrieval's spelling vocabulary, which keeps each word's ACLs so
        that it only ever tells an asker about words they may read); never to be shown to anyone as it is.
        """
        ...

    def drop(self) -> None:
        """Delete the index and everything in it, every version included, by name (never by wildcard)."""
        ...

    def staging(self, embedding_model: str, dimensions: int) -> SearchBackend:
        """An empty, unsearched index to rebuild into (new model or settings) while this one serves."""
        ...

    def promote(self, staged: SearchBackend) -> None:
        """Make a filled staging index the live one, atomically, and discard the old once nothing uses it."""
        ...

    def discard(self, staged: SearchBackend) -> None:
        """Delete a staging index that will not be promoted (a rebuild failed); never the live one."""
        ...

    def remove_stale_versions(self) -> list[str]:
        """Delete versions of this index that are not live and not in use (left by failed or replaced
        rebuilds); returns their names. One rebuild at a time: another's staging index counts as stale."""
        ...
