"""Ingestion: read a source through its connector, parse, and hand documents to the search index."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from tqdm import tqdm

from connectors import secrets as secret_store
from connectors.base import (
    Connector,
    IncompleteListing,
    ItemError,
    Permissions,
    SourceItem,
    group_source,
    id_lister,
    loader,
    permission_source,
    remembered_state,
)
from connectors.models import Document, Source, document_id_for
from connectors.parsing import ParsedDocument, ParseError, clean_text, parse
from connectors.sources import connector_for, validated_config
from core.config import CitewiseSettings, current
from core.errors import InvalidInput
from identity import services as identity_services
from retrieval import services as retrieval_services
from retrieval.embeddings import get_embedder
from search.backends import SearchBackend
from search.types import DocumentAcl, IndexedDocument, SearchUnavailable
from search.versions import stated_version

logger = logging.getLogger("citewise.connectors")
# Documents per index call when deleting in bulk: a bounded request (Elasticsearch refuses terms queries of
# more than 65,536 ids) and a bounded list in memory, however large the source.
INDEX_PAGE_SIZE = 1000
_T = TypeVar("_T")


@dataclass
class IngestReport:
    source: str
    seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    deleted: int = 0
    chunks: int = 0
    embedded: int = 0
    embedding_cache_hits: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    # False when part of the source could not be listed (errors say where); nothing is pruned then.
    listing_complete: bool = True

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def ensure_source(
    kind: str, location: str | Path, *, name: str | None = None, index_name: str = "", search_backend: str = "",
    config: dict | None = None, secrets: dict[str, str] | None = None,
) -> Source:
    """The source of this kind at this location, created if new; `config` and `secrets` (credentials, stored
    encrypted) replace what it had when given."""
    check_config(config or {})
    validated_config(kind, config or {})
    location = str(Path(location).resolve()) if kind in ("filesystem", "beir") else str(location)
    source, created = Source.objects.get_or_create(
        kind=kind, location=location, index_name=index_name, search_backend=search_backend,
        defaults={"name": name or f"{kind}:{location}", "config": config or {}},
    )
    if not created and config is not None and source.config != config:
        source.config = config
        source.save(update_fields=["config"])
    if secrets is not None:
        set_source_secrets(source, secrets)
    return source


# Keys that name a credential: they belong in a source's secrets, which are encrypted, not in its config.
SECRET_KEYS = frozenset({"api_token", "token", "password", "client_secret", "secret", "api_key", "private_key"})


def check_config(config: dict) -> None:
    """Refuse a source config that holds a credential (it would be stored and shown in clear)."""
    found = sorted(SECRET_KEYS & set(config))
    if found:
        raise InvalidInput(f"{', '.join(found)} is a credential: give it as the source's secrets, which are stored "
                           f"encrypted, not in its config")


def check_secrets(secrets: object) -> None:
    """Refuse credentials that are not a mapping of names to strings."""
    if not isinstance(secrets, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()):
        raise InvalidInput("credentials must be a JSON object of names to strings")


def set_source_secrets(source: Source, secrets: dict[str, str]) -> None:
    """Store the source's credentials, encrypted with the newest CITEWISE_ENCRYPTION_KEY ({} removes them)."""
    check_secrets(secrets)
    source.encrypted_secrets = secret_store.encrypt(secrets) if secrets else ""
    source.save(update_fields=["encrypted_secrets"])


def rotate_secrets() -> int:
    """Re-encrypt every source's credentials with the newest key; the number of sources rewritten."""
    rotated = 0
    with transaction.atomic():
        for source in Source.objects.select_for_update().exclude(encrypted_secrets=""):
            source.encrypted_secrets = secret_store.rotate(source.encrypted_secrets)
            source.save(update_fields=["encrypted_secrets"])
            rotated += 1
    return rotated


def acl_hash(permissions: Permissions) -> str:
    payload = json.dumps([sorted(permissions.principals), permissions.public, permissions.status])
    return hashlib.sha256(payload.encode()).hexdigest()


