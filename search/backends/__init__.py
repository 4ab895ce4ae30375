"""Search backends: one protocol, an embedded implementation and an Elasticsearch one."""

from __future__ import annotations

from core.config import current
from search.backends.base import SearchBackend


def create_backend(kind: str, index_name: str) -> SearchBackend:

    config = current()
    if kind == "embedded":
        from search.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(config.embedded_index_dir, index_name, dense_search=config.embedded_dense_search)
    if kind == "elasticsearch":
        from search.backends.elastic import ElasticsearchBackend

        return ElasticsearchBackend(
            config.elasticsearch_url,
            index_name,
            api_key=config.elasticsearch_api_key or None,
            timeout_s=config.elasticsearch_timeout_s,
            shards=config.elasticsearch_shards,
            replicas=config.elasticsearch_replicas,
        )
    raise ValueError(f"unknown search backend {kind!r} (expected embedded or elasticsearch)")


__all__ = ["SearchBackend", "create_backend"]
