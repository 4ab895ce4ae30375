"""Ingestion: read a source through its connector, parse, and hand documents to the search index."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from tqdm import tqdm

from connectors import runs
from connectors import secrets as secret_store
from connectors.base import (
    Capability,
    Changed,
    Checkpoint,
    Connector,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    ItemError,
    Permissions,
    SourceItem,
    SourceUnavailable,
    change_feed,
    group_source,
    id_lister,
    loader,
    permission_source,
    remembered_state,
)
from connectors.models import Document, Source, SyncRun, document_id_for
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


@dataclass
class IngestReport:
    source: str
    run_id: int = 0
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
SECRET_KEYS = frozenset({"api_token", "token", "password", "client_secret", "secret", "api_key", "private_key",
                         "service_account_key"})


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


@dataclass(frozen=True)
class ConnectionCheck:
    """What `check_connection` found: `ok`, and a sentence an admin can act on."""

    ok: bool
    message: str
    items: int = 0
    first_item: str = ""


# What a connection check reads at most, and for how long: enough to show the credentials and location work.
CONNECTION_CHECK_ITEMS = 20
CONNECTION_CHECK_TIMEOUT_S = 15.0


def check_connection(kind: str, location: str, config: dict[str, Any], secrets: dict[str, str], *,
                     timeout_s: float = CONNECTION_CHECK_TIMEOUT_S) -> ConnectionCheck:
    """Build the connector for settings not saved yet and read the first few items of its listing (`list_ids`, else
    `load`), within `timeout_s`. Nothing is stored, indexed or written: the console's "Test connection" button."""
    from connectors.sources import source_module

    try:
        check_config(config)
        settings = validated_config(kind, config)
    except InvalidInput as exc:
        return ConnectionCheck(False, exc.user_message)
    if kind in ("filesystem", "beir"):
        location = str(Path(location).resolve())
    unsaved = Source(kind=kind, location=location, config=config)
    found: queue.Queue[tuple[list[str], BaseException | None]] = queue.Queue()

    def read_first_items() -> None:
        ids: list[str] = []
        try:
            connector = source_module(kind).build(unsaved, settings, secrets)
            listing: Iterable[Any] = (id_lister(connector).list_ids() if Capability.LIST_IDS in connector.capabilities
                                      else loader(connector).load(None))
            for entry in listing:
                if isinstance(entry, str | SourceItem):
                    ids.append(entry if isinstance(entry, str) else entry.external_id)
                    if len(ids) >= CONNECTION_CHECK_ITEMS:
                        break
        except IncompleteListing as exc:
            if not ids:
                found.put((ids, exc))
                return
        except Exception as exc:  # noqa: BLE001 (reported to the admin, whatever it is)
            found.put((ids, exc))
            return
        found.put((ids, None))

    # A daemon thread: a source that never answers cannot hold the console's request (or the process) past the limit.
    threading.Thread(target=read_first_items, name=f"test-connection-{kind}", daemon=True).start()
    try:
        ids, error = found.get(timeout=timeout_s)
    except queue.Empty:
        return ConnectionCheck(False, f"No answer within {timeout_s:g} seconds: the source is unreachable from "
                                      f"here (a firewall, a proxy) or too slow; check the location.")
    if error is not None:
        return ConnectionCheck(False, _plain_words(error))
    if not ids:
        return ConnectionCheck(True, "Connected, but found no items: check the settings that choose what is read "
                                     "(spaces, sites, channels, a folder's contents) and the account's access.")
    count = f"at least {len(ids)}" if len(ids) >= CONNECTION_CHECK_ITEMS else str(len(ids))
    return ConnectionCheck(True, f"Connected: found {count} item{'s' if len(ids) != 1 else ''}, the first "
                                 f"{ids[0]}.", items=len(ids), first_item=ids[0])