def _fetch_permissions(connector: Connector, external_id: str) -> Permissions:
    try:
        permissions = permission_source(connector).fetch_permissions(external_id)
    except Exception:
        logger.exception("fetching permissions failed for %s", external_id)
        return Permissions(status="error")
    if permissions.reason:
        logger.warning("permissions of %s are %s (visible to nobody): %s", external_id, permissions.status,
                       permissions.reason)
    return permissions


def _apply_acl(document: Document, permissions: Permissions) -> None:
    document.acl_principals = sorted(permissions.principals)
    document.acl_public = permissions.public
    document.acl_status = permissions.status
    document.acl_hash = acl_hash(permissions)


def _acl(permissions: Permissions) -> DocumentAcl:
    return DocumentAcl(principals=permissions.principals, public=permissions.public, status=permissions.status)


def _read(item: SourceItem, max_bytes: int) -> bytes:
    if item.size_bytes > max_bytes:
        raise ParseError("too_large", f"the file is {item.size_bytes:,} bytes; the limit is {max_bytes:,}")
    try:
        return item.read()
    except OSError as exc:
        raise ParseError("unreadable", f"the file could not be read: {exc}") from exc


def _listed(listing: Iterable[_T]) -> tuple[list[_T], list[tuple[str, str]]]:
    """Everything a connector listed, and where it could not list: (where, "code: message") pairs.

    SourceUnavailable (nothing could be listed) propagates, so the caller stops before changing anything.
    """
    listed: list[_T] = []
    try:
        for entry in listing:
            listed.append(entry)
    except IncompleteListing as exc:
        return listed, exc.problems
    return listed, []


class SyncInProgress(Exception):
    """Another content sync of the source holds its lease, so this one did nothing (or stopped)."""


@dataclass
class _Lease:
    """One content sync's hold on a source; renewed as the sync goes, released when it ends."""

    source_id: int
    owner: str
    ttl: timedelta
    renewed: float = field(default_factory=time.monotonic)

    def keep(self) -> None:
        """Renew once a third of the lease has passed; SyncInProgress if another sync took it over meanwhile."""
        if time.monotonic() - self.renewed < self.ttl.total_seconds() / 3:
            return
        if not Source.objects.filter(pk=self.source_id, sync_lease_owner=self.owner).update(
                sync_lease_expires_at=timezone.now() + self.ttl):
            raise SyncInProgress(f"source {self.source_id}: this sync went longer than CITEWISE_SYNC_LEASE_S "
                                 f"without renewing its lease and another sync took over; this one stopped")
        self.renewed = time.monotonic()

    def release(self) -> None:
        Source.objects.filter(pk=self.source_id, sync_lease_owner=self.owner).update(
            sync_lease_owner="", sync_lease_expires_at=None)


