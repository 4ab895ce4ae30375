"""Search backends: one protocol, an embedded implementation and an Elasticsearch one."""

from __future__ import annotations

from search.backends.base import SearchBackend


def create_backend(kind: str, index_name: str) -> SearchBackend:
    from django.conf import settings

    config = settings.CITEWISE
    if kind == "embedded":
        from search.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(config["EMBEDDED_INDEX_DIR"], index_name)
    if kind == "elasticsearch":
        from search.backends.elastic import ElasticsearchBackend

        return ElasticsearchBackend(
            config["ELASTICSEARCH_URL"],
            index_name,
            api_key=config["ELASTICSEARCH_API_KEY"] or None,
            timeout_s=config["ELASTICSEARCH_TIMEOUT_S"],
            shards=config["ELASTICSEARCH_SHARDS"],
            replicas=config["ELASTICSEARCH_REPLICAS"],
        )
    raise ValueError(f"unknown search backend {kind!r} (expected embedded or elasticsearch)")


__all__ = ["SearchBackend", "create_backend"]