def _plain_words(error: BaseException) -> str:
    """Why a connection check failed, said the way an admin fixes it: the HTTP status or network failure found
    anywhere in the exception's chain, then the connector's own message."""
    status, chain, seen = 0, list[BaseException](), error
    while len(chain) < 10:
        chain.append(seen)
        following = seen.__cause__ or seen.__context__
        if following is None:
            break
        seen = following
    for exc in chain:
        code = getattr(exc, "status", None) or getattr(exc, "status_code", None) or getattr(
            getattr(exc, "response", None), "status_code", None)
        if isinstance(code, int) and code >= 400:
            status = code
            break
    detail = str(error) or error.__class__.__name__
    if status == 401:
        return f"The source refused the credentials (HTTP 401): check the token or secret, and the account it " \
               f"belongs to. ({detail})"
    if status == 403:
        return f"The account is not allowed to read this (HTTP 403): give it read access. ({detail})"
    if status == 404:
        return f"Nothing was found at this address (HTTP 404): check the location. ({detail})"
    if status == 429:
        return f"The source is throttling requests (HTTP 429): try again later. ({detail})"
    if status >= 500:
        return f"The source had a server error (HTTP {status}): try again later. ({detail})"
    if any(isinstance(exc, socket.gaierror) for exc in chain) or "name resolution" in detail.lower() or \
            "nodename nor servname" in detail.lower():
        return f"The host name could not be found (DNS): check the location. ({detail})"
    if any(isinstance(exc, httpx.TimeoutException | TimeoutError) for exc in chain):
        return f"The source did not answer in time: it may be unreachable from here. ({detail})"
    if any(isinstance(exc, httpx.ConnectError | ConnectionError) for exc in chain):
        return f"Could not connect to the source: check the location and that it is reachable from here. ({detail})"
    if status:
        return f"The source answered HTTP {status}. ({detail})"
    return f"The source could not be read: {detail}"


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
    except SourceUnavailable:  # the whole source is out of reach: the run stops and no ACL changes
        raise
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
    document.acl_reason = permissions.reason[:500]


def _acl(permissions: Permissions) -> DocumentAcl:
    return DocumentAcl(principals=permissions.principals, public=permissions.public, status=permissions.status)


def _read(item: SourceItem, max_bytes: int) -> bytes:
    if item.size_bytes > max_bytes:
        raise ParseError("too_large", f"the file is {item.size_bytes:,} bytes; the limit is {max_bytes:,}")
    try:
        return item.read()
    except OSError as exc:
        raise ParseError("unreadable", f"the file could not be read: {exc}") from exc


@dataclass
class _Pending:
    document: Document
    to_index: retrieval_services.DocumentToIndex
    content_hash: str
    permissions: Permissions
    # The ACL hash the document had when this sync loaded it; another value later means a permission sync wrote.
    acl_hash_seen: str
    # Whether the index held a version of it before: the run counts it as updated rather than added.
    was_indexed: bool


def sync_source(
    source: Source, *, progress: bool = False, backend: SearchBackend | None = None, force: bool = False,
    config: CitewiseSettings | None = None, trigger: str = "", confirm_deletions: bool = False,
) -> IngestReport:
    """A full sync: bring the index in line with everything the source holds; see `run_sync`.

    One content run per source at a time: a second raises SyncInProgress and changes nothing. A source that cannot
    be listed at all raises SourceUnavailable before anything changes; one listed only in part is synced for what
    was listed and nothing is pruned (report.listing_complete is False). A file that cannot be parsed gets its
    error recorded and the run goes on. If the search index is unreachable the run stops with SearchUnavailable
    and nothing is marked indexed, so the next run retries the same documents. `force` re-indexes unchanged
    documents too, into `backend` when given (a staging index during a rebuild).
    """
    return _content_sync(source, SyncRun.Kind.FULL, progress=progress, backend=backend, force=force,
                         config=config or current(), trigger=trigger, confirm_deletions=confirm_deletions)


def run_sync(
    source: Source, kind: str, *, progress: bool = False, trigger: str = "", confirm_deletions: bool = False,
    config: CitewiseSettings | None = None,
) -> SyncRun:
    """Run one sync of `kind` (full, incremental, prune, permissions, groups) and return its SyncRun.

    A content run (full, incremental, prune) that finds a crashed run of its lane resumes that one instead (in the
    crashed run's kind, from its checkpoint); SyncInProgress if a live run holds the lane. An incremental run of a
    connector without a change feed, or with no cursor yet, or whose cursor expired, is a full run.
    """
    config = config or current()
    if kind in (SyncRun.Kind.FULL, SyncRun.Kind.INCREMENTAL, SyncRun.Kind.PRUNE):
        report = _content_sync(source, SyncRun.Kind(kind), progress=progress, backend=None, force=False,
                               config=config, trigger=trigger, confirm_deletions=confirm_deletions)
        return SyncRun.objects.get(pk=report.run_id)
    if kind == SyncRun.Kind.PERMISSIONS:
        return SyncRun.objects.get(pk=sync_permissions(source, trigger=trigger).run_id)
    if kind == SyncRun.Kind.GROUPS:
        return SyncRun.objects.get(pk=sync_groups(source, trigger=trigger).run_id)
    raise InvalidInput(f"unknown kind of sync {kind!r}; one of {', '.join(SyncRun.Kind.values)}")


