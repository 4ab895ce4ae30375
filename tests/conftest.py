"""Shared fixtures. Elasticsearch must be running (scripts/services.sh start): a missing node fails, never skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BACKENDS = ["embedded", "elasticsearch"]


def _elasticsearch_url() -> str:
    return settings.CITEWISE["ELASTICSEARCH_URL"]


@pytest.fixture(scope="session")
def elasticsearch_node() -> str:
    from elasticsearch import Elasticsearch

    url = _elasticsearch_url()
    client = Elasticsearch(url, request_timeout=10)
    try:
        health = client.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Elasticsearch is not reachable at {url} ({exc}); start it with scripts/services.sh start")
    assert health["status"] in ("green", "yellow")
    return url


@pytest.fixture
def make_backend(tmp_path, request):
    """Build a fresh, empty backend of a kind with a unique index; dropped after the test."""
    created = []

    def factory(kind: str):
        from search.backends.elastic import ElasticsearchBackend
        from search.backends.embedded import EmbeddedBackend

        name = f"test-{uuid.uuid4().hex[:12]}"
        if kind == "embedded":
            backend = EmbeddedBackend(tmp_path / "index", name)
        else:
            request.getfixturevalue("elasticsearch_node")
            backend = ElasticsearchBackend(_elasticsearch_url(), name)
        created.append(backend)
        return backend

    yield factory
    for backend in created:
        backend.drop()


@pytest.fixture(params=BACKENDS)
def backend(request, make_backend):
    return make_backend(request.param)


@pytest.fixture(scope="session")
def embedder():
    from search.embeddings import get_embedder

    return get_embedder()


@pytest.fixture
def isolated_index(settings, tmp_path) -> Iterator[str]:
    """Point the configured main index at a fresh embedded directory and a unique name."""
    from search import services

    settings.CITEWISE = {**settings.CITEWISE, "EMBEDDED_INDEX_DIR": tmp_path / "index",
                         "INDEX_NAME": f"test-main-{uuid.uuid4().hex[:8]}"}
    services._backends.clear()
    yield settings.CITEWISE["INDEX_NAME"]
    for backend in services._backends.values():
        backend.drop()
    services._backends.clear()
