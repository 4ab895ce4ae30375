"""Reads about what the database records: which indexes should hold chunks, and a source's credentials."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from connectors import secrets
from connectors.base import Capability
from connectors.models import Document, Source, SyncRun
from connectors.runs import LANES, holder_is_gone
from core.config import CitewiseSettings, current
from search.types import SearchHit

logger = logging.getLogger("citewise.connectors")


def indexed_chunks_expected(backend_kind: str, index_name: str) -> bool:
    """Whether the database records chunks written to this index: then a missing or empty index is an outage."""
    config = current()
    # Blank on a source means the configured backend and main index (as sync_source resolves them).
    kinds = [backend_kind, ""] if backend_kind == config.search_backend else [backend_kind]
    names = [index_name, ""] if index_name == config.index_name else [index_name]
    return Document.objects.filter(status=Document.Status.INDEXED, chunk_count__gt=0,
                                   source__search_backend__in=kinds, source__index_name__in=names).exists()


def source_secrets(source: Source) -> dict[str, str]:
    """The source's credentials, decrypted ({} when it has none)."""
    return secrets.decrypt(source.encrypted_secrets)


def sync_intervals(source: Source, capabilities: frozenset[Capability], config: CitewiseSettings | None = None
                   ) -> dict[str, int]:
    """Seconds between scheduled runs of each kind of sync this source can run (0: never scheduled).

    Content is kept fresh by incremental runs where the connector has a change feed, with a full run now and then
    to catch what a feed can miss; without one, the content interval schedules full runs.
    """
    config = config or current()

    def own(value: int | None, default: int) -> int:
        return default if value is None else value

    intervals: dict[str, int] = {}
    if Capability.INCREMENTAL in capabilities:
        intervals[SyncRun.Kind.INCREMENTAL] = own(source.incremental_interval_s, config.content_sync_interval_s)
        intervals[SyncRun.Kind.FULL] = own(source.full_interval_s, config.full_sync_interval_s)
    elif Capability.LOAD in capabilities:
        intervals[SyncRun.Kind.FULL] = own(source.full_interval_s, config.content_sync_interval_s)
    if Capability.LIST_IDS in capabilities:
        intervals[SyncRun.Kind.PRUNE] = own(source.prune_interval_s, config.prune_interval_s)
    if Capability.PERMISSIONS in capabilities:
        intervals[SyncRun.Kind.PERMISSIONS] = own(source.permissions_interval_s, config.permission_sync_interval_s)
    if Capability.GROUPS in capabilities:
        intervals[SyncRun.Kind.GROUPS] = own(source.groups_interval_s, config.group_sync_interval_s)
    return intervals


# Within a lane, the first due kind in this order runs: a full run does an incremental's and a prune's work too.
_PRIORITY = [SyncRun.Kind.FULL, SyncRun.Kind.INCREMENTAL, SyncRun.Kind.PRUNE, SyncRun.Kind.PERMISSIONS,
             SyncRun.Kind.GROUPS]


def due_syncs(now: datetime | None = None, config: CitewiseSettings | None = None) -> list[tuple[int, str]]:
    """(source id, kind) of every sync due now: at most one per source and lane, none in a lane a live run holds.

    A run whose worker died (lease expired, or its process on this machine gone) makes its lane due in its own
    kind, so that the next run takes it over and resumes it. Paused sources and evaluation corpora are skipped.
    """
    from connectors.sources import capabilities_of

    now = now or timezone.now()
    config = config or current()
    due: list[tuple[int, str]] = []
    running = {(run.source_id, run.lane): run for run in SyncRun.objects.filter(state=SyncRun.State.RUNNING)}
    last_started: dict[tuple[int, str], datetime] = {
        (row["source_id"], row["kind"]): row["last"]
        for row in SyncRun.objects.order_by().values("source_id", "kind").annotate(last=Max("started_at"))}
    for source in Source.objects.exclude(kind=Source.Kind.BEIR).filter(paused=False).order_by("pk"):
        # A source whose settings or credentials no longer work is still scheduled: its runs fail and say why.
        intervals = sync_intervals(source, capabilities_of(source.kind), config)
        taken: set[str] = set()
        for lane in sorted(set(LANES.values())):
            holder = running.get((source.pk, lane))
            if holder is None:
                continue
            taken.add(lane)
            expired = holder.lease_expires_at is not None and holder.lease_expires_at < now
            if expired or holder_is_gone(holder.lease_owner):
                due.append((source.pk, str(holder.kind)))
        for kind in _PRIORITY:
            interval = intervals.get(kind, 0)
            lane = LANES[kind]
            if interval <= 0 or lane in taken:
                continue
            last = last_started.get((source.pk, kind))
            if last is None or now - last >= timedelta(seconds=interval):
                due.append((source.pk, str(kind)))
                taken.add(lane)
    return due


