"""Celery entry points; eager in the embedded default, on the Redis broker in production.

`celery -A console beat` runs `dispatch_due_syncs` every CITEWISE_SYNC_DISPATCH_INTERVAL_S: it queues, per source,
each kind of sync whose interval (the source's own, else the CITEWISE_*_INTERVAL_S default) has passed, and any run
a dead worker left behind, which the next run of its lane resumes from its checkpoint. docs/acl.md gives the
staleness that follows from the intervals.
"""

from __future__ import annotations

import logging

from celery import shared_task

from connectors import selectors, services
from connectors.models import Source
from connectors.runs import SyncInProgress
from search.types import SearchUnavailable

logger = logging.getLogger("citewise.connectors")


def _missing(source_id: int, what: str) -> dict:
    logger.info("%s skipped: source %s no longer exists", what, source_id)
    return {"source_id": source_id, "skipped": "no such source"}


@shared_task(name="connectors.run_sync", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def run_sync(source_id: int, kind: str, trigger: str = "schedule") -> dict:
    """One run of one kind of sync; a crashed run of the same lane is resumed instead. Retried with backoff while
    the search index is unreachable."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return _missing(source_id, f"{kind} sync")
    try:
        run = services.run_sync(source, kind, trigger=trigger)
    except SyncInProgress as exc:  # the running sync covers this one's work; the next schedule follows
        logger.info("%s sync skipped: %s", kind, exc)
        return {"source_id": source_id, "skipped": str(exc)}
    return {"source_id": source_id, "run_id": run.pk, "kind": run.kind, "state": run.state}


@shared_task(name="connectors.sync_source", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_source(source_id: int) -> dict:
    """A full content sync of one source; retried with backoff while the search index is unreachable."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:  # deleted after the task was queued: nothing to do
        return _missing(source_id, "content sync")
    try:
        return services.sync_source(source, trigger="task").as_dict()
    except SyncInProgress as exc:  # the running sync covers this one's work; the next schedule follows
        logger.info("content sync skipped: %s", exc)
        return {"source_id": source_id, "skipped": str(exc)}


@shared_task(name="connectors.sync_permissions", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_permissions(source_id: int) -> dict:
    """Permission-only sync of one source: groups, memberships and changed document ACLs; no re-indexing."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return _missing(source_id, "permission sync")
    try:
        return services.sync_permissions(source, trigger="task").as_dict()
    except SyncInProgress as exc:
        return {"source_id": source_id, "skipped": str(exc)}


@shared_task(name="connectors.sync_groups", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def sync_groups(source_id: int) -> dict:
    """Group and membership sync alone: takes effect at the next query, since principals expand then."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return _missing(source_id, "group sync")
    try:
        report = services.sync_groups(source, trigger="task")
    except SyncInProgress as exc:
        return {"source_id": source_id, "skipped": str(exc)}
    return {"source_id": source_id, "groups": report.groups, "memberships": report.memberships}


@shared_task(name="connectors.dispatch_due_syncs")
def dispatch_due_syncs() -> list[tuple[int, str]]:
    """Queue every sync that is due, and every crashed run (to be resumed), one per source and lane."""
    due = selectors.due_syncs()
    for source_id, kind in due:
        run_sync.delay(source_id, kind, "schedule")
    return due


@shared_task(name="connectors.remove_orphaned_documents")
def remove_orphaned_documents() -> int:
    """Documents of sources deleted before their deletion reached the index (services.remove_orphaned_documents)."""
    try:
        return services.remove_orphaned_documents()
    except SearchUnavailable as exc:
        logger.warning("removing documents of deleted sources skipped, the index is unavailable: %s", exc)
        return 0