def _content_sync(
    source: Source, kind: SyncRun.Kind, *, progress: bool, backend: SearchBackend | None, force: bool,
    config: CitewiseSettings, trigger: str, confirm_deletions: bool,
) -> IngestReport:
    active = runs.start(source, kind, trigger=trigger, config=config)
    try:
        report = _run_content(source, active, progress=progress, backend=backend, force=force,
                              config=config, confirm_deletions=confirm_deletions)
    except BaseException as exc:
        active.fail(exc)
        raise
    return report


def _run_content(
    source: Source, active: runs.ActiveRun, *, progress: bool, backend: SearchBackend | None,
    force: bool, config: CitewiseSettings, confirm_deletions: bool,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport(source=source.name, run_id=active.run.pk)
    connector = connector_for(source)
    backend = backend or source_backend(source)
    run = active.run
    resume = run.checkpoint.get("resume") if active.resuming else None
    if run.kind == SyncRun.Kind.INCREMENTAL and not (Capability.INCREMENTAL in connector.capabilities
                                                     and source.sync_cursor):
        _become_full(active, "no change feed" if Capability.INCREMENTAL not in connector.capabilities
                     else "no cursor yet: the first sync is a full one")
    if run.kind == SyncRun.Kind.PRUNE:
        listing_problems = _mark_listed(source, active, connector, progress=progress)
    else:
        stream: Iterator[Changed]
        if run.kind == SyncRun.Kind.INCREMENTAL:
            stream = change_feed(connector).changes(dict(source.sync_cursor), resume)
        else:
            stream = iter(loader(connector).load(resume))
        try:
            listing_problems = _ingest(source, active, connector, stream, report=report, backend=backend,
                                       force=force, config=config, progress=progress)
        except CursorExpired as exc:
            _become_full(active, f"the cursor expired ({exc})")
            listing_problems = _ingest(source, active, connector, iter(loader(connector).load(None)), report=report,
                                       backend=backend, force=force, config=config, progress=progress)
    report.listing_complete = not listing_problems
    details: dict[str, Any] = {"chunks": report.chunks, "embedded": report.embedded,
                               "embedding_cache_hits": report.embedding_cache_hits}
    state = SyncRun.State.SUCCEEDED
    if listing_problems:
        active.commit({}, listing_problems)
        state = SyncRun.State.PARTIAL
        logger.warning("prune skipped for %s: the source could not be listed completely (%s)", source.name,
                       "; ".join(f"{where}: {message}" for where, message in listing_problems))
    else:
        if run.kind != SyncRun.Kind.PRUNE:
            _remember(source, connector, run)
        if run.kind in (SyncRun.Kind.FULL, SyncRun.Kind.PRUNE):
            held = _prune_unlisted(source, active, backend, config=config, confirmed=confirm_deletions)
            if held:
                details["held_deletions"] = held
                state = SyncRun.State.HELD
    if run.kind != SyncRun.Kind.PRUNE:
        source.last_synced_at = timezone.now()
        source.save(update_fields=["last_synced_at"])
    finished = active.finish(state, details={**details, **_invisible(source)})
    report.seen, report.unchanged, report.failed, report.deleted = (finished.seen, finished.unchanged,
                                                                     finished.failed, finished.deleted)
    report.indexed = finished.added + finished.updated
    report.errors = [(entry["item"], entry["error"]) for entry in finished.errors]
    report.seconds = time.perf_counter() - started
    logger.info(
        "ingest finished source=%s kind=%s seen=%d indexed=%d unchanged=%d failed=%d deleted=%d chunks=%d "
        "embedded=%d cache_hits=%d seconds=%.2f", report.source, finished.kind, report.seen, report.indexed,
        report.unchanged, report.failed, report.deleted, report.chunks, report.embedded, report.embedding_cache_hits,
        report.seconds,
    )
    return report


def confirm_mass_deletion(source: Source) -> None:
    """Let the source's next full or prune run delete more than the mass-deletion guard allows (once)."""
    Source.objects.filter(pk=source.pk).update(mass_deletion_confirmed=True)
    logger.warning("mass deletion confirmed for %s: its next full or prune run deletes what the source no longer "
                   "lists, however much", source.name)


def _invisible(source: Source) -> dict[str, Any]:
    """How many of the source's documents nobody may read because their permissions are not known, and why (the
    most common reasons), for the run's record."""
    hidden = Document.objects.filter(source=source).exclude(acl_status="ok")
    reasons = Counter(reason or "no reason given" for reason in hidden.values_list("acl_reason", flat=True)[:10000])
    return {"invisible_documents": hidden.count(),
            "invisible_because": dict(reasons.most_common(5))} if reasons else {"invisible_documents": 0}


def _become_full(active: runs.ActiveRun, why: str) -> None:
    logger.info("%s: incremental sync runs as a full one: %s", active.run.source_id, why)
    active.run.kind = SyncRun.Kind.FULL
    active.run.details = {**active.run.details, "full_because": why}
    SyncRun.objects.filter(pk=active.run.pk).update(kind=SyncRun.Kind.FULL, details=active.run.details)


def _remember(source: Source, connector: Connector, run: SyncRun) -> None:
    """After a complete listing: what the connector asks to remember, and where the next incremental run starts."""
    state = remembered_state(connector)
    cursor = run.checkpoint.get("cursor")
    fields = []
    if state != source.sync_state:
        source.sync_state = state
        fields.append("sync_state")
    if cursor is not None and cursor != source.sync_cursor:
        source.sync_cursor = cursor
        fields.append("sync_cursor")
    if fields:
        source.save(update_fields=fields)


def _ingest(
    source: Source, active: runs.ActiveRun, connector: Connector, stream: Iterator[Changed], *, report: IngestReport,
    backend: SearchBackend, force: bool, config: CitewiseSettings, progress: bool,
) -> list[tuple[str, str]]:
    """Index what `stream` yields, batch by batch, each batch committed with its counts and the checkpoint that
    follows it; the listing problems (from IncompleteListing) are returned. SourceUnavailable propagates."""
    batch: list[SourceItem] = []
    deleted: list[str] = []
    cursor: dict[str, Any] | None = None
    bar = tqdm(desc=f"sync {source.name}", unit="doc", disable=not progress, dynamic_ncols=True)

    def flush(resume: dict[str, Any] | None = None) -> None:
        nonlocal cursor
        _ingest_batch(source, active, connector, batch, deleted, report=report, backend=backend, force=force,
                      config=config, resume=resume, cursor=cursor)
        bar.update(len(batch))
        batch.clear()
        deleted.clear()
        cursor = None

    problems: list[tuple[str, str]] = []
    try:
        for entry in stream:
            if isinstance(entry, SourceItem):
                batch.append(entry)
                if len(batch) >= config.ingest_batch_documents:
                    flush()
            elif isinstance(entry, Deleted):
                deleted.append(entry.external_id)
                if len(deleted) >= INDEX_PAGE_SIZE:
                    flush()
            elif isinstance(entry, Checkpoint):
                flush(entry.state)
            elif isinstance(entry, Cursor):
                cursor = entry.state
    except IncompleteListing as exc:
        problems = exc.problems
    flush()
    bar.close()
    return problems


def _ingest_batch(
    source: Source, active: runs.ActiveRun, connector: Connector, batch: Sequence[SourceItem],
    deleted: Sequence[str], *, report: IngestReport, backend: SearchBackend, force: bool, config: CitewiseSettings,
    resume: dict[str, Any] | None, cursor: dict[str, Any] | None,
) -> None:
    run_id = active.run.pk
    counts: Counter[str] = Counter()
    errors: list[tuple[str, str]] = []
    model_name, pipeline, max_bytes = config.embedding_model, retrieval_services.pipeline_signature(config), \
        config.max_file_bytes
    existing = {d.external_id: d for d in Document.objects.filter(
        source=source, external_id__in=[item.external_id for item in batch])}
    pending: list[_Pending] = []
    processed: list[str] = []
    memos: dict[str, dict[str, Any]] = {}  # of documents counted unchanged, which are not saved otherwise
    for item in batch:
        active.keep()
        document = existing.get(item.external_id)
        if document is not None and document.seen_by_run == run_id:
            continue  # processed and counted before this run was interrupted (or listed twice)
        processed.append(item.external_id)
        counts["seen"] += 1
        document = document or Document(id=document_id_for(source.id, item.external_id), source=source,
                                        external_id=item.external_id)
        # A file moved or renamed at the source keeps its document; the link its chunks carry must follow it.
        moved = document.url != item.url
        document.url, document.mime_type, document.size_bytes = item.url, item.mime_type, item.size_bytes
        document.source_modified_at = item.modified_at
        if item.memo is not None:
            document.source_memo = item.memo
        if (item.not_modified and not force and not moved and document.status == Document.Status.INDEXED
                and document.indexed_hash and document.indexed_pipeline == pipeline):
            counts["unchanged"] += 1
            if item.memo is not None:
                memos[document.pk] = item.memo
            continue
        try:
            content = _read(item, max_bytes)
            content_hash = hashlib.sha256(content).hexdigest()
            document.content_hash = content_hash
            if (not force and not moved and document.status == Document.Status.INDEXED
                    and document.indexed_hash == content_hash and document.indexed_pipeline == pipeline):
                counts["unchanged"] += 1
                if item.memo is not None:
                    memos[document.pk] = item.memo
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
            _record_failure(document, str(exc), counts, errors)
            continue
        except Exception as exc:  # a parser library's own bug must not stop the run
            logger.exception("parser crashed on %s", item.external_id)
            document.parsing_hash = ""
            _record_failure(document, f"parse_failed: {exc.__class__.__name__}: {exc}", counts, errors)
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
                                content_hash, permissions, document.acl_hash, bool(document.indexed_hash)))
    chunk_counts: dict[str, int] = {}
    if pending:
        active.keep()
        stats = retrieval_services.index_documents(
            [p.to_index for p in pending], backend=backend,
            max_chunks_per_document=config.max_chunks_per_document, config=config)
        for entry in pending:
            if entry.document.id in stats.rejected:
                _record_failure(entry.document, stats.rejected[entry.document.id], counts, errors)
        pending = [p for p in pending if p.document.id not in stats.rejected]
        report.chunks += stats.chunks
        report.embedded += stats.embedded
        report.embedding_cache_hits += stats.embedding_cache_hits
        for stage, seconds in stats.seconds.items():
            report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
        chunk_counts = stats.chunks_per_document
    gone: list[Document] = []
    if deleted:
        gone = list(Document.objects.filter(source=source, external_id__in=list(deleted)).select_related("source"))
        remove_documents_from_index(gone)
        counts["deleted"] += len(gone)
    counts["added"] += sum(1 for p in pending if not p.was_indexed)
    counts["updated"] += sum(1 for p in pending if p.was_indexed)
    overtaken: list[str] = []

    def work() -> None:
        overtaken.extend(_record_indexed(pending, model_name, pipeline, chunk_counts))
        if processed:
            Document.objects.filter(source=source, external_id__in=processed).update(seen_by_run=run_id)
        for document_id, memo in memos.items():
            Document.objects.filter(pk=document_id).update(source_memo=memo)
        if gone:
            _delete_rows([d.id for d in gone])

    active.commit(counts, errors, resume=resume, cursor=cursor, work=work)
    if overtaken:
        _reapply_acls(overtaken, backend)


