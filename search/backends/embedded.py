"""In-process backend: an SQLite file is the index; searches read it through arrays held in memory.

The file holds everything (chunks, vectors, an FTS5 table of BM25 terms, ACLs). Searches run over a
`MemoryIndex` (search/backends/embedded_memory.py) built from it once per write generation: BM25 scored as
FTS5 scores it, cosine kNN (exact, or a projected first pass on large indexes), the identifier leg and the ACL
filter, all in numpy. Hydrating the final hits
reads the file again. `EmbeddedBackend(..., search_in_memory=False)` runs the legs as SQL over the file instead
(the reference the in-memory legs are tested against).

An index is one physical SQLite file at a time. Every write runs in one transaction, so a document's
chunks are replaced atomically and readers see the change as soon as the call returns.

Files in the index directory, for an index named N:

- `N.sqlite3`: the first physical file (and the only one of installs from before pointers);
- `N.v<k>.sqlite3`: the files rebuilds fill (`staging`);
- `N.current`: the pointer, naming the live physical file once a rebuild has been promoted. `promote`
  replaces it atomically (os.replace); every process checks it before each operation and reopens
  when it names another file. Nothing is renamed over a file that another process may have open;
- `<physical>.lock`: each process holds a shared flock on it while it has the file open. A file that
  is neither live nor locked is unused, and only then removed (`remove_stale_versions`), with its
  write-ahead log and shared memory, under an exclusive lock.

A generation counter in each file, with the file's identity, tells a process when its in-memory
vector matrix is stale.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np

from search.backends.base import DocumentChunks, SearchBackend
from search.backends.embedded_memory import APPROXIMATE_FROM, MemoryIndex, epoch_bounds, top_k
from search.fusion import rank
from search.highlighting import highlight
from search.types import (
    Chunk,
    DocumentAcl,
    FusionConfig,
    IndexedDocument,
    IndexInfo,
    IndexModelMismatch,
    LegHit,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchUnavailable,
)
from search.versions import VersionInfo, title_family, title_key

logger = logging.getLogger("citewise.search.embedded")

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
    acl_status TEXT NOT NULL,
    effective_date TEXT,
    title_key TEXT NOT NULL DEFAULT '',
    title_family TEXT NOT NULL DEFAULT '',
    supersedes TEXT NOT NULL DEFAULT '[]'
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
-- A chunk's answer-unit vectors (search/unit_vectors.py), apart from the rows every search reads. Files made before
-- this table existed get it when next opened and keep serving without it: answering embeds what is not here.
CREATE TABLE IF NOT EXISTS chunk_unit_vectors (
    chunk_rowid INTEGER PRIMARY KEY REFERENCES chunks(rowid) ON DELETE CASCADE,
    vectors BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS chunk_identifiers (
    identifier TEXT NOT NULL,
    chunk_rowid INTEGER NOT NULL REFERENCES chunks(rowid) ON DELETE CASCADE,
    PRIMARY KEY (identifier, chunk_rowid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_identifiers_chunk ON chunk_identifiers(chunk_rowid);
CREATE TABLE IF NOT EXISTS document_supersedes (
    title_key TEXT NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    PRIMARY KEY (title_key, document_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_supersedes_document ON document_supersedes(document_id);
-- Counts writes that change what the in-memory index holds beyond ACLs (search/backends/embedded_memory.py), so a
-- permission sync does not make the next search re-read every chunk. Triggers, so that every writer counts them.
CREATE TRIGGER IF NOT EXISTS chunks_inserted AFTER INSERT ON chunks BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
CREATE TRIGGER IF NOT EXISTS chunks_deleted AFTER DELETE ON chunks BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
CREATE TRIGGER IF NOT EXISTS chunks_updated AFTER UPDATE ON chunks BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
CREATE TRIGGER IF NOT EXISTS documents_inserted AFTER INSERT ON documents BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
CREATE TRIGGER IF NOT EXISTS documents_deleted AFTER DELETE ON documents BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
CREATE TRIGGER IF NOT EXISTS documents_updated AFTER UPDATE OF document_id, source_id, mime_type, modified_at
ON documents BEGIN
    INSERT INTO meta(key, value) VALUES ('content_generation', '1')
    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
END;
"""
# Columns files made before versions were read lack; added when such a file is opened (their documents read as
# stating nothing until re-indexed, which the pipeline version bump does).
_ADDED_COLUMNS = {
    "effective_date": "TEXT",
    "title_key": "TEXT NOT NULL DEFAULT ''",
    "title_family": "TEXT NOT NULL DEFAULT ''",
    "supersedes": "TEXT NOT NULL DEFAULT '[]'",
}