def _holder_is_gone(holder: str) -> bool:
    """Whether a lease holder ("host:pid:token") was a process on this machine that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def _take_lease(source: Source, config: CitewiseSettings | None = None) -> _Lease:
    """Hold the source for one content sync, or raise SyncInProgress.

    A conditional UPDATE takes the lease only where it is free or expired, so two workers can never both
    win, on SQLite or PostgreSQL. A holder that was killed on this machine is not waited out; one on
    another machine is, until its lease expires.
    """
    ttl = timedelta(seconds=(config or current()).sync_lease_s)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    now = timezone.now()
    claim = {"sync_lease_owner": owner, "sync_lease_expires_at": now + ttl}
    rows = Source.objects.filter(pk=source.pk)
    if rows.filter(Q(sync_lease_owner="") | Q(sync_lease_expires_at__lt=now)).update(**claim):
        return _Lease(source.pk, owner, ttl)
    holder, until = rows.values_list("sync_lease_owner", "sync_lease_expires_at").get()
    if _holder_is_gone(holder) and rows.filter(sync_lease_owner=holder).update(**claim):
        logger.warning("sync lease of %s taken over from %s, whose process is gone", source.name, holder)
        return _Lease(source.pk, owner, ttl)
    raise SyncInProgress(f"{source.name}: another sync of this source is running ({holder}, lease until "
                         f"{until:%Y-%m-%d %H:%M:%S} UTC); this one was skipped")


def sync_source(
    source: Source, *, progress: bool = False, prune: bool = True, backend: SearchBackend | None = None,
    force: bool = False, config: CitewiseSettings | None = None,
) -> IngestReport:
    """Bring the index in line with the source: new and changed items indexed, removed ones deleted.

    One content sync per source runs at a time: a second raises SyncInProgress and changes nothing.
    A source that cannot be listed at all raises SourceUnavailable before anything changes; one listed
    only in part is synced for what was listed and nothing is pruned (report.listing_complete is False).
    A file that cannot be parsed gets its error recorded and the run goes on. If the search
    index is unreachable the run stops with SearchUnavailable and nothing is marked indexed,
    so the next run retries the same documents. `force` re-indexes unchanged documents too, into
    `backend` when given (a staging index during a rebuild).

    Only the fields a content sync owns are saved: a permission sync may write ACLs meanwhile. `config` (default: the
    settings in force) sets the limits, chunking and embedding model of this run.
    """
    config = config or current()
    lease = _take_lease(source, config)
    try:
        return _sync_source(source, lease, progress=progress, prune=prune, backend=backend, force=force, config=config)
    finally:
        lease.release()


@dataclass
class _Pending:
    document: Document
    to_index: retrieval_services.DocumentToIndex
    content_hash: str
    permissions: Permissions
    # The ACL hash the document had when this sync loaded it; another value later means a permission sync wrote.
    acl_hash_seen: str


def _sync_source(
    source: Source, lease: _Lease, *, progress: bool, prune: bool, backend: SearchBackend | None, force: bool,
    config: CitewiseSettings,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport(source=source.name)
    connector = connector_for(source)
    backend = backend or retrieval_services.get_backend(source.index_name or None, source.search_backend or None)
    # Settings alone decide whether stored chunks are current; the model loads only if something is indexed.
    model_name = config.embedding_model
    pipeline = retrieval_services.pipeline_signature(config)
    max_bytes = config.max_file_bytes
    batch_size = config.ingest_batch_documents
    existing = {d.external_id: d for d in Document.objects.filter(source=source)}
    items, listing_problems = _listed(item for item in loader(connector).load() if isinstance(item, SourceItem))
    report.seen = len(items)
    report.listing_complete = not listing_problems
    report.errors.extend(listing_problems)
    seen_ids: set[str] = set()
    bar = tqdm(total=len(items), desc=f"ingest {source.name}", unit="doc", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(items), batch_size):
        pending: list[_Pending] = []
        for item in items[start:start + batch_size]:
            lease.keep()
            seen_ids.add(item.external_id)
            document = existing.get(item.external_id) or Document(
                id=document_id_for(source.id, item.external_id), source=source, external_id=item.external_id,
            )
            document.url, document.mime_type, document.size_bytes = item.url, item.mime_type, item.size_bytes
            document.source_modified_at = item.modified_at
            try:
                content = _read(item, max_bytes)
                content_hash = hashlib.sha256(content).hexdigest()
                document.content_hash = content_hash
                if (not force and document.status == Document.Status.INDEXED and document.indexed_hash == content_hash
                        and document.indexed_pipeline == pipeline):
                    report.unchanged += 1
                    continue
                if document.parsing_hash == content_hash:
                    raise ItemError(WORKER_STOPPED, "the worker stopped while reading this file (killed, or out of "
                                    "memory); it is skipped until the file changes")
                _mark_parsing(document, content_hash, clean_text(item.title))
                parsed = parse(content, item.mime_type, max_bytes=max_bytes, max_chars=config.max_extracted_chars,
                               max_uncompressed_bytes=config.max_uncompressed_bytes,
                               max_compression_ratio=config.max_compression_ratio)
                _clear_parsing(document)
            except ItemError as exc:
                if exc.withdraw:
                    _withdraw(document, backend)
                if exc.code != WORKER_STOPPED:
                    document.parsing_hash = ""
                _record_failure(document, str(exc), report)
                continue
            except Exception as exc:  # a parser library's own bug must not stop the run
                logger.exception("parser crashed on %s", item.external_id)
                document.parsing_hash = ""
                _record_failure(document, f"parse_failed: {exc.__class__.__name__}: {exc}", report)
                continue
            document.title = _title(parsed, item)[:500]
            document.effective_date, supersedes = stated_version(
                document.title, "\n\n".join(section.text for section in parsed.sections))
            document.supersedes = list(supersedes)
            permissions = _fetch_permissions(connector, item.external_id)
            indexed = IndexedDocument(
                document_id=document.id, source_id=str(source.id), title=document.title, url=item.url,
                mime_type=item.mime_type, modified_at=item.modified_at, acl=_acl(permissions),
                effective_date=document.effective_date, supersedes=supersedes,
            )
            pending.append(_Pending(document, retrieval_services.DocumentToIndex(indexed, parsed.sections),
                                    content_hash, permissions, document.acl_hash))
        if pending:
            lease.keep()
            stats = retrieval_services.index_documents(
                [p.to_index for p in pending], backend=backend,
                max_chunks_per_document=config.max_chunks_per_document, config=config)
            for entry in pending:
                if entry.document.id in stats.rejected:
                    _record_failure(entry.document, stats.rejected[entry.document.id], report)
            pending = [p for p in pending if p.document.id not in stats.rejected]
            report.chunks += stats.chunks
            report.embedded += stats.embedded
            report.embedding_cache_hits += stats.embedding_cache_hits
            for stage, seconds in stats.seconds.items():
                report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
            if pending:
                _record_indexed(pending, model_name, pipeline, stats.chunks_per_document, backend)
                report.indexed += len(pending)
        bar.update(len(items[start:start + batch_size]))
    bar.close()
    if report.listing_complete:
        state = remembered_state(connector)
        if state != source.sync_state:
            source.sync_state = state
            source.save(update_fields=["sync_state"])
    if prune and report.listing_complete:
        report.deleted = prune_missing(source, seen_ids, backend=backend)
    elif prune:
        logger.warning("prune skipped for %s: the source could not be listed completely (%s)", source.name,
                       "; ".join(f"{where}: {message}" for where, message in listing_problems))
    source.last_synced_at = timezone.now()
    source.save(update_fields=["last_synced_at"])
    report.seconds = time.perf_counter() - started
    logger.info(
        "ingest finished source=%s seen=%d indexed=%d unchanged=%d failed=%d deleted=%d chunks=%d embedded=%d "
        "cache_hits=%d seconds=%.2f", report.source, report.seen, report.indexed, report.unchanged, report.failed,
        report.deleted, report.chunks, report.embedded, report.embedding_cache_hits, report.seconds,
    )
    return report


WORKER_STOPPED = "worker_stopped"


def _title(parsed: ParsedDocument, item: SourceItem) -> str:
    """The document's own title; else the source's (a file name only beats no title at all)."""
    if parsed.title and (not parsed.title_inferred or item.title_from_name or not item.title):
        return parsed.title
    return clean_text(item.title)


def _mark_parsing(document: Document, content_hash: str, title: str) -> None:
    """Note durably, before parsing, which bytes are being parsed: if the worker dies on them, the next sync knows."""
    document.parsing_hash = content_hash
    if document._state.adding:  # a new document's row is made now, pending and without chunks or ACL
        document.title = title[:500]
        document.save(force_insert=True)
    else:
        document.save(update_fields=["parsing_hash"])


def _clear_parsing(document: Document) -> None:
    # Parsing is done; a death while embedding the batch is not this file's fault.
    document.parsing_hash = ""
    Document.objects.filter(pk=document.pk).update(parsing_hash="")


def _withdraw(document: Document, backend: SearchBackend) -> None:
    """Take a document's chunks out of the index: what it held was never the source's to show."""
    if document.indexed_hash or document.chunk_count:
        retrieval_services.delete_documents([document.id], backend=backend, source_ids=[document.source_id])
    document.indexed_hash = document.embedding_model = document.indexed_pipeline = ""
    document.chunk_count = 0
    document.indexed_at = None


# What a content sync writes to a document it has seen before. The ACL fields belong to permission syncs
# (and to _record_indexed's conditional write): saving them here would undo a permission sync that ran meanwhile.
_CONTENT_FIELDS = ["title", "url", "mime_type", "size_bytes", "content_hash", "indexed_hash", "embedding_model",
                   "indexed_pipeline", "chunk_count", "source_modified_at", "indexed_at", "status", "error",
                   "parsing_hash", "effective_date", "supersedes"]


def _save_content(document: Document) -> None:
    if document._state.adding:
        document.save(force_insert=True)
    else:
        document.save(update_fields=_CONTENT_FIELDS)


def _record_failure(document: Document, message: str, report: IngestReport) -> None:
    # A document indexed before keeps its last good chunks (indexed_hash); the error says why they are stale.
    document.status = Document.Status.ERROR
    document.error = message
    if not document.title:
        document.title = Path(document.external_id).name
    _save_content(document)
    report.failed += 1
    report.errors.append((document.external_id, message))


def _record_indexed(
    pending: Sequence[_Pending], model_name: str, pipeline: str, chunk_counts: dict[str, int], backend: SearchBackend,
) -> None:
    now = timezone.now()
    overtaken: list[str] = []
    with transaction.atomic():
        for entry in pending:
            document = entry.document
            document.status = Document.Status.INDEXED
            document.indexed_hash = entry.content_hash
            document.embedding_model = model_name
            document.indexed_pipeline = pipeline
            document.indexed_at = now
            document.error = ""
            document.chunk_count = chunk_counts.get(document.id, 0)
            _save_content(document)
            # The chunks were written with the ACL fetched above; record it unless a permission sync wrote
            # one since this sync loaded the document.
            _apply_acl(document, entry.permissions)
            if not Document.objects.filter(pk=document.pk, acl_hash=entry.acl_hash_seen).update(
                    acl_principals=document.acl_principals, acl_public=document.acl_public,
                    acl_status=document.acl_status, acl_hash=document.acl_hash):
                overtaken.append(document.pk)
    if overtaken:
        # The permission sync's ACL is the one on record; the chunks just written must carry it too.
        current = Document.objects.filter(pk__in=overtaken).values_list("id", "acl_principals", "acl_public",
                                                                       "acl_status")
        retrieval_services.update_acls(
            [(document_id, DocumentAcl(principals=frozenset(principals), public=public, status=status))
             for document_id, principals, public, status in current], backend=backend)
        logger.info("kept the ACL a permission sync wrote meanwhile for %d documents", len(overtaken))


def source_backend(source: Source) -> SearchBackend:
    """The live index a source's documents are searched in."""
    return retrieval_services.get_backend(source.index_name or None, source.search_backend or None)