def _section_linkers(source_ids: Iterable[str]) -> dict[str, Callable[[str, str], str]]:
    """The sources among these whose kind links to a heading its own way (connectors' `section_url`), by id."""
    from connectors.sources import source_module

    ids = [int(i) for i in set(source_ids) if i.isdigit()]
    linkers = {}
    for source_id, kind in Source.objects.filter(pk__in=ids).values_list("pk", "kind"):
        section_url = getattr(source_module(kind), "section_url", None)
        if section_url is not None:
            linkers[str(source_id)] = section_url
    return linkers


def with_section_links(hits: list[SearchHit]) -> list[SearchHit]:
    """Hits whose source links to a heading its own way (Confluence's ids keep the heading's case and punctuation)
    with their URL pointing at their section; others unchanged (citations add a Markdown-style anchor to those)."""
    linkers = _section_linkers({hit.source_id for hit in hits if hit.heading_path and "#" not in hit.url})
    if not linkers:
        return hits
    return [dataclasses.replace(hit, url=linkers[hit.source_id](hit.url, hit.heading_path[-1]))
            if hit.source_id in linkers and hit.heading_path and "#" not in hit.url else hit for hit in hits]


def section_link(source_id: str, url: str, heading_path: Sequence[str]) -> str:
    """A document's URL at one of its sections where its source links to headings its own way, as citations'
    URLs are (with_section_links); else `url` unchanged."""
    if not heading_path or "#" in url:
        return url
    linker = _section_linkers([source_id]).get(source_id)
    return linker(url, heading_path[-1]) if linker is not None else url


