"""What the embedded backend's searches read, held in memory: vectors, BM25 postings, identifiers and ACLs.

One `MemoryIndex` is built from an index file per write generation and shared by every thread of the process.
It answers each leg of a search with numpy over arrays, where SQL answered before (the file stays the record:
every write goes to SQLite first, and a search reads the file again once its generation moved):

- who may read what: a boolean mask over chunks, from the documents' ACLs and a principal -> documents map,
  so 1,000 principals cost 1,000 dictionary lookups rather than a join over every chunk;
- BM25 over the FTS5 table's own `terms`, scored as FTS5's bm25() scores (same k1, b, IDF and document
  lengths, summed in the same order), from postings built once, so a query costs its terms' postings rather
  than a ranking of every matching row inside SQLite;
- dense search: exact (a matrix product over the visible chunks), or, from APPROXIMATE_FROM chunks on when the
  reader may see more than RESCORED of them, a first pass over the vectors projected on their 128 principal
  components that keeps the best RESCORED readable chunks, which are then scored exactly (a third of the memory
  read per query; benchmarks/scale.py measures its recall@10 against exact search, docs/benchmarks.md);
- the identifier leg, from an identifier -> chunks map.

A write that changed ACLs alone (content_generation, counted by triggers in the file, did not move) re-reads
the ACL arrays only.

Ties are broken as the SQL did: BM25 and identifier hits by chunk id, dense hits by storage order.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from search.types import LegHit, SearchFilters

# FTS5's bm25() constants (ext/fts5/fts5_aux.c).
BM25_K1 = 1.2
BM25_B = 0.75
_TOKEN = re.compile(r"[^\W_]+")
_EMPTY = np.zeros(0, dtype=np.int64)
# The approximate dense pass (see the module docstring): below this many chunks exact search costs a few ms.
APPROXIMATE_FROM = 20_000
PROJECTED_DIMENSIONS = 128
RESCORED = 1_000  # chunks scored exactly after the projected pass (10 x the default depth of a leg)
_SAMPLE = 20_000  # rows the principal components are computed from


def fts_tokens(text: str) -> list[str]:
    """The tokens FTS5's `unicode61 remove_diacritics 2` tokenizer makes of analysed terms: runs of letters and
    digits, lower-cased, without diacritics. Terms are ASCII letters and digits nearly always: split on spaces."""
    if text.isascii() and text.replace(" ", "").isalnum():
        return text.lower().split()
    tokens: list[str] = []
    for word in text.split():
        if word.isascii() and word.isalnum():
            tokens.append(word.lower())
        else:
            tokens.extend(_fold(word))
    return tokens


@functools.lru_cache(maxsize=65536)
def _fold(word: str) -> tuple[str, ...]:
    decomposed = unicodedata.normalize("NFD", word.lower())
    return tuple(_TOKEN.findall("".join(c for c in decomposed if not unicodedata.combining(c))))


def top_k(candidates: np.ndarray, scores: np.ndarray, tiebreak: np.ndarray, k: int) -> np.ndarray:
    """The k best of `candidates` (indices into `scores` and `tiebreak`) by score, descending, ties by `tiebreak`
    ascending: the same k whatever order ties come in, where np.argpartition alone picks any of them."""
    if len(candidates) > k:
        # Everything scoring at least the k-th best, so ties at the boundary are settled by the tiebreak too.
        kth = -np.partition(-scores[candidates], k - 1)[k - 1]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((tiebreak[candidates], -scores[candidates]))
    return candidates[order[:k]]


@dataclass
class MemoryIndex:
    rowids: np.ndarray  # int64, ascending: chunk positions are indices into it
    chunk_ids: list[str]
    chunk_rank: np.ndarray  # each chunk's place among all chunk ids in sorted order (the tiebreak of the SQL)
    matrix: np.ndarray  # float32, one row per chunk
    chunk_document: np.ndarray  # int32: chunk position -> document position
    document_index: dict[str, int]
    readable_by_all: np.ndarray  # bool per document: ACL status ok and public
    status_ok: np.ndarray  # bool per document
    principal_documents: dict[str, np.ndarray]  # principal -> positions of the documents it is named on
    sources: dict[str, np.ndarray]  # source id -> document positions
    mime_types: dict[str, np.ndarray]
    modified_at: np.ndarray  # float64 epoch seconds per document, NaN when unknown
    vocabulary: dict[str, int]  # FTS token -> term id
    offsets: np.ndarray  # int64, term id -> its postings' slice
    postings: np.ndarray  # int32 chunk positions, by term
    weights: np.ndarray  # float64: BM25's term-frequency factor of each posting, before IDF
    idf: np.ndarray  # float64 per term
    identifiers: dict[str, np.ndarray]  # identifier -> chunk positions
    # The approximate dense pass: centre, projection (dimensions x 128), chunks projected; None: exact only.
    projection: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return len(self.rowids)

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, connection: sqlite3.Connection, dimensions: int, *, approximate: bool = True,
             approximate_from: int = APPROXIMATE_FROM) -> MemoryIndex:
        """Read one consistent snapshot of the file (the caller holds a read transaction). `approximate`: build
        the projected vectors of the approximate dense pass when there are at least `approximate_from` chunks."""
        rows = connection.execute("SELECT rowid, chunk_id, document_id, vector FROM chunks ORDER BY rowid").fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        chunk_ids = [r[1] for r in rows]
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dimensions)
        chunk_rank = np.empty(len(rows), dtype=np.int64)
        chunk_rank[sorted(range(len(rows)), key=chunk_ids.__getitem__)] = np.arange(len(rows))

        documents = connection.execute(
            "SELECT document_id, source_id, mime_type, modified_at FROM documents").fetchall()
        document_index = {d[0]: i for i, d in enumerate(documents)}
        chunk_document = np.fromiter((document_index[r[2]] for r in rows), dtype=np.int32, count=len(rows))
        del rows
        modified_at = np.fromiter((np.nan if d[3] is None else d[3] for d in documents), dtype=np.float64,
                                  count=len(documents))
        sources: dict[str, list[int]] = defaultdict(list)
        mime_types: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(documents):
            sources[d[1]].append(i)
            mime_types[d[2]].append(i)
        # Grouped by identifier, each group's chunks in rowid order.
        named = connection.execute(
            "SELECT identifier, chunk_rowid FROM chunk_identifiers ORDER BY identifier, chunk_rowid").fetchall()
        named_positions = np.searchsorted(rowids, np.fromiter((r[1] for r in named), dtype=np.int64,
                                                              count=len(named)))
        identifiers: dict[str, np.ndarray] = {}
        start = 0
        for end in range(1, len(named) + 1):
            if end == len(named) or named[end][0] != named[start][0]:
                identifiers[named[start][0]] = named_positions[start:end]
                start = end

        index = cls(
            rowids=rowids, chunk_ids=chunk_ids, chunk_rank=chunk_rank, matrix=matrix, chunk_document=chunk_document,
            document_index=document_index, **_acls(connection, document_index),
            sources={k: np.asarray(v, dtype=np.int32) for k, v in sources.items()},
            mime_types={k: np.asarray(v, dtype=np.int32) for k, v in mime_types.items()},
            modified_at=modified_at, vocabulary={}, offsets=np.zeros(1, dtype=np.int64),
            postings=np.zeros(0, dtype=np.int32), weights=np.zeros(0), idf=np.zeros(0),
            identifiers=identifiers,
        )
        index._index_terms(connection.execute("SELECT rowid, terms FROM chunks_fts ORDER BY rowid"))
        if approximate and len(matrix) >= max(approximate_from, 1) and dimensions > PROJECTED_DIMENSIONS:
            index.projection = _project(matrix)
        return index

    def _index_terms(self, rows: Iterable[tuple[int, str]]) -> None:
        """Postings of every FTS row, with FTS5's statistics: rows counted, tokens per row, rows per term."""
        fts_rowids: list[int] = []
        lengths_list: list[int] = []
        tokens: list[str] = []
        for rowid, text in rows:
            words = fts_tokens(text or "")
            fts_rowids.append(rowid)
            lengths_list.append(len(words))
            tokens.extend(words)
        positions = np.searchsorted(self.rowids, np.asarray(fts_rowids, dtype=np.int64))
        lengths = np.asarray(lengths_list, dtype=np.int64)
        vocabulary: defaultdict[str, int] = defaultdict()
        vocabulary.default_factory = vocabulary.__len__  # a new token gets the next id
        term_ids = np.fromiter(map(vocabulary.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        del tokens
        row_count = len(fts_rowids)
        if row_count == 0:
            return
        rows_of_tokens = np.repeat(np.arange(row_count, dtype=np.int64), lengths)
        pairs, frequencies = np.unique(term_ids * row_count + rows_of_tokens, return_counts=True)
        terms, fts_rows = np.divmod(pairs, row_count)
        document_frequency = np.bincount(terms, minlength=len(vocabulary))
        average_length = lengths.sum() / row_count
        frequencies = frequencies.astype(np.float64)
        self.vocabulary = dict(vocabulary)
        self.offsets = np.concatenate(([0], np.cumsum(document_frequency))).astype(np.int64)
        self.postings = positions[fts_rows].astype(np.int32)
        self.weights = frequencies * (BM25_K1 + 1.0) / (
            frequencies + BM25_K1 * (1.0 - BM25_B + BM25_B * lengths[fts_rows] / average_length))
        idf = np.log((row_count - document_frequency + 0.5) / (document_frequency + 0.5))
        self.idf = np.where(idf <= 0.0, 1e-6, idf)

    def with_acls(self, connection: sqlite3.Connection) -> MemoryIndex:
        """The same index with the documents' ACLs read again (a write that changed ACLs alone)."""
        return dataclasses.replace(self, **_acls(connection, self.document_index))

    # -- reading -------------------------------------------------------------------------------------------
    def visible(self, principals: frozenset[str], filters: SearchFilters, epoch: dict[str, float | None]) -> np.ndarray:
        """Chunks the principals may read that pass the filters, as a boolean mask over chunk positions."""
        readable = self.readable_by_all.copy()
        named = [self.principal_documents[p] for p in principals if p in self.principal_documents]
        if named:
            readable[np.concatenate(named)] = True
            readable &= self.status_ok
        for wanted, by_value in ((filters.source_ids, self.sources), (filters.mime_types, self.mime_types)):
            if wanted:
                allowed = np.zeros(len(readable), dtype=bool)
                allowed[self._positions(by_value.get(v, _EMPTY) for v in wanted)] = True
                readable &= allowed
        if filters.document_ids:
            allowed = np.zeros(len(readable), dtype=bool)
            allowed[[self.document_index[d] for d in filters.document_ids if d in self.document_index]] = True
            readable &= allowed
        with np.errstate(invalid="ignore"):  # NaN (no date) compares false: excluded, as NULL is in SQL
            if epoch.get("after") is not None:
                readable &= self.modified_at >= epoch["after"]
            if epoch.get("before") is not None:
                readable &= self.modified_at < epoch["before"]
        return readable[self.chunk_document]

    @staticmethod
    def _positions(arrays: Iterable[np.ndarray]) -> np.ndarray:
        found = [a for a in arrays if len(a)]
        return np.concatenate(found) if found else _EMPTY

    def bm25(self, terms: Sequence[str], visible: np.ndarray, limit: int) -> list[LegHit]:
        scores = np.zeros(self.size, dtype=np.float64)
        matched = np.zeros(self.size, dtype=bool)
        for term in sorted(set(terms)):  # FTS5 sums the phrases in this order
            for token in fts_tokens(term):
                term_id = self.vocabulary.get(token)
                if term_id is None:
                    continue
                start, end = self.offsets[term_id], self.offsets[term_id + 1]
                chunks = self.postings[start:end]
                scores[chunks] += self.idf[term_id] * self.weights[start:end]
                matched[chunks] = True
        candidates = np.flatnonzero(matched & visible)
        top = top_k(candidates, scores, self.chunk_rank, limit)
        return [LegHit(self.chunk_ids[i], float(scores[i])) for i in top]

    def dense(self, query_vector: np.ndarray, visible: np.ndarray, limit: int) -> list[LegHit]:
        candidates = np.flatnonzero(visible)
        if not len(candidates):
            return []
        # One BLAS thread: a matrix-vector product is bound by memory, and a second thread busy-waits. On two shared
        # cores that doubled the CPU a search took (8.6 -> 20 ms at 100k chunks) and its latency when they are busy.
        with _blas().limit(limits=1, user_api="blas"):
            return self._dense(candidates, query_vector, limit)

    def _dense(self, candidates: np.ndarray, query_vector: np.ndarray, limit: int) -> list[LegHit]:
        vector = np.asarray(query_vector, dtype=np.float32)
        rescored = max(RESCORED, 10 * limit)
        few = len(candidates) * 4 < self.size  # then gathering the readable rows is cheaper than one full pass
        if self.projection is not None and len(candidates) > rescored:
            _, projection, projected = self.projection
            reduced = vector @ projection
            # x.q less the centre's share, which is the same for every chunk: the order is x.q's.
            approximate = projected[candidates] @ reduced if few else (projected @ reduced)[candidates]
            shortlist = np.sort(candidates[np.argpartition(-approximate, rescored - 1)[:rescored]])
            candidates, candidate_scores = shortlist, self.matrix[shortlist] @ vector
        elif few:
            candidate_scores = self.matrix[candidates] @ vector
        else:
            candidate_scores = (self.matrix @ vector)[candidates]
        best = top_k(np.arange(len(candidates)), candidate_scores, candidates, limit)
        return [LegHit(self.chunk_ids[candidates[i]], float(candidate_scores[i])) for i in best]

    def exact(self, identifiers: Sequence[str], visible: np.ndarray, limit: int) -> list[LegHit]:
        named = np.zeros(self.size, dtype=np.float64)
        for identifier in set(identifiers):
            named[self.identifiers.get(identifier, _EMPTY)] += 1
        candidates = np.flatnonzero((named > 0) & visible)
        top = top_k(candidates, named, self.chunk_rank, limit)
        return [LegHit(self.chunk_ids[i], float(named[i])) for i in top]


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finds the BLAS libraries loaded once; limiting them then costs microseconds


def _project(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centre, the top principal directions (from a fixed sample of rows) and every row projected on them."""
    rows = np.random.default_rng(0).choice(len(matrix), min(len(matrix), _SAMPLE), replace=False)
    center = matrix[np.sort(rows)].mean(axis=0)
    _, _, directions = np.linalg.svd(matrix[np.sort(rows)] - center, full_matrices=False)
    projection = np.ascontiguousarray(directions[:PROJECTED_DIMENSIONS].T, dtype=np.float32)
    projected = np.empty((len(matrix), PROJECTED_DIMENSIONS), dtype=np.float32)
    for start in range(0, len(matrix), 16_384):  # in slices: no second full-size temporary
        projected[start:start + 16_384] = (matrix[start:start + 16_384] - center) @ projection
    return center, projection, projected


def _acls(connection: sqlite3.Connection, document_index: dict[str, int]) -> dict[str, Any]:
    status_ok = np.zeros(len(document_index), dtype=bool)
    public = np.zeros(len(document_index), dtype=bool)
    for document_id, acl_public, acl_status in connection.execute(
            "SELECT document_id, acl_public, acl_status FROM documents"):
        position = document_index.get(document_id)
        if position is not None:
            status_ok[position] = acl_status == "ok"
            public[position] = bool(acl_public)
    principals: dict[str, list[int]] = defaultdict(list)
    for principal, document_id in connection.execute("SELECT principal, document_id FROM document_principals"):
        position = document_index.get(document_id)
        if position is not None:
            principals[principal].append(position)
    return {"readable_by_all": status_ok & public, "status_ok": status_ok,
            "principal_documents": {p: np.asarray(v, dtype=np.int32) for p, v in principals.items()}}


def epoch_bounds(filters: SearchFilters) -> dict[str, float | None]:
    def epoch(value: datetime | None) -> float | None:
        return value.timestamp() if value else None

    return {"after": epoch(filters.modified_after), "before": epoch(filters.modified_before)}
