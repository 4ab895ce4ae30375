"""Reads about what the database records: which indexes should hold chunks, and a source's credentials."""

from __future__ import annotations

from connectors import secrets
from connectors.models import Document, Source
from core.config import current


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