def _mark_listed(source: Source, active: runs.ActiveRun, connector: Connector, *, progress: bool
                 ) -> list[tuple[str, str]]:
    """A prune run's listing: every id the source still has marks its document seen by this run, a page at a time
    (never the whole list in memory); the listing problems are returned."""
    run_id = active.run.pk
    if active.resuming:  # the listing starts again from the top; its marks so far stay valid
        SyncRun.objects.filter(pk=run_id).update(seen=0)
    bar = tqdm(desc=f"list {source.name}", unit="id", disable=not progress, dynamic_ncols=True)
    page: list[str] = []

    def flush() -> None:
        listed = list(page)
        active.keep()
        active.commit({"seen": len(listed)}, work=lambda: Document.objects.filter(
            source=source, external_id__in=listed).update(seen_by_run=run_id))
        bar.update(len(listed))
        page.clear()

    try:
        for external_id in id_lister(connector).list_ids():
            page.append(external_id)
            if len(page) >= INDEX_PAGE_SIZE:
                flush()
    except IncompleteListing as exc:
        flush()
        bar.close()
        return exc.problems
    flush()
    bar.close()
    return []


def _prune_unlisted(source: Source, active: runs.ActiveRun, backend: SearchBackend, *, config: CitewiseSettings,
                    confirmed: bool) -> dict[str, Any] | None:
    """Delete the source's documents this run did not list, index first, a page at a time; unless that is more
    than the mass-deletion guard allows and no admin confirmed it: then nothing is deleted and the guard's figures
    are returned."""
    run_id = active.run.pk
    unlisted = Document.objects.filter(source=source).exclude(seen_by_run=run_id)
    going, total = unlisted.count(), Document.objects.filter(source=source).count()
    if not going:
        return None
    share = going / total
    allowed = confirmed or Source.objects.filter(pk=source.pk, mass_deletion_confirmed=True).exists()
    if (total >= config.mass_deletion_min_documents and share > config.mass_deletion_max_share and not allowed):
        held = {"would_delete": going, "documents": total, "share": round(share, 4),
                "max_share": config.mass_deletion_max_share}
        active.commit({}, [("prune", f"mass_deletion_held: this run would delete {going} of the source's {total} "
                                     f"documents ({share:.0%}), more than CITEWISE_MASS_DELETION_MAX_SHARE "
                                     f"({config.mass_deletion_max_share:.0%}); nothing was deleted. If the source "
                                     f"really lost them, confirm in the console or run `manage.py sync "
                                     f"{source.pk} --kind prune --confirm-deletions`")])
        logger.warning("mass deletion held for %s: %d of %d documents (%.0f%%)", source.name, going, total,
                       share * 100)
        return held
    live = source_backend(source)
    while True:
        page = list(unlisted.values_list("id", flat=True)[:INDEX_PAGE_SIZE])
        if not page:
            break
        for target in dict.fromkeys([live, backend]):
            retrieval_services.delete_documents(page, backend=target, source_ids=[source.pk])
        active.commit({"deleted": len(page)}, work=partial(_delete_rows, page))
    if allowed:
        Source.objects.filter(pk=source.pk).update(mass_deletion_confirmed=False)
    return None


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
                   "parsing_hash", "effective_date", "supersedes", "source_memo"]