def document_memos(source: Source, external_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a connector asked to keep with each of these documents for its next visit (SourceItem.memo), by
    external id; documents without one are left out."""
    return {external_id: memo for external_id, memo in Document.objects.filter(
        source=source, external_id__in=list(external_ids)).exclude(source_memo={}).values_list(
        "external_id", "source_memo")}


# -- freshness (the console's dashboard and the alert hook) ----------------------------------------------------------

# The latest runs a source's freshness is read from: the last of each kind and the medians of recent durations.
RUNS_READ = 200
CONTENT_KINDS = (SyncRun.Kind.FULL, SyncRun.Kind.INCREMENTAL, SyncRun.Kind.PRUNE)
# A content run that brought the index in line with the source (held: everything but the held deletions was done).
SUCCESSFUL = (SyncRun.State.SUCCEEDED, SyncRun.State.HELD)


class Health:
    """A source's badge, worst first after `paused` (which says nothing is scheduled, so the others do not apply)."""

    PAUSED = "paused"
    FAILING = "failing"
    STALE = "stale"
    HEALTHY = "healthy"
    UNHEALTHY = frozenset({FAILING, STALE})


@dataclasses.dataclass(frozen=True)
class SourceFreshness:
    source: Source
    health: str
    # Why the badge is what it is, in a sentence.
    reason: str
    # Items the source held at its last complete listing (a successful full or prune run's `seen`); None if never.
    items_at_source: int | None
    indexed: int
    last_success_at: datetime | None
    # Seconds since the last successful content sync (None: never), against the target.
    lag_s: float | None
    target_s: int
    # Documents whose last parse or index failed, and the failed count of the last content run.
    failing_documents: int
    last_run_failed: int
    last_run: SyncRun | None
    stuck_run: SyncRun | None
    # Deletions: a document deleted at the source leaves the index at the next complete listing (a full or prune
    # run), so it may still be searchable for as long as the last successful one is old (None: never listed).
    since_complete_listing_s: float | None
    # Deletions the mass-deletion guard is holding for an admin's confirmation: since when, and how many.
    held_deletions_since: datetime | None
    held_deletions: int


def _stuck_after(source_runs: Sequence[SyncRun], kind: str, config: CitewiseSettings) -> timedelta:
    """How long a run of this kind may go before it counts as stuck: CITEWISE_STUCK_RUN_S, or three times this
    source's median successful run of the kind when that is longer."""
    durations = [run.seconds for run in source_runs if run.kind == kind and run.state == SyncRun.State.SUCCEEDED
                 and run.seconds is not None][:20]
    typical = statistics.median(durations) if durations else 0.0
    return timedelta(seconds=max(config.stuck_run_s, 3 * typical))


def source_freshness(source: Source, now: datetime | None = None,
                     config: CitewiseSettings | None = None) -> SourceFreshness:
    """How fresh one source's documents are, and the badge that sums it up (see `freshness`)."""
    now = now or timezone.now()
    config = config or current()
    # Newest first (SyncRun's ordering); enough history for the medians and the last of each kind.
    source_runs = list(SyncRun.objects.filter(source=source)[:RUNS_READ])
    finished_content = [r for r in source_runs if r.kind in CONTENT_KINDS and r.state != SyncRun.State.RUNNING]
    last_run = finished_content[0] if finished_content else None
    last_success = next((r for r in finished_content if r.state in SUCCESSFUL), None)
    last_listing = next((r for r in finished_content if r.state in SUCCESSFUL
                         and r.kind in (SyncRun.Kind.FULL, SyncRun.Kind.PRUNE)), None)
    last_full_listing = next((r for r in finished_content if r.state in SUCCESSFUL and r.kind == SyncRun.Kind.FULL),
                             None)
    stuck = None
    for run in source_runs:
        if run.state != SyncRun.State.RUNNING:
            continue
        lease_expired = run.lease_expires_at is not None and run.lease_expires_at < now
        if lease_expired or now - run.started_at > _stuck_after(source_runs, run.kind, config):
            stuck = run
            break
    last_success_at = (last_success.finished_at or last_success.started_at) if last_success else None
    lag_s = (now - last_success_at).total_seconds() if last_success_at else None
    target_s = source.freshness_target_s or config.freshness_target_s
    listed_at = (last_listing.finished_at or last_listing.started_at) if last_listing else None
    held = last_listing if last_listing is not None and last_listing.state == SyncRun.State.HELD else None
    counts = Document.objects.filter(source=source).aggregate(
        indexed=Count("pk", filter=Q(status=Document.Status.INDEXED)),
        failing=Count("pk", filter=Q(status=Document.Status.ERROR)))
    if source.paused:
        health, reason = Health.PAUSED, "Paused: no scheduled sync runs until it is resumed."
    elif stuck is not None:
        started = timezone.localtime(stuck.started_at).strftime("%Y-%m-%d %H:%M")
        health, reason = Health.FAILING, (f"Stuck: a {stuck.kind} run started {started} has gone past its expected "
                                          f"time or lost its worker.")
    elif last_run is not None and last_run.state in (SyncRun.State.FAILED, SyncRun.State.PARTIAL):
        health, reason = Health.FAILING, ("The last content run failed." if last_run.state == SyncRun.State.FAILED
                                          else "The last content run could list only part of the source.")
    elif lag_s is None:
        health, reason = Health.STALE, "Never synced successfully."
    elif lag_s > target_s:
        health, reason = Health.STALE, "The last successful sync is older than the freshness target."
    else:
        health, reason = Health.HEALTHY, "Synced within the freshness target."
    return SourceFreshness(
        source=source, health=health, reason=reason,
        items_at_source=last_full_listing.seen if last_full_listing else None,
        indexed=counts["indexed"], last_success_at=last_success_at, lag_s=lag_s, target_s=target_s,
        failing_documents=counts["failing"], last_run_failed=last_run.failed if last_run else 0,
        last_run=last_run, stuck_run=stuck,
        since_complete_listing_s=(now - listed_at).total_seconds() if listed_at else None,
        held_deletions_since=(held.finished_at or held.started_at) if held else None,
        held_deletions=int((held.details.get("held_deletions") or {}).get("would_delete", 0)) if held else 0,
    )


def freshness(now: datetime | None = None, config: CitewiseSettings | None = None) -> list[SourceFreshness]:
    """Every source's freshness but evaluation corpora's, by name: items at the source against items indexed, the
    last successful sync and its lag against the source's target, failing items, a stuck run, how long a deletion
    at the source may take to leave the index, and a badge: paused, else failing (the last content run failed or was
    partial, or a run is stuck), else stale (the last success is older than the target, or there is none), else
    healthy."""
    now = now or timezone.now()
    config = config or current()
    # Each source reads its own latest runs (source_freshness): one bounded query a source, where reading every run
    # of every source to keep 200 of each would grow with the history the beat check reads every few minutes.
    return [source_freshness(source, now, config) for source in
            Source.objects.exclude(kind=Source.Kind.BEIR).order_by("name")]
