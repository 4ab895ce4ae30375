"""Celery entry points; eager in the embedded default, on the Redis broker in production.

`celery -A console beat` runs `sync_all_permissions` every CITEWISE_PERMISSION_SYNC_INTERVAL_S and
`sync_all_sources` every CITEWISE_CONTENT_SYNC_INTERVAL_S (core/config.py); docs/acl.md
gives the staleness that follows from them.
"""

from __future__ import annotations

import logging

from celery import shared_task

from connectors import services
from connectors.models import Source
from search.types import SearchUnavailable

logger = logging.getLogger("citewise.connectors")


def _scheduled_sources() -> list[int]:
    # Evaluation corpora (BEIR) have no permissions to sync and are never re-read on a schedule.
    return list(Source.objects.exclude(kind="beir").order_by("pk").values_list("pk", flat=True))


@shared_task(name="connectors.sync_source", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_source(source_id: int) -> dict:
    """Content sync of one source; retried with backoff while the search index is unreachable."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:  # deleted after the task was queued: nothing to do
        logger.info("content sync skipped: source %s no longer exists", source_id)
        return {"source_id": source_id, "skipped": "no such source"}
    try:
        return services.sync_source(source).as_dict()
    except services.SyncInProgress as exc:  # the running sync covers this one's work; the next schedule follows
        logger.info("content sync skipped: %s", exc)
        return {"source_id": source_id, "skipped": str(exc)}


@shared_task(name="connectors.sync_all_sources")
def sync_all_sources() -> list[int]:
    try:  # documents of sources deleted before deletes reached the index (services.remove_orphaned_documents)
        services.remove_orphaned_documents()
    except SearchUnavailable as exc:
        logger.warning("removing documents of deleted sources skipped, the index is unavailable: %s", exc)
    source_ids = _scheduled_sources()
    for source_id in source_ids:
        sync_source.delay(source_id)
    return source_ids


@shared_task(name="connectors.sync_permissions", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_permissions(source_id: int) -> dict:
    """Permission-only sync of one source: groups, memberships and changed document ACLs; no re-indexing."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:  # deleted after the task was queued: nothing to do
        logger.info("permission sync skipped: source %s no longer exists", source_id)
        return {"source_id": source_id, "skipped": "no such source"}
    return services.sync_permissions(source).as_dict()


@shared_task(name="connectors.sync_all_permissions")
def sync_all_permissions() -> list[int]:
    source_ids = _scheduled_sources()
    for source_id in source_ids:
        sync_permissions.delay(source_id)
    return source_ids


@shared_task(name="connectors.sync_groups", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def sync_groups(source_id: int) -> dict:
    """Group and membership sync alone: takes effect at the next query, since principals expand then."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return {"source_id": source_id, "skipped": "no such source"}
    groups, memberships = services.sync_groups(source)
    return {"source_id": source_id, "groups": groups, "memberships": memberships}
