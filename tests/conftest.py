"""Shared fixtures. Elasticsearch and PostgreSQL must be running (scripts/services.sh start): a missing service
fails, never skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BACKENDS = ["embedded", "elasticsearch"]

# The two CI passes (Makefile `test`): the suite on SQLite, the embedded default, without the production-stack tests;
# then, on PostgreSQL, the production-stack tests and those that depend on the database engine's own behaviour
# (transactions and row locks, constraints, migrations, the task and sync ledgers). Every test runs at least once.
PRODUCTION_STACK = ("tests/faults/", "tests/test_tracing.py", "tests/connectors/test_beat.py")
DATABASE_SEMANTICS = (
    "tests/bot/test_event_claims.py", "tests/connectors/test_sync_concurrency.py",
    "tests/connectors/test_worker_death.py", "tests/connectors/test_sync_runs.py",
    "tests/console/test_permission_sync.py", "tests/api/", "tests/console/test_conversation_history.py",
    "tests/console/test_review_queue.py", "tests/console/test_source_deletion.py",
    "tests/console/test_audit_and_admin.py", "tests/console/test_accounts_and_memberships.py",
    "tests/test_commands.py", "tests/answers/test_llm_budget.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        if path.startswith(PRODUCTION_STACK):
            item.add_marker(pytest.mark.production)
        elif path.startswith(DATABASE_SEMANTICS) and not item.get_closest_marker("production"):
            item.add_marker(pytest.mark.database)


def _elasticsearch_url() -> str:
    return settings.CITEWISE.elasticsearch_url


@pytest.fixture(scope="session")
def elasticsearch_node() -> Iterator[str]:
    from elasticsearch import Elasticsearch

    url = _elasticsearch_url()
    client = Elasticsearch(url, request_timeout=10)
    try:
        health = client.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:
        pytest.fail(f"Elasticsearch is not reachable at {url} ({exc}); start it with scripts/services.sh start")
    assert health["status"] in ("green", "yellow")
    # As production clusters run (ES's default): deleting or closing indices by wildcard is refused, so any
    # code or test of ours that does it fails here. scripts/services.sh starts the node so; a node started
    # otherwise gets it for the session and its earlier value back afterwards.
    key = "action.destructive_requires_name"
    previous = client.cluster.get_settings(flat_settings=True)["persistent"].get(key)
    client.cluster.put_settings(persistent={key: True})
    yield url
    client.cluster.put_settings(persistent={key: previous})


@pytest.fixture
def postgres_database() -> Iterator[dict]:
    """A fresh, empty database on the test PostgreSQL cluster (settings.TEST_POSTGRES_URL), as a DATABASES entry;
    dropped after the test."""
    import dj_database_url
    import psycopg

    server = dj_database_url.parse(settings.TEST_POSTGRES_URL)
    conninfo = {"host": server["HOST"], "port": server["PORT"] or 5432, "user": server["USER"],
                "password": server["PASSWORD"] or None, "dbname": server["NAME"], "connect_timeout": 5}
    try:
        admin = psycopg.connect(**conninfo, autocommit=True)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is not reachable at {settings.TEST_POSTGRES_URL} ({exc}); start it with "
                    "scripts/services.sh start")
    name = f"citewise_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield {**server, "NAME": name}
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


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


@pytest.fixture(params=BACKENDS)
def configured_backend(request, settings, tmp_path) -> Iterator[str]:
    """Each backend in turn as the configured one, with a fresh main index, so search(), ask() and the views use
    it; dropped afterwards. Yields the backend's kind."""
    from retrieval import services

    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=request.param, embedded_index_dir=tmp_path / "index",
                                                  index_name=f"test-main-{uuid.uuid4().hex[:10]}")
    services._backends.clear()
    yield request.param
    for backend in services._backends.values():
        backend.drop()
    services._backends.clear()


# Embeddings the demo corpus needed, kept for the whole session: the database (and its embedding cache) is rolled
# back after every test, and embedding the corpus again costs each test that loads it several seconds.
_DEMO_EMBEDDINGS: dict[tuple[str, str], tuple[int, bytes]] = {}


@pytest.fixture
def load_demo(db, isolated_index):
    """`manage.py load_demo` into the test's own index, embedding only what no earlier test of the session did."""
    from django.core.management import call_command

    from retrieval.models import EmbeddingCacheEntry

    def load(**options) -> None:
        EmbeddingCacheEntry.objects.bulk_create(
            [EmbeddingCacheEntry(model_name=model, content_hash=digest, dimensions=dimensions, vector=vector)
             for (model, digest), (dimensions, vector) in _DEMO_EMBEDDINGS.items()], ignore_conflicts=True)
        call_command("load_demo", no_admin=True, **options)
        for model, digest, dimensions, vector in EmbeddingCacheEntry.objects.values_list(
                "model_name", "content_hash", "dimensions", "vector"):
            _DEMO_EMBEDDINGS[(model, digest)] = (dimensions, bytes(vector))

    return load


@pytest.fixture(scope="session")
def embedder():
    from retrieval.embeddings import get_embedder

    return get_embedder()


@pytest.fixture
def isolated_index(settings, tmp_path) -> Iterator[str]:
    """Point the configured main index at a fresh embedded directory and a unique name."""
    from retrieval import services

    settings.CITEWISE = settings.CITEWISE.replace(embedded_index_dir=tmp_path / "index",
                         index_name=f"test-main-{uuid.uuid4().hex[:8]}")
    services._backends.clear()
    yield settings.CITEWISE.index_name
    for backend in services._backends.values():
        backend.drop()
    services._backends.clear()


TINY_BEIR_CORPUS = [
    {"_id": "d1", "title": "Volcanic soils", "text": "Andisols form from volcanic ash and hold water well."},
    {"_id": "d2", "title": "Coral bleaching", "text": "Marine heatwaves expel the algae that feed coral reefs."},
    {"_id": "d3", "title": "Permafrost", "text": "Thawing permafrost releases methane stored for millennia."},
    {"_id": "d4", "title": "Tidal energy", "text": "Barrages convert the rise and fall of tides into power."},
]
TINY_BEIR_QUERIES = [{"_id": "q1", "text": "why do reefs bleach in heatwaves"},
                     {"_id": "q2", "text": "methane from thawing"}, {"_id": "q3", "text": "an unjudged query"}]
TINY_BEIR_QRELS = "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n"


@pytest.fixture
def tiny_beir_dataset(tmp_path):
    """A four-document BEIR dataset with two judged queries (and one unjudged), in a folder of its own."""
    import json

    from connectors.models import Source
    from retrieval.services import get_backend

    root = tmp_path / f"tiny{uuid.uuid4().hex[:6]}"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in TINY_BEIR_CORPUS) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in TINY_BEIR_QUERIES) + "\n")
    (root / "qrels" / "test.tsv").write_text(TINY_BEIR_QRELS)
    yield root
    for source in Source.objects.filter(kind="beir"):
        get_backend(source.index_name, source.search_backend).drop()
