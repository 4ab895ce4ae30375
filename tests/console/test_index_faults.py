"""A broken or missing index is a clear 503 on every surface, and /healthz and /readyz tell it from an empty install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from answers.models import Answer
from bot.services import Asker, BotError, answer_question
from retrieval import services as retrieval_services
from tests.console.conftest import KITCHEN_QUESTION, auth, index_corpus, public_document, write_corpus
from tests.sse import sse_events

pytestmark = pytest.mark.django_db


def _live_file() -> Path:
    backend = retrieval_services.get_backend()
    path = Path(backend.index_info().physical_name)
    backend.drop_connection()
    for sidecar in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        sidecar.unlink(missing_ok=True)
    return path


def corrupt() -> Path:
    path = _live_file()
    path.write_bytes(b"this is not an SQLite database\n" * 1000)
    return path


def unreadable() -> Path:
    path = _live_file()
    path.unlink()
    path.mkdir()  # where the file was, something SQLite cannot open
    return path


FAULTS = {"corrupt": corrupt, "unreadable": unreadable}


@pytest.fixture(params=list(FAULTS))
def broken_index(request, corpus):
    """The embedded test corpus (tests/console/conftest.py), then its live file broken."""
    path = FAULTS[request.param]()
    yield corpus
    if path.is_dir():
        path.rmdir()


def api_ask(client, user):
    return client.post("/api/v1/ask", json.dumps({"question": KITCHEN_QUESTION}), content_type="application/json",
                       headers=auth(user))


def api_search(client, user):
    return client.post("/api/v1/search", json.dumps({"query": "espresso", "mode": "bm25"}),
                       content_type="application/json", headers=auth(user))


def stream_events(client, user) -> list[tuple[str, dict]]:
    client.force_login(user)
    response = client.post("/chat/stream", {"q": KITCHEN_QUESTION})
    assert response.status_code == 200
    return sse_events(response)


def check_api_ask(client, user, corpus):
    response = api_ask(client, user)
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
    assert Answer.objects.get(question=KITCHEN_QUESTION).status == "failed"


def check_api_search(client, user, corpus):
    response = api_search(client, user)
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def check_api_documents(client, user, corpus):
    response = client.get(f"/api/v1/documents/{public_document(corpus[1]).id}", headers=auth(user))
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def check_chat_stream(client, user, corpus):
    events = stream_events(client, user)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["status"] == 503 and "unavailable" in events[0][1]["message"]


def check_search_page(client, user, corpus):
    client.force_login(user)
    response = client.get("/", {"q": "espresso"})
    assert response.status_code == 503 and b"unavailable" in response.content


def check_document_viewer(client, user, corpus):
    client.force_login(user)
    document_id = public_document(corpus[1]).id
    for url in (f"/documents/{document_id}?section=0", f"/documents/{document_id}/open"):
        response = client.get(url)
        assert response.status_code == 503 and b"unavailable" in response.content, url


def check_chat_bot(client, user, corpus):
    with pytest.raises(BotError) as raised:
        answer_question(Asker("slack", "T1", "U1", user), channel_id="C1", thread_id="1.0", text=KITCHEN_QUESTION)
    assert raised.value.retryable and "unavailable" in raised.value.user_message


def check_ask_command(client, user, corpus):
    with pytest.raises(CommandError, match="unavailable"):
        call_command("ask", KITCHEN_QUESTION)


def check_search_command(client, user, corpus):
    with pytest.raises(CommandError, match="unavailable"):
        call_command("search", "espresso", "--mode", "bm25")


SURFACES = {
    "api ask": check_api_ask, "api search": check_api_search, "api documents": check_api_documents,
    "chat stream": check_chat_stream, "search page": check_search_page, "document viewer": check_document_viewer,
    "chat bot": check_chat_bot,
    "manage.py ask": check_ask_command, "manage.py search": check_search_command,
}


@pytest.mark.parametrize("surface", list(SURFACES))
def test_a_broken_embedded_index_is_a_clear_503_on_every_surface(client, broken_index, alice, surface):
    """Reproduces issue 10 item 15: an unreadable or corrupt embedded index raises sqlite errors that every
    surface turns into a 500 (or a crash)."""
    SURFACES[surface](client, alice, broken_index)


def test_health_and_readiness_report_a_broken_embedded_index_never_a_500(client, broken_index):
    """Reproduces issue 10 item 15: /healthz answers a broken embedded index with a 500."""
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert response.json()["checks"]["search"].startswith("error"), response.json()


@pytest.fixture
def deleted_index(tmp_path, main_index, db):
    """A corpus indexed on each backend, then its index deleted behind the application's back."""
    source = index_corpus(write_corpus(tmp_path / "docs"))
    backend = retrieval_services.get_backend()
    if main_index == "elasticsearch":
        for physical in backend.index_info().physical_name.split(","):
            backend.client.indices.delete(index=physical)
    else:
        backend.drop_connection()
        for path in Path(backend.index_info().physical_name).parent.iterdir():
            path.unlink()
    return tmp_path, source


@pytest.mark.parametrize("surface", ["api ask", "api search", "api documents", "chat stream", "document viewer"])
def test_a_deleted_index_is_an_outage_not_an_empty_answer(client, deleted_index, alice, surface):
    """Reproduces issue 10 item 15: with the index deleted, ask answers 200 "I couldn't find an answer" as if
    nothing had been ingested."""
    SURFACES[surface](client, alice, deleted_index)


def test_health_and_readiness_tell_a_deleted_index_from_an_empty_install(client, deleted_index):
    """Reproduces issue 10 item 15: with the index deleted, /healthz answers 200 "empty"."""
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert response.json()["checks"]["search"] == "index missing", response.json()


def test_an_empty_install_is_healthy_and_ready_and_refuses_politely(client, main_index, alice):
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        assert response.json()["checks"]["search"] == "empty"
    response = api_ask(client, alice)
    assert response.status_code == 200 and response.json()["refused"]


def test_readiness_checks_the_celery_broker_when_one_is_configured(client, corpus, settings):
    settings.CELERY_BROKER_URL = ""
    assert client.get("/readyz").json()["checks"]["broker"] == "not configured: tasks run in-process"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "search": "ok", "broker": "ok"}
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["broker"].startswith("error")
    assert client.get("/healthz").status_code == 200  # liveness does not depend on the broker


def test_readiness_fails_while_elasticsearch_is_unreachable_or_the_index_holds_another_model(client, corpus,
                                                                                             settings):
    settings.CITEWISE = settings.CITEWISE.replace(embedding_model="another/model")
    response = client.get("/readyz")
    assert response.status_code == 503 and "reindex" in response.json()["checks"]["search"]
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="elasticsearch",
                         elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout_s=2)
    retrieval_services._backends.clear()
    try:
        for url in ("/healthz", "/readyz"):
            response = client.get(url)
            assert response.status_code == 503 and response.json()["checks"]["search"].startswith("error"), url
    finally:
        retrieval_services._backends.clear()
