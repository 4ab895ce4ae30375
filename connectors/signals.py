"""Index-first deletes on every ORM path: a Source or Document row goes only after the search index let go of it;
and the connectors' answer to retrieval's index_found_empty (is an empty index an outage?).

The receivers run inside the delete's transaction, before any row is deleted (Django sends every pre_delete
first). SearchUnavailable from the index aborts the delete, so nothing is lost or left half-done: the rows stay
and their documents stay searchable only to whom they were, until the delete is retried.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from connectors.models import Document, Source
from connectors.selectors import indexed_chunks_expected
from retrieval.signals import index_found_empty


@receiver(index_found_empty, dispatch_uid="citewise.documents-were-indexed-there")
def documents_were_indexed_there(sender: type, backend_kind: str, index_name: str, **kwargs: Any) -> bool:
    """An empty index is an outage when the database records documents indexed in it (retrieval.selectors)."""
    return indexed_chunks_expected(backend_kind, index_name)


@receiver(pre_delete, sender=Source, dispatch_uid="citewise.source-leaves-the-index-first")
def source_leaves_the_index_first(sender: type[Source], instance: Source, **kwargs: Any) -> None:
    from connectors import services

    services.remove_source_from_index(instance)


@receiver(pre_delete, sender=Document, dispatch_uid="citewise.document-leaves-the-index-first")
def document_leaves_the_index_first(sender: type[Document], instance: Document, origin: Any = None,
                                    **kwargs: Any) -> None:
    from connectors import services

    origin_model = origin.model if isinstance(origin, QuerySet) else type(origin)
    # A source's delete removes all its documents in one call; prune and delete_documents already did theirs.
    if origin_model is Source or getattr(origin, services.REMOVED_FROM_INDEX, False):
        return
    services.remove_documents_from_index([instance])