def _save_content(document: Document) -> None:
    if document._state.adding:
        document.save(force_insert=True)
    else:
        document.save(update_fields=_CONTENT_FIELDS)


def _record_failure(document: Document, message: str, counts: Counter[str], errors: list[tuple[str, str]]) -> None:
    # A document indexed before keeps its last good chunks (indexed_hash); the error says why they are stale.
    document.status = Document.Status.ERROR
    document.error = message
    if not document.title:
        document.title = Path(document.external_id).name
    _save_content(document)
    counts["failed"] += 1
    errors.append((document.external_id, message))


def _record_indexed(pending: Sequence[_Pending], model_name: str, pipeline: str, chunk_counts: dict[str, int]
                    ) -> list[str]:
    """Record the batch as indexed; the ids of documents whose ACL a permission sync wrote meanwhile (their chunks
    must be given that ACL: `_reapply_acls`)."""
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
                    acl_status=document.acl_status, acl_hash=document.acl_hash, acl_reason=document.acl_reason):
                overtaken.append(document.pk)
    return overtaken


def _reapply_acls(document_ids: Sequence[str], backend: SearchBackend) -> None:
    # The permission sync's ACL is the one on record; the chunks just written must carry it too.
    current = Document.objects.filter(pk__in=list(document_ids)).values_list("id", "acl_principals", "acl_public",
                                                                            "acl_status")
    retrieval_services.update_acls(
        [(document_id, DocumentAcl(principals=frozenset(principals), public=public, status=status))
         for document_id, principals, public, status in current], backend=backend)
    logger.info("kept the ACL a permission sync wrote meanwhile for %d documents", len(document_ids))


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
    run_id: int = 0
    checked: int = 0
    changed: int = 0
    groups: int = 0
    memberships: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class GroupSyncReport:
    source: str
    run_id: int = 0
    groups: int = 0
    memberships: int = 0
    # False when the source's group listing could not be read: the last good memberships stay.
    complete: bool = True

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _replace_groups(source: Source, connector: Connector) -> tuple[int, int] | None:
    """Replace the source's groups and direct memberships with what the source says now (identity's
    replace_source_groups: memberships an admin added or revoked stay); None when the listing cannot be read."""
    if Capability.GROUPS not in connector.capabilities:
        return 0, 0
    try:
        groups = list(group_source(connector).list_groups())
    except (ValueError, IncompleteListing, SourceUnavailable) as exc:  # keep the last good memberships
        logger.error("group sync skipped for %s: %s", source.name, exc)
        return None
    return identity_services.replace_source_groups(source, groups)