# Set on a Document queryset whose documents have already left the index, so that deleting its rows does not
# ask the index again for each one (connectors/signals.py).
REMOVED_FROM_INDEX = "_citewise_removed_from_index"


def _delete_rows(document_ids: Sequence[str]) -> int:
    rows = Document.objects.filter(id__in=list(document_ids))
    setattr(rows, REMOVED_FROM_INDEX, True)
    return rows.delete()[1].get(Document._meta.label, 0)


def remove_documents_from_index(documents: Iterable[Document]) -> int:
    """Delete documents from their sources' live indexes; SearchUnavailable unless every index confirms."""
    by_backend: dict[SearchBackend, list[Document]] = {}
    sources: dict[int, Source] = {}
    for document in documents:
        source = sources.setdefault(document.source_id, document.source)
        by_backend.setdefault(source_backend(source), []).append(document)
    for backend, listed in by_backend.items():
        retrieval_services.delete_documents([d.id for d in listed], backend=backend,
                                            source_ids=sorted({d.source_id for d in listed}))
    return sum(len(listed) for listed in by_backend.values())


def delete_documents(documents: QuerySet[Document]) -> int:
    """Delete documents from the search index first, then their rows (if the index cannot confirm, none go)."""
    listed = list(documents.select_related("source"))
    remove_documents_from_index(listed)
    return _delete_rows([d.id for d in listed])


