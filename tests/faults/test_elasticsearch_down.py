"""Elasticsearch stops in the middle of a run and comes back.

The node is reached through a TCP forwarder that the test cuts and restores (what a stopped node looks like to a
client: refused and reset connections). A real Celery worker on Redis ingests; the database is the suite's own engine
(tests/workers.py).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from answers.models import Answer
from connectors import tasks
from connectors.models import Document, SyncRun
from console import healthcheck
from retrieval import services as retrieval_services
from tests.console.conftest import KITCHEN_QUESTION, auth, index_corpus, make_user, write_corpus
from tests.faults.outages import TcpForwarder
from tests.workers import redis_celery, shared_database, start_worker, stop, worker_environment  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]

NEW_QUESTION = "Who waters the office ficus?"
OTHER_QUESTION = "Who descales the espresso machine?"


def ask(client, user, question: str):
    return client.post("/api/v1/ask", json.dumps({"question": question}), content_type="application/json",
                       headers=auth(user))


@pytest.fixture
def elasticsearch_behind_forwarder(elasticsearch_node, settings, tmp_path):
    target = urlsplit(elasticsearch_node)
    forwarder = TcpForwarder(target.hostname, target.port).start()
    url = f"http://{forwarder.address}"
    index_name = f"test-outage-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="elasticsearch", elasticsearch_url=url,
                                                  elasticsearch_timeout_s=3, index_name=index_name)
    retrieval_services._backends.clear()
    yield forwarder
    if not forwarder.listening:
        forwarder.restore()
    for backend in retrieval_services._backends.values():
        backend.drop()
    retrieval_services._backends.clear()
    forwarder.cut()


def wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_elasticsearch_stopped_mid_run_is_a_clear_503_and_ingestion_resumes_when_it_returns(
        client, settings, tmp_path, elasticsearch_behind_forwarder, shared_database, redis_celery):
    forwarder = elasticsearch_behind_forwarder
    folder = write_corpus(tmp_path / "docs")
    source = index_corpus(folder)
    alice = make_user("alice")
    assert ask(client, alice, KITCHEN_QUESTION).json()["citations"]

    env = worker_environment(shared_database, tmp_path, index_dir=tmp_path / "unused",
                             index_name=settings.CITEWISE.index_name)
    env.update(CITEWISE_SEARCH_BACKEND="elasticsearch", ELASTICSEARCH_URL=settings.CITEWISE.elasticsearch_url,
               ELASTICSEARCH_TIMEOUT_S="3")
    log = tmp_path / "worker.log"
    worker = start_worker(env, redis_celery, log)
    try:
        # The worker's container health check (docker-compose.yml): it answers a ping over the broker.
        node = f"{redis_celery}-{log.stem}@{socket.gethostname()}"
        wait_for(lambda: healthcheck.main(["worker", "--node", node, "--timeout", "2"]) == 0, 120,
                 "the worker to answer its health check", log)
        forwarder.cut()
        # A question not answered before: a clear "unavailable", recorded as a failed answer, never a 500 or an
        # empty "I don't know". The one answered a moment ago is still served from the answer cache.
        response = ask(client, alice, OTHER_QUESTION)
        assert response.status_code == 503, response.content
        assert "unavailable" in response.json()["detail"].lower()
        assert Answer.objects.filter(question=OTHER_QUESTION, status="failed").exists()
        assert ask(client, alice, KITCHEN_QUESTION).status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["search"].startswith("error")

        # Ingestion while the node is down: the worker's sync fails on the index and is retried with backoff.
        (folder / "public" / "plants.md").write_text(
            "# Plants\n\nThe office ficus is watered every Tuesday by Priya from reception.\n")
        tasks.run_sync.delay(source.pk, "full", "test")
        wait_for(lambda: "Retry in" in log.read_text(), 180, "the worker to retry the sync", log)
        assert not Document.objects.filter(source=source, external_id="public/plants.md",
                                           indexed_at__isnull=False).exists()

        forwarder.restore()
        # Nothing lost: the retried sync indexes the file written during the outage; asking works again.
        wait_for(lambda: Document.objects.filter(source=source, external_id="public/plants.md",
                                                 indexed_at__isnull=False).exists(), 240, "the retried sync", log)
        wait_for(lambda: not SyncRun.objects.filter(source=source, state="running").exists(), 120,
                 "the run to finish", log)
    finally:
        if not forwarder.listening:
            forwarder.restore()
        stop(worker)
    assert SyncRun.objects.filter(source=source, kind="full", state="succeeded").exists(), log.read_text()[-4000:]
    assert client.get("/readyz").status_code == 200
    answered = ask(client, alice, NEW_QUESTION)
    assert answered.status_code == 200, answered.content
    body = answered.json()
    assert "Tuesday" in body["answer"] and body["citations"], body
    kitchen = ask(client, alice, KITCHEN_QUESTION).json()
    assert "Friday" in kitchen["answer"]
    # The index holds every document the database does, the one written during the outage included.
    assert retrieval_services.get_backend().document_ids() == set(
        Document.objects.filter(source=source).values_list("id", flat=True)) and Document.objects.count() == 3
