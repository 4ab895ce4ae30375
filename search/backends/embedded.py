"""In-process backend: SQLite FTS5 for BM25, exact cosine kNN over vectors held in numpy.

One SQLite file per index. Every write runs in one transaction, so a document's chunks are
replaced atomically and readers see the change as soon as the call returns. A generation
counter in the file tells each process when its in-memory vector matrix is stale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from search.backends.base import DocumentChunks
from search.fusion import rank
from search.highlighting import highlight
from search.types import (
    DocumentAcl,
    FusionConfig,
    IndexedDocument,
    IndexInfo,
    IndexModelMismatch,
    LegHit,
    SearchFilters,
    SearchHit,
    SearchMode,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    modified_at REAL,
    acl_public INTEGER NOT NULL,
    acl_status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source_id);
CREATE TABLE IF NOT EXISTS document_principals (
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    PRIMARY KEY (principal, document_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_principals_document ON document_principals(document_id);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading_path TEXT NOT NULL,
    section_ordinal INTEGER NOT NULL,
    section_start INTEGER NOT NULL,
    section_end INTEGER NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, section_ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2');
"""

# A document is readable iff its ACL status is ok and it is public or shares a principal with the asker.
# The principal subquery is uncorrelated, so SQLite evaluates it once per statement (an index probe per
# principal) rather than once per document: 10,000 principals stay cheap.
_VISIBLE_SQL = (
    "d.acl_status = 'ok' AND (d.acl_public = 1 OR d.document_id IN (SELECT p.document_id FROM "
    "document_principals p WHERE p.principal IN (SELECT value FROM json_each(?))))"
)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, directory: str | Path, index_name: str) -> None:
        self.directory = Path(directory)
        self.index_name = index_name
        self.path = self.directory / f"{index_name}.sqlite3"
        self._local = threading.local()
        self._matrix_lock = threading.Lock()
        self._matrix: tuple[int, np.ndarray, np.ndarray, list[str]] | None = None

    # -- connections -------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute(
                "INSERT INTO meta(key, value) VALUES ('generation', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
            connection.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- index lifecycle ---------------------------------------------------------------------
    def ensure_index(self, embedding_model: str, dimensions: int) -> None:
        with self._transaction() as connection:
            current = dict(connection.execute(
                "SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimensions')"
            ).fetchall())
            if not current:
                connection.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("embedding_model", embedding_model), ("dimensions", str(dimensions)),
                     ("created_at", datetime.now(tz=UTC).isoformat())],
                )
                return
        self._check_model(embedding_model)

    def _check_model(self, embedding_model: str) -> None:
        indexed = self._meta("embedding_model")
        if indexed is None:
            raise IndexModelMismatch(f"index {self.index_name!r} does not exist yet; ingest documents first")
        if indexed != embedding_model:
            raise IndexModelMismatch(
                f"index {self.index_name!r} holds vectors from {indexed!r}, not {embedding_model!r}; "
                "re-index with `manage.py reindex` instead of mixing models"
            )

    def index_info(self) -> IndexInfo | None:
        if not self.path.exists() or self._meta("embedding_model") is None:
            return None
        count = self._connection().execute("SELECT count(*) FROM chunks").fetchone()[0]
        return IndexInfo(self._meta("embedding_model"), int(self._meta("dimensions")), count, str(self.path))

    def drop(self) -> None:
        self.drop_connection()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._matrix = None

    def staging(self, embedding_model: str, dimensions: int) -> EmbeddedBackend:
        staged = EmbeddedBackend(self.directory, f"{self.index_name}.staging")
        staged.drop()
        staged.ensure_index(embedding_model, dimensions)
        return staged

    def promote(self, staged: EmbeddedBackend) -> None:
        # Fold the staged write-ahead log into its main file so one rename moves everything.
        staged._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        staged.drop_connection()
        self.drop_connection()
        Path(staged.path).replace(self.path)
        for suffix in ("-wal", "-shm"):
            Path(f"{staged.path}{suffix}").unlink(missing_ok=True)
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._matrix = None

    def drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # -- writes --------------------------------------------------------------------------------
    def replace_documents(self, batch: Sequence[DocumentChunks], *, embedding_model: str) -> None:
        self._check_model(embedding_model)
        dimensions = int(self._meta("dimensions"))
        with self._transaction() as connection:
            for item in batch:
                if item.vectors.shape != (len(item.chunks), dimensions):
                    raise ValueError(f"expected {len(item.chunks)} vectors of {dimensions} dimensions")
                self._delete(connection, [item.document.document_id])
                self._insert_document(connection, item.document)
                for chunk, vector, terms in zip(item.chunks, item.vectors, item.analyzed_texts, strict=True):
                    cursor = connection.execute(
                        "INSERT INTO chunks(chunk_id, document_id, ordinal, heading_path, section_ordinal, "
                        "section_start, section_end, text, content_hash, vector) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (chunk.chunk_id, chunk.document_id, chunk.ordinal, json.dumps(chunk.heading_path),
                         chunk.section_ordinal, chunk.section_start, chunk.section_end, chunk.text,
                         chunk.content_hash, np.asarray(vector, dtype="<f4").tobytes()),
                    )
                    connection.execute("INSERT INTO chunks_fts(rowid, terms) VALUES (?, ?)", (cursor.lastrowid, terms))

    def _insert_document(self, connection: sqlite3.Connection, document: IndexedDocument) -> None:
        connection.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)",
            (document.document_id, document.source_id, document.title, document.url, document.mime_type,
             _epoch(document.modified_at), int(document.acl.public), document.acl.status),
        )
        connection.executemany(
            "INSERT INTO document_principals(document_id, principal) VALUES (?, ?)",
            [(document.document_id, p) for p in sorted(document.acl.principals)],
        )

    def _delete(self, connection: sqlite3.Connection, document_ids: Sequence[str]) -> None:
        ids = json.dumps(list(document_ids))
        connection.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE document_id IN "
            "(SELECT value FROM json_each(?)))", (ids,)
        )
        connection.execute("DELETE FROM documents WHERE document_id IN (SELECT value FROM json_each(?))", (ids,))

    def update_acls(self, acls: Sequence[tuple[str, DocumentAcl]]) -> None:
        if not acls or not self.path.exists():
            return
        with self._transaction() as connection:
            for document_id, acl in acls:
                connection.execute("UPDATE documents SET acl_public = ?, acl_status = ? WHERE document_id = ?",
                                   (int(acl.public), acl.status, document_id))
                connection.execute("DELETE FROM document_principals WHERE document_id = ?", (document_id,))
                connection.executemany(
                    "INSERT INTO document_principals(document_id, principal) SELECT ?, ? "
                    "WHERE EXISTS (SELECT 1 FROM documents WHERE document_id = ?)",
                    [(document_id, p, document_id) for p in sorted(acl.principals)],
                )

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        if not self.path.exists():
            return
        with self._transaction() as connection:
            self._delete(connection, document_ids)

    def document_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {row[0] for row in self._connection().execute("SELECT document_id FROM documents")}

    # -- reads ---------------------------------------------------------------------------------
    def _filter_sql(self, principals: frozenset[str], filters: SearchFilters) -> tuple[str, list]:
        clauses, params = [_VISIBLE_SQL], [json.dumps(sorted(principals))]
        for column, values in (("d.source_id", filters.source_ids), ("d.mime_type", filters.mime_types),
                               ("d.document_id", filters.document_ids)):
            if values:
                clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(list(values)))
        if filters.modified_after:
            clauses.append("d.modified_at >= ?")
            params.append(_epoch(filters.modified_after))
        if filters.modified_before:
            clauses.append("d.modified_at < ?")
            params.append(_epoch(filters.modified_before))
        return " AND ".join(clauses), params

    def _bm25(self, analyzed_query: str, where: str, params: list, limit: int) -> list[LegHit]:
        terms = sorted(set(analyzed_query.split()))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self._connection().execute(
            "SELECT c.chunk_id, bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
            f"JOIN documents d ON d.document_id = c.document_id WHERE chunks_fts MATCH ? AND {where} "
            "ORDER BY s, c.chunk_id LIMIT ?",
            [match, *params, limit],
        ).fetchall()
        # FTS5's bm25() is negated so that smaller is better; flip it back to BM25's sign.
        return [LegHit(chunk_id, -score) for chunk_id, score in rows]

    def _vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        generation = int(self._meta("generation") or 0)
        with self._matrix_lock:
            if self._matrix is None or self._matrix[0] != generation:
                rows = self._connection().execute("SELECT rowid, chunk_id, vector FROM chunks ORDER BY rowid").fetchall()
                dimensions = int(self._meta("dimensions") or 0)
                matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dimensions)
                rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                self._matrix = (generation, matrix, rowids, [r[1] for r in rows])
            return self._matrix[1], self._matrix[2], self._matrix[3]

    def _dense(self, query_vector: np.ndarray, where: str, params: list, limit: int) -> list[LegHit]:
        matrix, rowids, chunk_ids = self._vectors()
        if not len(rowids):
            return []
        scores = matrix @ np.asarray(query_vector, dtype=np.float32)
        allowed = np.fromiter(
            (r[0] for r in self._connection().execute(
                f"SELECT c.rowid FROM chunks c JOIN documents d ON d.document_id = c.document_id WHERE {where}",
                params)),
            dtype=np.int64,
        )
        # Forbidden chunks are removed before ranking: a pre-filter, as in Elasticsearch's kNN.
        scores = np.where(np.isin(rowids, allowed), scores, -np.inf)
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return [LegHit(chunk_ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

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
    ) -> list[SearchHit]:
        if not self.path.exists() or self._meta("embedding_model") is None:
            return []
        where, params = self._filter_sql(principals, filters)
        if mode == SearchMode.HYBRID:
            # Evaluate the asker's filter once and let both legs read the result.
            connection = self._connection()
            connection.execute("CREATE TEMP TABLE IF NOT EXISTS visible_chunks (rowid INTEGER PRIMARY KEY)")
            connection.execute("DELETE FROM temp.visible_chunks")
            connection.execute("INSERT INTO temp.visible_chunks SELECT c.rowid FROM chunks c JOIN documents d "
                               f"ON d.document_id = c.document_id WHERE {where}", params)
            where, params = "c.rowid IN (SELECT rowid FROM temp.visible_chunks)", []
        depth = max(limit, fusion.candidates_per_leg)
        bm25 = self._bm25(analyzed_query, where, params, depth) if mode != SearchMode.DENSE else []
        dense: list[LegHit] = []
        if mode != SearchMode.BM25:
            self._check_model(embedding_model)
            if query_vector is None:
                raise ValueError("dense and hybrid search need a query vector")
            dense = self._dense(query_vector, where, params, depth)
        return self._hydrate(rank(mode, bm25, dense, fusion)[:limit], query)

    def _hydrate(self, fused: list, query: str) -> list[SearchHit]:
        if not fused:
            return []
        ids = json.dumps([h.chunk_id for h in fused])
        rows = {
            row[0]: row
            for row in self._connection().execute(
                "SELECT c.chunk_id, c.document_id, d.source_id, d.title, d.url, d.mime_type, d.modified_at, "
                "c.heading_path, c.section_ordinal, c.text FROM chunks c JOIN documents d "
                "ON d.document_id = c.document_id WHERE c.chunk_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
        }
        hits = []
        for fused_hit in fused:
            row = rows.get(fused_hit.chunk_id)
            if row is None:  # deleted between the legs and hydration
                continue
            hits.append(SearchHit(
                chunk_id=row[0], document_id=row[1], source_id=row[2], title=row[3], url=row[4], mime_type=row[5],
                modified_at=datetime.fromtimestamp(row[6], tz=UTC) if row[6] is not None else None,
                heading_path=tuple(json.loads(row[7])), section_ordinal=row[8], text=row[9],
                score=fused_hit.score, bm25_rank=fused_hit.bm25_rank, dense_rank=fused_hit.dense_rank,
                highlight=highlight(row[9], query),
            ))
        return hits

    def section_chunks(
        self, document_id: str, section_ordinal: int, *, principals: frozenset[str]
    ) -> list[tuple[str, int, int]]:
        if not self.path.exists():
            return []
        rows = self._connection().execute(
            "SELECT c.text, c.section_start, c.section_end FROM chunks c JOIN documents d "
            f"ON d.document_id = c.document_id WHERE c.document_id = ? AND c.section_ordinal = ? AND {_VISIBLE_SQL} "
            "ORDER BY c.ordinal",
            (document_id, section_ordinal, json.dumps(sorted(principals))),
        ).fetchall()
        return [tuple(r) for r in rows]