# A document is readable iff its ACL status is ok and it is public or shares a principal with the asker.
# The principal subquery is uncorrelated, so SQLite evaluates it once per statement (an index probe per
# principal) rather than once per document: 10,000 principals stay cheap.
_VISIBLE_SQL = (
    "d.acl_status = 'ok' AND (d.acl_public = 1 OR d.document_id IN (SELECT p.document_id FROM "
    "document_principals p WHERE p.principal IN (SELECT value FROM json_each(?))))"
)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    def missing() -> list[str]:
        present = {row[1] for row in connection.execute("PRAGMA table_info(documents)")}
        return [name for name in _ADDED_COLUMNS if name not in present]

    if missing():
        connection.execute("BEGIN IMMEDIATE")  # another process may be adding them too: one at a time
        try:
            for name in missing():
                connection.execute(f"ALTER TABLE documents ADD COLUMN {name} {_ADDED_COLUMNS[name]}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    connection.execute("CREATE INDEX IF NOT EXISTS documents_family ON documents(title_family)")


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _remove_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _is_current(fd: int, lock: Path) -> bool:
    """Whether the lock we hold is on the file at `lock` still, not on one a collector unlinked meanwhile."""
    try:
        held, there = os.fstat(fd), os.stat(lock)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def _remove_if_unused(path: Path, still_stale: Callable[[], bool]) -> bool:
    """Delete a physical file and its sidecars if no process has it open (none holds its shared lock)."""
    lock = _lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a process still reads it: the next collection tries again
        # Another collector may have replaced the lock file, or the pointer moved to this file (a promote).
        if not _is_current(fd, lock) or not still_stale():
            return False
        _remove_files(path)
        lock.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


class _OpenFile:
    """A physical file this process has open: the shared lock tells collectors in every process so."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lock = _lock_path(path)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
            except BaseException:
                os.close(fd)
                raise
            if _is_current(fd, lock):
                break
            os.close(fd)  # a collector unlinked it while we waited: lock the file at that path now
        # Released when the last connection on it is gone (threads drop theirs when they see a new pointer).
        self._release = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._release()


@dataclass
class _ThreadState:
    handle: _OpenFile
    connection: sqlite3.Connection
    identity: tuple[str, int, int]  # path, device and inode: which physical file this connection reads


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, directory: str | Path, index_name: str, *, physical: str | None = None,
                 search_in_memory: bool = True, dense_search: str = "approximate",
                 approximate_from: int = APPROXIMATE_FROM) -> None:
        self.directory = Path(directory)
        self.index_name = index_name
        # A staging backend is pinned to its own physical file; the live one follows the pointer.
        self._pinned = physical
        self.pointer = self.directory / f"{index_name}.current"
        self._pointer_seen: tuple[tuple[int, int, int], str] | None = None
        self._files = re.compile(re.escape(index_name) + r"(?:\.v(\d+))?\.sqlite3")
        self._local = threading.local()
        self._open: dict[Path, weakref.ref[_OpenFile]] = {}
        self._open_lock = threading.Lock()
        self.search_in_memory = search_in_memory
        if dense_search not in ("approximate", "exact"):
            raise ValueError(f"dense_search must be 'approximate' or 'exact', not {dense_search!r}")
        # "approximate": the projected first pass of embedded_memory.py on large indexes; "exact": every vector.
        self.dense_search = dense_search
        self.approximate_from = approximate_from
        self._memory_lock = threading.Lock()
        # (what the arrays were read from, what their ACLs were read from, the arrays)
        self._memory: tuple[tuple, tuple, MemoryIndex] | None = None

    # -- files and connections ---------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The physical SQLite file that serves this index now."""
        return self._resolve()

    def _live_path(self) -> Path:
        try:
            stat = os.stat(self.pointer)
        except FileNotFoundError:
            return self.directory / f"{self.index_name}.sqlite3"
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        seen = self._pointer_seen
        if seen is not None and seen[0] == key:
            return self.directory / seen[1]
        try:
            target = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:  # dropped since the stat
            return self.directory / f"{self.index_name}.sqlite3"
        if not self._files.fullmatch(target):
            raise SearchUnavailable(f"{self.pointer} names {target!r}, which is not a file of index "
                                    f"{self.index_name!r}")
        self._pointer_seen = (key, target)
        return self.directory / target

    def _resolve(self) -> Path:
        return self.directory / self._pinned if self._pinned else self._live_path()

    def _handle(self, path: Path) -> _OpenFile:
        with self._open_lock:
            reference = self._open.get(path)
            handle = reference() if reference is not None else None
            if handle is None:
                handle = _OpenFile(path)
                self._open[path] = weakref.ref(handle)
            return handle

    def _state(self, *, create: bool = False) -> _ThreadState | None:
        """This thread's connection to the live file (reopened when the pointer moved); None if there is none."""
        for _ in range(10):
            path = self._resolve()
            state: _ThreadState | None = getattr(self._local, "state", None)
            if state is not None:
                if state.handle.path == path and path.exists():
                    return state
                state = None  # our own shared lock on the old file must go before we try to collect it
                self.drop_connection()
                if not self._pinned:
                    self._collect_quietly()  # the last process to leave a replaced file removes it
            if create:
                self.directory.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                return None
            handle = self._handle(path)
            # Locked first, checked second: a collector cannot remove what we hold, nor what is live.
            if self._resolve() != path or not (create or path.exists()):
                continue
            mode = "rwc" if create else "rw"  # a reader never creates an empty file where the index went
            connection = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, timeout=30,
                                         isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
                _add_missing_columns(connection)
                stat = os.stat(path)
            except BaseException:
                connection.close()
                raise
            state = _ThreadState(handle, connection, (str(path), stat.st_dev, stat.st_ino))
            self._local.state = state
            return state
        raise SearchUnavailable(f"the pointer of index {self.index_name!r} kept changing while opening it")

    def _connection(self, *, create: bool = False) -> sqlite3.Connection | None:
        state = self._state(create=create)
        return state.connection if state is not None else None

    def drop_connection(self) -> None:
        """Close this thread's connection (other threads close theirs when they next see the pointer move)."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is not None:
            self._local.state = None
            state.connection.close()

    close = drop_connection

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (IndexModelMismatch, SearchUnavailable):
            raise
        except (sqlite3.Error, OSError) as exc:  # unreadable, corrupt, missing or locked files
            raise SearchUnavailable(
                f"the embedded index {self.index_name!r} in {self.directory} failed to {action}: {exc}"
            ) from exc

    @contextmanager
    def _transaction(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        connection = self._connection(create=create)
        if connection is None:
            raise IndexModelMismatch(f"index {self.index_name!r} does not exist yet; ingest documents first")
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

    @staticmethod
    def _meta(connection: sqlite3.Connection) -> dict[str, str]:
        return dict(connection.execute("SELECT key, value FROM meta").fetchall())

    # -- index lifecycle ---------------------------------------------------------------------
    def ensure_index(self, embedding_model: str, dimensions: int) -> None:
        with self._errors("create the index"):
            with self._transaction(create=True) as connection:
                current = self._meta(connection)
                if "embedding_model" not in current:
                    connection.executemany(
                        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                        [("embedding_model", embedding_model), ("dimensions", str(dimensions)),
                         ("created_at", datetime.now(tz=UTC).isoformat()), ("file_id", uuid.uuid4().hex)],
                    )
                    return
            self._check_model(self._meta(connection), embedding_model)

    def _check_model(self, meta: dict[str, str], embedding_model: str) -> None:
        indexed = meta.get("embedding_model")
        if indexed is None:
            raise IndexModelMismatch(f"index {self.index_name!r} does not exist yet; ingest documents first")
        if indexed != embedding_model:
            raise IndexModelMismatch(
                f"index {self.index_name!r} holds vectors from {indexed!r}, not {embedding_model!r}; "
                "re-index with `manage.py reindex` instead of mixing models"
            )

    def index_info(self) -> IndexInfo | None:
        with self._errors("read index information"):
            state = self._state()
            if state is None:
                return None
            meta = self._meta(state.connection)
            if "embedding_model" not in meta:
                return None
            count = state.connection.execute("SELECT count(*) FROM chunks").fetchone()[0]
            return IndexInfo(meta["embedding_model"], int(meta["dimensions"]), count, str(state.handle.path))

    def _physical_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if self._files.fullmatch(p.name))

    def drop(self) -> None:
        with self._errors("drop the index"):
            self.drop_connection()
            self._memory = None
            if self._pinned:
                paths = [self.directory / self._pinned]
            else:
                self.pointer.unlink(missing_ok=True)
                paths = self._physical_files()
            for path in paths:
                _remove_files(path)
                _lock_path(path).unlink(missing_ok=True)

    def staging(self, embedding_model: str, dimensions: int) -> EmbeddedBackend:
        with self._errors("create a staging index"):
            self.directory.mkdir(parents=True, exist_ok=True)
            names = [p.name for p in self._physical_files()] + [self._live_path().name]
            version = max((int(m.group(1) or 0) for m in map(self._files.fullmatch, names) if m), default=0) + 1
            while True:  # O_EXCL: two rebuilds never fill the same file
                path = self.directory / f"{self.index_name}.v{version}.sqlite3"
                try:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                    break
                except FileExistsError:
                    version += 1
        staged = EmbeddedBackend(self.directory, self.index_name, physical=path.name,
                                 search_in_memory=self.search_in_memory, dense_search=self.dense_search,
                                 approximate_from=self.approximate_from)
        staged.ensure_index(embedding_model, dimensions)
        return staged

    def _check_staged(self, staged: SearchBackend) -> EmbeddedBackend:
        if not (isinstance(staged, EmbeddedBackend) and staged._pinned and staged.directory == self.directory
                and staged.index_name == self.index_name):
            raise ValueError(f"{staged!r} is not a staging index of {self.index_name!r}")
        return staged

    def _write_pointer(self, target: str) -> None:
        temporary = self.directory / f".{self.index_name}.current.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w", encoding="utf-8") as pointer:
            pointer.write(target + "\n")
            pointer.flush()
            os.fsync(pointer.fileno())
        os.replace(temporary, self.pointer)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def promote(self, staged: SearchBackend) -> None:
        staged = self._check_staged(staged)
        with self._errors("switch to the rebuilt index"):
            connection = staged._connection()
            if connection is None:
                raise SearchUnavailable(f"the staging file {staged._pinned} is gone")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # The pointer moves while the staged file is still held, so no collector can take it in between.
            self._write_pointer(staged._pinned or "")
            staged.close()
            self.drop_connection()
            self._memory = None
        self._collect_quietly()

    def discard(self, staged: SearchBackend) -> None:
        staged = self._check_staged(staged)
        with self._errors("delete an unused staging index"):
            staged.close()
            path = self.directory / (staged._pinned or "")
            _remove_if_unused(path, lambda: self._live_path() != path)

    def _is_not_live(self, path: Path) -> bool:
        return self._live_path() != path

    def remove_stale_versions(self) -> list[str]:
        with self._errors("delete stale index versions"):
            removed = []
            for path in self._physical_files():
                if path != self._live_path() and _remove_if_unused(path, functools.partial(self._is_not_live, path)):
                    removed.append(path.name)
            # Lock files whose database is gone (a reader that lost the race with a collector left one).
            for lock in self.directory.glob(f"{self.index_name}*.sqlite3.lock") if self.directory.is_dir() else ():
                database = lock.with_name(lock.name[: -len(".lock")])
                if self._files.fullmatch(database.name) and not database.exists():
                    _remove_if_unused(database, functools.partial(self._is_not_live, database))
        if removed:
            logger.info("removed unused files of index %s: %s", self.index_name, ", ".join(removed))
        return removed

    def _collect_quietly(self) -> None:
        try:
            self.remove_stale_versions()
        except SearchUnavailable as exc:  # collection is housekeeping: the next one tries again
            logger.warning("could not remove unused index files: %s", exc)

    # -- writes --------------------------------------------------------------------------------
    def replace_documents(self, batch: Sequence[DocumentChunks], *, embedding_model: str) -> None:
        with self._errors("index documents"):
            connection = self._connection()
            meta = self._meta(connection) if connection is not None else {}
            self._check_model(meta, embedding_model)
            dimensions = int(meta["dimensions"])
            with self._transaction() as connection:
                for item in batch:
                    if item.vectors.shape != (len(item.chunks), dimensions):
                        raise ValueError(f"expected {len(item.chunks)} vectors of {dimensions} dimensions")
                    self._delete(connection, [item.document.document_id])
                    self._insert_document(connection, item.document)
                    identifiers = item.identifiers or [()] * len(item.chunks)
                    units = item.unit_vectors or [b""] * len(item.chunks)
                    for chunk, vector, terms, named, unit_vectors in zip(
                            item.chunks, item.vectors, item.analyzed_texts, identifiers, units, strict=True):
                        cursor = connection.execute(
                            "INSERT INTO chunks(chunk_id, document_id, ordinal, heading_path, section_ordinal, "
                            "section_start, section_end, text, content_hash, vector) VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (chunk.chunk_id, chunk.document_id, chunk.ordinal, json.dumps(chunk.heading_path),
                             chunk.section_ordinal, chunk.section_start, chunk.section_end, chunk.text,
                             chunk.content_hash, np.asarray(vector, dtype="<f4").tobytes()),
                        )
                        connection.execute("INSERT INTO chunks_fts(rowid, terms) VALUES (?, ?)",
                                           (cursor.lastrowid, terms))
                        connection.executemany(
                            "INSERT OR IGNORE INTO chunk_identifiers(identifier, chunk_rowid) VALUES (?, ?)",
                            [(identifier, cursor.lastrowid) for identifier in named])
                        if unit_vectors:
                            connection.execute("INSERT INTO chunk_unit_vectors(chunk_rowid, vectors) VALUES (?, ?)",
                                               (cursor.lastrowid, unit_vectors))

    def _insert_document(self, connection: sqlite3.Connection, document: IndexedDocument) -> None:
        connection.execute(
            "INSERT INTO documents(document_id, source_id, title, url, mime_type, modified_at, acl_public, acl_status, "
            "effective_date, title_key, title_family, supersedes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (document.document_id, document.source_id, document.title, document.url, document.mime_type,
             _epoch(document.modified_at), int(document.acl.public), document.acl.status,
             document.effective_date.isoformat() if document.effective_date else None, title_key(document.title),
             title_family(document.title), json.dumps(list(document.supersedes))),
        )
        connection.executemany(
            "INSERT OR IGNORE INTO document_supersedes(title_key, document_id) VALUES (?, ?)",
            [(key, document.document_id) for key in document.supersedes],
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
        if not acls:
            return
        with self._errors("update document permissions"):
            if self._connection() is None:
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
        if not document_ids:
            return
        with self._errors("delete documents"):
            if self._connection() is None:
                return  # no index, nothing in it
            with self._transaction() as connection:
                self._delete(connection, document_ids)

    def document_ids(self, *, source_ids: Sequence[str] | None = None) -> set[str]:
        return {i for page in self.document_id_pages(source_ids=source_ids) for i in page}

    def document_id_pages(
        self, *, source_ids: Sequence[str] | None = None, page_size: int = 1000
    ) -> Iterator[list[str]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        with self._errors("list documents"):
            if source_ids is not None and not source_ids:
                return
            where, params = "document_id > ?", []
            if source_ids is not None:
                where += " AND source_id IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(list(source_ids)))
            after = ""  # every id sorts after the empty string
            while True:
                # One statement per page, none left open across a yield: the caller may write in between.
                connection = self._connection()
                if connection is None:
                    return
                page = [row[0] for row in connection.execute(
                    f"SELECT document_id FROM documents WHERE {where} ORDER BY document_id LIMIT ?",
                    [after, *params, page_size],
                )]
                if not page:
                    return
                yield page
                after = page[-1]

    def source_ids(self) -> set[str]:
        with self._errors("list sources"):
            connection = self._connection()
            if connection is None:
                return set()
            return {row[0] for row in connection.execute("SELECT DISTINCT source_id FROM documents")}

    # -- reads ---------------------------------------------------------------------------------
    def _filter_sql(self, principals: frozenset[str], filters: SearchFilters, *,
                    acl: bool = True) -> tuple[str, list[str | float | None]]:
        """The asker's filter as SQL over documents `d`; without its ACL part when `acl` is off."""
        clauses = [_VISIBLE_SQL] if acl else ["1"]
        params: list[str | float | None] = [json.dumps(sorted(principals))] if acl else []
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

    # The SQL legs: the reference the in-memory legs (embedded_memory.py) answer like, run when
    # search_in_memory is off.
    def _bm25(self, connection: sqlite3.Connection, analyzed_query: str, where: str, params: list,
              limit: int) -> list[LegHit]:
        terms = sorted(set(analyzed_query.split()))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = connection.execute(
            "SELECT c.chunk_id, bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
            f"JOIN documents d ON d.document_id = c.document_id WHERE chunks_fts MATCH ? AND {where} "
            "ORDER BY s, c.chunk_id LIMIT ?",
            [match, *params, limit],
        ).fetchall()
        # FTS5's bm25() is negated so that smaller is better; flip it back to BM25's sign.
        return [LegHit(chunk_id, -score) for chunk_id, score in rows]

    def _exact(self, connection: sqlite3.Connection, identifiers: Sequence[str], where: str, params: list,
               limit: int) -> list[LegHit]:
        if not identifiers:
            return []
        rows = connection.execute(
            "SELECT c.chunk_id, count(*) AS named FROM chunk_identifiers i JOIN chunks c ON c.rowid = i.chunk_rowid "
            "JOIN documents d ON d.document_id = c.document_id WHERE i.identifier IN (SELECT value FROM json_each(?)) "
            f"AND {where} GROUP BY c.chunk_id ORDER BY named DESC, c.chunk_id LIMIT ?",
            [json.dumps(sorted(set(identifiers))), *params, limit],
        ).fetchall()
        return [LegHit(chunk_id, float(named)) for chunk_id, named in rows]

    def _memory_index(self, state: _ThreadState) -> MemoryIndex:
        """The in-memory index of the file's current generation, built by the first search that needs it; after a
        write that changed ACLs alone (content_generation unchanged), only the ACL arrays are read again."""
        def keys_of(meta: dict[str, str]) -> tuple[tuple, tuple]:
            # Generations count writes within one file; two files can share a number, never an identity.
            file = (state.identity, meta.get("file_id") or meta.get("created_at"))
            return (*file, meta.get("content_generation")), (*file, int(meta.get("generation") or 0))

        cached = self._memory
        if cached is not None and cached[1] == keys_of(self._meta(state.connection))[1]:
            return cached[2]
        with self._memory_lock:
            connection = state.connection
            connection.execute("BEGIN")  # one snapshot: the generation read is the one the arrays are built from
            try:
                meta = self._meta(connection)
                content, generation = keys_of(meta)
                cached = self._memory
                if cached is None or cached[1] != generation:
                    if cached is not None and cached[0] == content:
                        index = cached[2].with_acls(connection)
                    else:
                        self._memory = None  # the old arrays go before the new ones are built, not after
                        try:
                            index = MemoryIndex.load(connection, int(meta.get("dimensions") or 0),
                                                     approximate=self.dense_search == "approximate",
                                                     approximate_from=self.approximate_from)
                        except ValueError as exc:
                            raise SearchUnavailable(f"the embedded index {self.index_name!r} holds malformed "
                                                    f"vectors: {exc}") from exc
                    self._memory = (content, generation, index)
                else:
                    index = cached[2]
                return index
            finally:
                connection.execute("COMMIT")

    def _dense(self, state: _ThreadState, query_vector: np.ndarray, where: str, params: list,
               limit: int) -> list[LegHit]:
        index = self._memory_index(state)
        if not index.size:
            return []
        scores = index.matrix @ np.asarray(query_vector, dtype=np.float32)
        allowed = np.fromiter(
            (r[0] for r in state.connection.execute(
                f"SELECT c.rowid FROM chunks c JOIN documents d ON d.document_id = c.document_id WHERE {where}",
                params)),
            dtype=np.int64,
        )
        # Forbidden chunks are removed before ranking: a pre-filter, as in Elasticsearch's kNN.
        candidates = np.flatnonzero(np.isin(index.rowids, allowed))
        top = top_k(candidates, scores, np.arange(len(scores)), limit)
        return [LegHit(index.chunk_ids[i], float(scores[i])) for i in top]

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
        with self._errors("search"):
            state = self._state()
            if state is None:
                return []
            connection = state.connection
            meta = self._meta(connection)
            if "embedding_model" not in meta:
                return []
            if mode != SearchMode.BM25:
                self._check_model(meta, embedding_model)
                if query_vector is None:
                    raise ValueError("dense and hybrid search need a query vector")
            depth = max(limit, fusion.candidates_per_leg)
            if self.search_in_memory:
                legs = self._memory_legs(state, principals, filters, analyzed_query, query_vector, mode, identifiers,
                                         depth)
            else:
                legs = self._sql_legs(state, principals, filters, analyzed_query, query_vector, mode, identifiers,
                                      depth)
            bm25, dense, exact = legs
            return self._hydrate(connection, rank(mode, bm25, dense, fusion, exact)[:limit], query, principals,
                                 filters, with_unit_vectors)

    def _memory_legs(self, state: _ThreadState, principals: frozenset[str], filters: SearchFilters,
                     analyzed_query: str, query_vector: np.ndarray | None, mode: SearchMode,
                     identifiers: Sequence[str], depth: int) -> tuple[list[LegHit], list[LegHit], list[LegHit]]:
        index = self._memory_index(state)
        visible = index.visible(principals, filters, epoch_bounds(filters))
        bm25 = index.bm25(analyzed_query.split(), visible, depth) if mode != SearchMode.DENSE else []
        dense = index.dense(query_vector, visible, depth) if query_vector is not None and mode != SearchMode.BM25 \
            else []
        exact = index.exact(identifiers, visible, depth) if mode == SearchMode.HYBRID and identifiers else []
        return bm25, dense, exact

    def _sql_legs(self, state: _ThreadState, principals: frozenset[str], filters: SearchFilters,
                  analyzed_query: str, query_vector: np.ndarray | None, mode: SearchMode,
                  identifiers: Sequence[str], depth: int) -> tuple[list[LegHit], list[LegHit], list[LegHit]]:
        connection = state.connection
        where, params = self._filter_sql(principals, filters)
        if mode == SearchMode.HYBRID:
            # Evaluate the asker's filter once and let the legs read the result.
            connection.execute("CREATE TEMP TABLE IF NOT EXISTS visible_chunks (rowid INTEGER PRIMARY KEY)")
            connection.execute("DELETE FROM temp.visible_chunks")
            connection.execute("INSERT INTO temp.visible_chunks SELECT c.rowid FROM chunks c JOIN documents d "
                               f"ON d.document_id = c.document_id WHERE {where}", params)
            where, params = "c.rowid IN (SELECT rowid FROM temp.visible_chunks)", []
        bm25 = self._bm25(connection, analyzed_query, where, params, depth) if mode != SearchMode.DENSE else []
        dense = self._dense(state, query_vector, where, params, depth) if query_vector is not None and \
            mode != SearchMode.BM25 else []
        exact = self._exact(connection, identifiers, where, params, depth) if mode == SearchMode.HYBRID else []
        return bm25, dense, exact

    def _hydrate(self, connection: sqlite3.Connection, fused: list, query: str, principals: frozenset[str],
                 filters: SearchFilters, with_unit_vectors: bool) -> list[SearchHit]:
        if not fused:
            return []
        ids = json.dumps([h.chunk_id for h in fused])
        units_column, units_join = (("u.vectors", "LEFT JOIN chunk_unit_vectors u ON u.chunk_rowid = c.rowid ")
                                    if with_unit_vectors else ("NULL", ""))
        where, params = self._filter_sql(principals, filters, acl=False)
        # The asker's filter again: a document deleted or made unreadable since the legs ran is dropped here. The
        # ACL is read with the row, in the same statement, and checked here: SQL would match the asker's principals
        # against the documents' (10,000 principals cost 40-90 ms, however few the hits).
        rows = {
            row[0]: row
            for row in connection.execute(
                "SELECT c.chunk_id, c.document_id, d.source_id, d.title, d.url, d.mime_type, d.modified_at, "
                f"c.heading_path, c.section_ordinal, c.text, d.effective_date, {units_column}, d.acl_status, "
                "d.acl_public, (SELECT json_group_array(p.principal) FROM document_principals p "
                "WHERE p.document_id = d.document_id) FROM chunks c "
                f"JOIN documents d ON d.document_id = c.document_id {units_join}"
                f"WHERE c.chunk_id IN (SELECT value FROM json_each(?)) AND {where}",
                [ids, *params],
            )
        }
        hits = []
        for fused_hit in fused:
            row = rows.get(fused_hit.chunk_id)
            if row is None or row[12] != "ok" or not (row[13] or principals.intersection(json.loads(row[14]))):
                continue
            hits.append(SearchHit(
                chunk_id=row[0], document_id=row[1], source_id=row[2], title=row[3], url=row[4], mime_type=row[5],
                modified_at=datetime.fromtimestamp(row[6], tz=UTC) if row[6] is not None else None,
                heading_path=tuple(json.loads(row[7])), section_ordinal=row[8], text=row[9],
                score=fused_hit.score, bm25_rank=fused_hit.bm25_rank, dense_rank=fused_hit.dense_rank,
                highlight=highlight(row[9], query), effective_date=date.fromisoformat(row[10]) if row[10] else None,
                unit_vectors=bytes(row[11] or b""),
            ))
        return hits

    def get_document(self, document_id: str, principals: frozenset[str]) -> IndexedDocument | None:
        with self._errors("read a document"):
            connection = self._connection()
            if connection is None:
                return None
            # One statement, one snapshot: the ACL checked is the ACL returned. A document counts once it has
            # chunks, as in Elasticsearch, where a document is nothing but its chunks.
            row = connection.execute(
                "SELECT d.document_id, d.source_id, d.title, d.url, d.mime_type, d.modified_at, d.acl_public, "
                "d.acl_status, (SELECT json_group_array(p.principal) FROM document_principals p "
                "WHERE p.document_id = d.document_id), d.effective_date, d.supersedes FROM documents d "
                "WHERE d.document_id = ? AND "
                f"{_VISIBLE_SQL} AND EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.document_id)",
                (document_id, json.dumps(sorted(principals))),
            ).fetchone()
            if row is None:
                return None
            return IndexedDocument(
                document_id=row[0], source_id=row[1], title=row[2], url=row[3], mime_type=row[4],
                modified_at=datetime.fromtimestamp(row[5], tz=UTC) if row[5] is not None else None,
                acl=DocumentAcl(principals=frozenset(json.loads(row[8])), public=bool(row[6]), status=row[7]),
                effective_date=date.fromisoformat(row[9]) if row[9] else None,
                supersedes=tuple(json.loads(row[10] or "[]")),
            )

    def version_candidates(
        self, *, title_keys: Sequence[str], families: Sequence[str], principals: frozenset[str], limit: int = 100,
    ) -> list[VersionInfo]:
        if not title_keys and not families:
            return []
        with self._errors("read document versions"):
            connection = self._connection()
            if connection is None:
                return []
            rows = connection.execute(
                "SELECT d.document_id, d.title, d.effective_date, d.supersedes FROM documents d WHERE "
                "(d.document_id IN (SELECT s.document_id FROM document_supersedes s WHERE s.title_key IN "
                "(SELECT value FROM json_each(?))) OR (d.title_family IN (SELECT value FROM json_each(?)) AND "
                f"d.effective_date IS NOT NULL)) AND {_VISIBLE_SQL} AND EXISTS (SELECT 1 FROM chunks c "
                "WHERE c.document_id = d.document_id) ORDER BY d.document_id LIMIT ?",
                (json.dumps(sorted(set(title_keys))), json.dumps(sorted(set(families))),
                 json.dumps(sorted(principals)), limit),
            ).fetchall()
            return [VersionInfo(row[0], row[1], date.fromisoformat(row[2]) if row[2] else None,
                                tuple(json.loads(row[3] or "[]"))) for row in rows]

    def chunk_texts(self, *, page_size: int = 500) -> Iterator[list[tuple[str, DocumentAcl]]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        with self._errors("read chunk texts"):
            after = 0  # rowids start at 1
            while True:
                # One statement per page, none left open across a yield, as in document_id_pages.
                connection = self._connection()
                if connection is None:
                    return
                rows = connection.execute(
                    "SELECT c.rowid, c.text, d.acl_public, d.acl_status, (SELECT json_group_array(p.principal) "
                    "FROM document_principals p WHERE p.document_id = d.document_id) FROM chunks c JOIN documents d "
                    "ON d.document_id = c.document_id WHERE c.rowid > ? ORDER BY c.rowid LIMIT ?",
                    (after, page_size),
                ).fetchall()
                if not rows:
                    return
                yield [(row[1], DocumentAcl(principals=frozenset(json.loads(row[4])), public=bool(row[2]),
                                            status=row[3])) for row in rows]
                after = rows[-1][0]

    def document_chunks(self, document_id: str, *, principals: frozenset[str], limit: int = 5000) -> list[Chunk]:
        with self._errors("read a document's chunks"):
            connection = self._connection()
            if connection is None:
                return []
            rows = connection.execute(
                "SELECT c.chunk_id, c.ordinal, c.text, c.heading_path, c.section_ordinal, c.section_start, "
                "c.section_end, c.content_hash FROM chunks c JOIN documents d ON d.document_id = c.document_id "
                f"WHERE c.document_id = ? AND {_VISIBLE_SQL} ORDER BY c.ordinal LIMIT ?",
                (document_id, json.dumps(sorted(principals)), limit),
            ).fetchall()
            return [Chunk(chunk_id=row[0], document_id=document_id, ordinal=row[1], text=row[2],
                          heading_path=tuple(json.loads(row[3])), section_ordinal=row[4], section_start=row[5],
                          section_end=row[6], content_hash=row[7]) for row in rows]

    def section_chunks(
        self, document_id: str, section_ordinal: int, *, principals: frozenset[str]
    ) -> list[tuple[str, int, int]]:
        with self._errors("read a section"):
            connection = self._connection()
            if connection is None:
                return []
            rows = connection.execute(
                "SELECT c.text, c.section_start, c.section_end FROM chunks c JOIN documents d "
                f"ON d.document_id = c.document_id WHERE c.document_id = ? AND c.section_ordinal = ? AND "
                f"{_VISIBLE_SQL} ORDER BY c.ordinal",
                (document_id, section_ordinal, json.dumps(sorted(principals))),
            ).fetchall()
            return [tuple(r) for r in rows]
