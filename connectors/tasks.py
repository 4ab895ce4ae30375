"""Celery entry points; eager in the embedded default, on the Redis broker in production."""

from __future__ import annotations

from celery import shared_task

from connectors import services
from connectors.models import Source


@shared_task(name="connectors.sync_source", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def sync_source(source_id: int) -> dict:
    return services.sync_source(Source.objects.get(pk=source_id)).as_dict()


@shared_task(name="connectors.sync_all_sources")
def sync_all_sources() -> list[int]:
    source_ids = list(Source.objects.exclude(kind="beir").values_list("pk", flat=True))
    for source_id in source_ids:
        sync_source.delay(source_id)
    return source_ids