def sync_groups(source: Source, *, trigger: str = "") -> GroupSyncReport:
    """Group and membership sync alone, as a `groups` run: takes effect at the next query, since principals expand
    then (no document is re-indexed)."""
    report = GroupSyncReport(source=source.name)
    active = runs.start(source, SyncRun.Kind.GROUPS, trigger=trigger)
    report.run_id = active.run.pk
    try:
        replaced = _replace_groups(source, connector_for(source))
        if replaced is None:
            report.complete = False
            active.commit({}, [("groups", "groups_unreadable: the source's groups could not be listed; the last "
                                          "synced memberships stay")])
            active.finish(SyncRun.State.PARTIAL)
            return report
        report.groups, report.memberships = replaced
        active.commit({"seen": report.groups})
        active.finish(SyncRun.State.SUCCEEDED, details={"groups": report.groups, "memberships": report.memberships})
    except BaseException as exc:
        active.fail(exc)
        raise
    return report


def _list_first(connector: Connector) -> None:
    """Walk the connector's id listing before fetching permissions: a connector learns in a few bulk listing calls
    what it would otherwise read item by item (Confluence: each page and its ancestors), and a source out of reach
    (SourceUnavailable) stops the run before any ACL changes. The ids are not kept; a listing that fails part-way
    still leaves every document's permissions to be fetched one by one."""
    if Capability.LIST_IDS not in connector.capabilities:
        return
    try:
        for _ in id_lister(connector).list_ids():
            pass
    except IncompleteListing as exc:
        logger.warning("permission sync: the source was listed only in part (%s); the rest is read item by item",
                       exc)


