"""Celery entry points; eager in the embedded default, on the Redis broker in production.

`celery -A console beat` runs `dispatch_due_syncs` every CITEWISE_SYNC_DISPATCH_INTERVAL_S: it queues, per source,
each kind of sync whose interval (the source's own, else the CITEWISE_*_INTERVAL_S default) has passed, and any run
a dead worker left behind, which the next run of its lane resumes from its checkpoint. docs/acl.md gives the
staleness that follows from the intervals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task

from connectors import alerts, selectors, services
from connectors.models import Source
from connectors.runs import SyncInProgress
from search.types import SearchUnavailable

logger = logging.getLogger("citewise.connectors")


def _on_source(source_id: int, what: str, sync: Callable[[Source], dict]) -> dict:
    """`sync` of the source, or why it was skipped: the source was deleted after the task was queued, or another run
    of its lane holds it (that run covers this one's work; the next schedule follows)."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        logger.info("%s skipped: source %s no longer exists", what, source_id)
        return {"source_id": source_id, "skipped": "no such source"}
    try:
        return sync(source)
    except SyncInProgress as exc:
        logger.info("%s skipped: %s", what, exc)
        return {"source_id": source_id, "skipped": str(exc)}


@shared_task(name="connectors.run_sync", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def run_sync(source_id: int, kind: str, trigger: str = "schedule") -> dict:
    """One run of one kind of sync; a crashed run of the same lane is resumed instead. Retried with backoff while
    the search index is unreachable."""
    def sync(source: Source) -> dict:
        run = services.run_sync(source, kind, trigger=trigger)
        return {"source_id": source_id, "run_id": run.pk, "kind": run.kind, "state": run.state}

    return _on_source(source_id, f"{kind} sync", sync)


@shared_task(name="connectors.sync_source", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_source(source_id: int) -> dict:
    """A full content sync of one source; retried with backoff while the search index is unreachable."""
    return _on_source(source_id, "content sync", lambda source: services.sync_source(source, trigger="task").as_dict())


@shared_task(name="connectors.sync_permissions", acks_late=True, autoretry_for=(ConnectionError, SearchUnavailable),
             retry_backoff=True, max_retries=5)
def sync_permissions(source_id: int) -> dict:
    """Permission-only sync of one source: groups, memberships and changed document ACLs; no re-indexing."""
    return _on_source(source_id, "permission sync",
                      lambda source: services.sync_permissions(source, trigger="task").as_dict())


@shared_task(name="connectors.sync_groups", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def sync_groups(source_id: int) -> dict:
    """Group and membership sync alone: takes effect at the next query, since principals expand then."""
    def sync(source: Source) -> dict:
        report = services.sync_groups(source, trigger="task")
        return {"source_id": source_id, "groups": report.groups, "memberships": report.memberships}

    return _on_source(source_id, "group sync", sync)


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



@shared_task(name="connectors.check_freshness")
def check_freshness() -> list[dict]:
    """The freshness alert hook (connectors.alerts): the health gauge set, sources newly stale or failing alerted."""
    return [alert.__dict__ for alert in alerts.check_freshness()]