def remove_source_from_index(source: Source) -> int:
    """Delete every document of a source from its live index: those the database lists, and any the index
    still holds under the source's id (left by earlier failures). SearchUnavailable unless the index confirms.

    Runs before a Source row is deleted, by any path (connectors/signals.py).
    """
    backend = source_backend(source)
    listed = sorted(Document.objects.filter(source=source).values_list("id", flat=True))
    for start in range(0, len(listed), INDEX_PAGE_SIZE):
        retrieval_services.delete_documents(listed[start:start + INDEX_PAGE_SIZE], backend=backend,
                                            source_ids=[source.pk])
    removed = len(listed)
    # Read a page, delete it, read the next: the index's list is never held whole.
    for page in backend.document_id_pages(source_ids=[str(source.pk)], page_size=INDEX_PAGE_SIZE):
        retrieval_services.delete_documents(page, backend=backend, source_ids=[source.pk])
        removed += len(page)
    return removed


def remove_orphaned_documents(backends: Sequence[SearchBackend] | None = None) -> int:
    """Delete from the index documents whose source no longer exists; returns how many.

    Sources deleted before deleting one removed its documents from the index left them searchable. By default
    the main index and every index a source uses are checked. A source's id is never reused, so a document
    whose source id is unknown can only be such a leftover, provided sources are committed before they are
    ingested (as ensure_source does outside a transaction).
    """
    if backends is None:
        backends = list(dict.fromkeys([retrieval_services.get_backend(),
                                       *(source_backend(s) for s in Source.objects.all())]))
    known = {str(pk) for pk in Source.objects.values_list("pk", flat=True)}
    removed = 0
    for backend in backends:
        orphaned = sorted(backend.source_ids() - known)
        if not orphaned:
            continue
        removed_here = 0
        for page in backend.document_id_pages(source_ids=orphaned, page_size=INDEX_PAGE_SIZE):
            retrieval_services.delete_documents(page, backend=backend, source_ids=orphaned)
            removed_here += len(page)
        removed += removed_here
        logger.info("removed %d documents of deleted sources %s from index %s", removed_here, ", ".join(orphaned),
                    backend.index_name)
    return removed