def sync_permissions(source: Source, *, backend: SearchBackend | None = None, trigger: str = ""
                     ) -> PermissionSyncReport:
    """Permission-only sync, as a `permissions` run: the source's groups first (so ACLs and memberships agree),
    then each document's ACL where its hash changed. Nothing is parsed, embedded or deleted (pruning is the prune
    run's); the index's ACL fields are updated by document id, a page at a time."""
    started = time.perf_counter()
    report = PermissionSyncReport(source=source.name)
    active = runs.start(source, SyncRun.Kind.PERMISSIONS, trigger=trigger)
    report.run_id = active.run.pk
    try:
        connector = connector_for(source)
        replaced = _replace_groups(source, connector)
        if replaced is None:
            report.errors.append(("groups", "groups_unreadable: the last synced memberships stay"))
        else:
            report.groups, report.memberships = replaced
        backend = backend or source_backend(source)
        _list_first(connector)
        documents = Document.objects.filter(source=source).only("id", "external_id", "acl_hash", "indexed_hash")
        changed: list[tuple[Document, Permissions]] = []

        def write_changes() -> None:
            retrieval_services.update_acls([(d.id, _acl(p)) for d, p in changed if d.indexed_hash], backend=backend)

            def save() -> None:
                for document, permissions in changed:
                    _apply_acl(document, permissions)
                    document.save(update_fields=["acl_principals", "acl_public", "acl_status", "acl_hash",
                                                 "acl_reason"])

            active.commit({"permission_changes": len(changed)}, work=save)
            report.changed += len(changed)
            changed.clear()

        for document in documents.order_by("pk").iterator(chunk_size=INDEX_PAGE_SIZE):
            active.keep()
            report.checked += 1
            permissions = _fetch_permissions(connector, document.external_id)
            if acl_hash(permissions) != document.acl_hash:
                changed.append((document, permissions))
                if len(changed) >= 500:
                    write_changes()
        write_changes()
        active.commit({"seen": report.checked}, report.errors)
        source.permissions_synced_at = timezone.now()
        source.save(update_fields=["permissions_synced_at"])
        active.finish(SyncRun.State.SUCCEEDED if replaced is not None else SyncRun.State.PARTIAL,
                      details={"groups": report.groups, "memberships": report.memberships, **_invisible(source)})
    except BaseException as exc:
        active.fail(exc)
        raise
    report.seconds = time.perf_counter() - started
    logger.info("permission sync finished source=%s checked=%d changed=%d groups=%d memberships=%d",
                source.name, report.checked, report.changed, report.groups, report.memberships)
    return report