def prune_missing(source: Source, seen_ids: set[str], *, backend: SearchBackend | None = None) -> int:
    """Delete documents the source no longer has, from the index first and then from the database.

    They leave the live index whatever `backend` is (a rebuild's staging index too): once the rows are gone
    nothing would ever delete them there. A failed delete raises SearchUnavailable and keeps the rows.
    """
    gone = list(Document.objects.filter(source=source).exclude(external_id__in=seen_ids).values_list("id", flat=True))
    if gone:
        live = source_backend(source)
        for target in dict.fromkeys([live, backend or live]):
            retrieval_services.delete_documents(gone, backend=target, source_ids=[source.pk])
        _delete_rows(gone)
    return len(gone)


def ingest_paths(paths: Sequence[str | Path], *, progress: bool = False) -> list[IngestReport]:
    reports = []
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        reports.append(sync_source(ensure_source("filesystem", resolved), progress=progress))
    return reports


def rebuild_index(index_name: str = "", kind: str | None = None, *, progress: bool = False) -> list[IngestReport]:
    """Re-index every source of an index into a fresh one with the current model and settings, then swap.

    Searches keep using the old index until the swap, which is atomic on both backends.
    """
    config = current()
    kind = kind or config.search_backend
    live = retrieval_services.get_backend(index_name or None, kind)
    embedder = get_embedder()
    # Versions earlier rebuilds left (they failed, died, or an old index could not be deleted) go first.
    live.remove_stale_versions()
    staged = live.staging(embedder.model_name, embedder.dimensions)
    pinned = [kind, ""] if kind == config.search_backend else [kind]
    sources = Source.objects.filter(index_name=index_name, search_backend__in=pinned)
    try:
        reports = [sync_source(source, progress=progress, backend=staged, force=True) for source in sources]
        retrieval_services.promote(live, staged)
    except BaseException:
        try:
            live.discard(staged)
        except SearchUnavailable as exc:  # the index is down: the next rebuild collects it
            logger.warning("could not delete the staging index of a failed rebuild: %s", exc)
        raise
    return reports


@dataclass
class PermissionSyncReport:
    source: str
    checked: int = 0
    changed: int = 0
    groups: int = 0
    memberships: int = 0
    deleted: int = 0
    seconds: float = 0.0
    # As for IngestReport: a partial listing prunes nothing, and errors say where listing failed.
    listing_complete: bool = True
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sync_groups(source: Source) -> tuple[int, int]:
    """Replace the source's groups and direct memberships with what the source says now (identity's
    replace_source_groups: memberships an admin added or revoked stay); returns (groups, memberships)."""
    try:
        groups = list(group_source(connector_for(source)).list_groups())
    except ValueError as exc:  # an unreadable group listing keeps the last good memberships
        logger.error("group sync skipped for %s: %s", source.name, exc)
        return 0, 0
    return identity_services.replace_source_groups(source, groups)


def sync_permissions(source: Source, *, backend: SearchBackend | None = None) -> PermissionSyncReport:
    """Permission-only sync: groups and memberships, then each document's ACL where its hash changed.

    Nothing is parsed or embedded; the index's ACL fields are updated by document id. A source that cannot
    be listed raises SourceUnavailable before groups or documents change.
    """
    started = time.perf_counter()
    report = PermissionSyncReport(source=source.name)
    connector = connector_for(source)
    listed_ids, listing_problems = _listed(id_lister(connector).list_ids())
    report.groups, report.memberships = sync_groups(source)
    backend = backend or retrieval_services.get_backend(source.index_name or None, source.search_backend or None)
    # Items gone from the source are gone from search now, not at the next content sync.
    if listing_problems:
        report.listing_complete = False
        report.errors.extend(listing_problems)
        logger.warning("prune skipped for %s: the source could not be listed completely", source.name)
    else:
        try:
            lease = _take_lease(source)
        except SyncInProgress as exc:  # pruning under a running content sync would race it; it prunes itself
            report.errors.append(("prune", f"prune_skipped: a content sync of this source is running and "
                                           f"prunes what is gone ({exc})"))
        else:
            try:
                report.deleted = prune_missing(source, set(listed_ids), backend=backend)
            finally:
                lease.release()
    changed: list[tuple[Document, Permissions]] = []
    for document in Document.objects.filter(source=source).only("id", "external_id", "acl_hash", "indexed_hash"):
        report.checked += 1
        permissions = _fetch_permissions(connector, document.external_id)
        if acl_hash(permissions) != document.acl_hash:
            changed.append((document, permissions))
    for start in range(0, len(changed), 500):
        batch = changed[start:start + 500]
        retrieval_services.update_acls([(d.id, _acl(p)) for d, p in batch if d.indexed_hash], backend=backend)
        with transaction.atomic():
            for document, permissions in batch:
                _apply_acl(document, permissions)
                document.save(update_fields=["acl_principals", "acl_public", "acl_status", "acl_hash"])
    report.changed = len(changed)
    source.permissions_synced_at = timezone.now()
    source.save(update_fields=["permissions_synced_at"])
    report.seconds = time.perf_counter() - started
    logger.info("permission sync finished source=%s checked=%d changed=%d groups=%d memberships=%d",
                source.name, report.checked, report.changed, report.groups, report.memberships)
    return report
