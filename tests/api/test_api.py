"""The HTTP API (/api/v1), the chat page's answer stream, and manage.py ask — as clients use them."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from answers.models import Answer, Conversation, Feedback
from connectors import services as connectors
from console.views import answer_pieces
from retrieval import services as retrieval_services
from tests.sse import sse_events

pytestmark = pytest.mark.django_db

ASK, SEARCH, SCHEMA, DOCS, CHAT, STREAM = ("/api/v1/ask", "/api/v1/search", "/api/v1/schema/", "/api/v1/docs/",
                                           "/chat/", "/chat/stream")
QUESTION = "When is the espresso machine descaled?"


def feedback_url(answer_id) -> str:
    return f"/api/v1/answers/{answer_id}/feedback"


@pytest.fixture
def corpus(tmp_path, isolated_index):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kitchen.md").write_text("# Kitchen\n\nThe espresso machine is descaled every Friday by the "
                                       "facilities team.\n")
    (folder / "travel.md").write_text("# Travel policy\n\n## Hotels\n\nHotel stays are capped at 240 euros per "
                                      "night. Book hotels through the travel desk.\n")
    report = connectors.sync_source(connectors.ensure_source("filesystem", folder, config={"public": True}))
    assert (report.indexed, report.failed) == (2, 0)
    return folder


def make_user(username: str):
    return get_user_model().objects.create_user(username, f"{username}@example.com", "pw")


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def bob():
    return make_user("bob")


def auth(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def post(client, url, body, user=None, **kwargs):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(url, data, headers=auth(user) if user else {}, **kwargs)


# -- ask, search, feedback ---------------------------------------------------------------------------


def test_ask_answers_with_citations_and_records_the_answer(client, corpus, alice):
    response = post(client, ASK, {"question": QUESTION}, alice)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refused"] is False and "Friday" in body["answer"] and "[1]" in body["answer"]
    assert body["citations"][0]["title"] == "Kitchen"
    assert {"number", "document_id", "title", "url", "source_type", "modified_at"} <= body["citations"][0].keys()
    record = Answer.objects.get(id=body["answer_id"])
    assert (record.user, record.surface, record.question, record.text) == (alice, "api", QUESTION, body["answer"])
    assert str(record.conversation_id) == body["conversation_id"]

    follow_up = post(client, ASK, {"question": "And who does it?", "conversation_id": body["conversation_id"]}, alice)
    assert follow_up.status_code == 200, follow_up.content
    assert follow_up.json()["conversation_id"] == body["conversation_id"]
    assert Conversation.objects.get(id=body["conversation_id"]).answers.count() == 2


def test_ask_corrects_a_misspelt_question_and_says_what_it_searched_for(client, corpus, alice):
    body = post(client, ASK, {"question": "When is the esspresso machine descalled?"}, alice).json()
    assert body["corrected_query"] == "When is the espresso machine descaled?"
    assert body["search_query"] == body["corrected_query"]
    assert body["refused"] is False and body["citations"][0]["title"] == "Kitchen"
    assert post(client, ASK, {"question": QUESTION}, alice).json()["corrected_query"] == ""

    client.force_login(alice)
    meta = stream(client, {"q": "When is the esspresso machine descalled?"})[0][1]
    assert meta["corrected_query"] == "When is the espresso machine descaled?"


def test_ask_refuses_what_the_documents_do_not_answer(client, corpus, alice):
    body = post(client, ASK, {"question": "What is the pet insurance policy?"}, alice).json()
    assert body["refused"] is True and body["citations"] == [] and body["nearest_documents"]


def test_search_returns_hits_and_applies_filters(client, corpus, alice):
    response = post(client, SEARCH, {"query": "espresso descaling", "mode": "bm25", "limit": 1}, alice)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mode"] == "bm25" and len(body["hits"]) == 1 and body["hits"][0]["title"] == "Kitchen"
    assert {"chunk_id", "document_id", "url", "text", "score", "highlight"} <= body["hits"][0].keys()

    everything = post(client, SEARCH, {"query": "espresso hotel", "filters": {"mime_types": ["text/markdown"]}},
                      alice).json()["hits"]
    assert {hit["title"] for hit in everything} == {"Kitchen", "Travel policy"}
    for filters in ({"mime_types": ["application/pdf"]}, {"modified_before": "2000-01-01T00:00:00Z"},
                    {"source_ids": ["no-such-source"]}):
        response = post(client, SEARCH, {"query": "espresso hotel", "filters": filters}, alice)
        assert response.status_code == 200 and response.json()["hits"] == [], filters
    recent = post(client, SEARCH, {"query": "espresso", "filters": {"modified_after": "2000-01-01"}}, alice)
    assert recent.status_code == 200 and recent.json()["hits"]


def test_feedback_thumbs_and_flag(client, corpus, alice):
    answer_id = post(client, ASK, {"question": QUESTION}, alice).json()["answer_id"]
    up = post(client, feedback_url(answer_id), {"kind": "up"}, alice)
    assert up.status_code == 201, up.content
    assert up.json()["kind"] == "up" and up.json()["answer_id"] == answer_id
    flag = post(client, feedback_url(answer_id), {"kind": "flag", "reason": "wrong", "comment": "It moved to Monday."},
                alice)
    assert flag.status_code == 201, flag.content
    stored = Feedback.objects.filter(answer_id=answer_id).order_by("id")
    assert [(f.kind, f.reason, f.comment, f.user) for f in stored] == [
        ("up", "", "", alice), ("flag", "wrong", "It moved to Monday.", alice)]


def test_feedback_on_someone_elses_answer_is_404(client, corpus, alice, bob):
    answer_id = post(client, ASK, {"question": QUESTION}, alice).json()["answer_id"]
    response = post(client, feedback_url(answer_id), {"kind": "down"}, bob)
    assert response.status_code == 404 and response.json() == {"detail": "unknown answer", "code": "answer_not_found"}
    assert post(client, feedback_url(uuid.uuid4()), {"kind": "up"}, alice).status_code == 404
    assert post(client, "/api/v1/answers/not-a-uuid/feedback", {"kind": "up"}, alice).status_code == 404
    assert not Feedback.objects.exists()


def test_someone_elses_conversation_cannot_be_continued(client, corpus, alice, bob):
    conversation_id = post(client, ASK, {"question": QUESTION}, alice).json()["conversation_id"]
    response = post(client, ASK, {"question": "and then?", "conversation_id": conversation_id}, bob)
    assert response.status_code == 400 and "conversation" in response.json()["detail"]


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize("url, body", [(ASK, {"question": QUESTION}), (SEARCH, {"query": "espresso"}),
                                       (feedback_url(uuid.uuid4()), {"kind": "up"})])
def test_the_api_needs_credentials(client, url, body):
    response = post(client, url, body)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Token"
    bad_token = client.post(url, json.dumps(body), content_type="application/json",
                            headers={"Authorization": "Token not-a-real-token"})
    assert bad_token.status_code == 401
    assert not Answer.objects.exists()


def test_a_signed_in_browser_session_may_use_the_api_with_its_csrf_token(corpus, alice):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    without_csrf = browser.post(SEARCH, json.dumps({"query": "espresso"}), content_type="application/json")
    assert without_csrf.status_code == 403 and "CSRF" in without_csrf.json()["detail"]
    page = browser.get(CHAT)
    token = page.context["csrf_token"]
    with_csrf = browser.post(SEARCH, json.dumps({"query": "espresso"}), content_type="application/json",
                             headers={"X-CSRFToken": str(token)})
    assert with_csrf.status_code == 200 and with_csrf.json()["hits"]


# -- invalid input is a 400 with a message, never a 500 ------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"question": ""}, "question"),
    ({"question": "   "}, "question"),
    ({"question": "x" * 3000}, "question"),
    ({}, "question"),
    ({"question": 42}, "question"),
    ({"question": ["when", "is"]}, "question"),
    ({"question": None}, "question"),
    ({"question": QUESTION, "conversation_id": "not-a-uuid"}, "conversation_id"),
    ({"question": QUESTION, "conversation_id": 7}, "conversation_id"),
    ([QUESTION], "non_field_errors"),
    ("not json at all", "detail"),
    ('{"question": "unterminated', "detail"),
])
def test_ask_rejects_bad_input(client, alice, body, field):
    response = post(client, ASK, body, alice)
    assert response.status_code == 400, response.content
    assert field in response.json() and response.json()[field]
    assert not Answer.objects.exists()


def test_ask_rejects_a_conversation_that_does_not_exist(client, alice):
    response = post(client, ASK, {"question": QUESTION, "conversation_id": str(uuid.uuid4())}, alice)
    assert response.status_code == 400 and response.json() == {"detail": "unknown conversation", "code": "invalid_question"}


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", "question=When+is+it"),
    ("text/plain", "When is the espresso machine descaled?"),
    ("multipart/form-data; boundary=xyz",
     '--xyz\r\nContent-Disposition: form-data; name="question"\r\n\r\nhi\r\n--xyz--'),
])
def test_a_body_that_is_not_json_is_a_400_whatever_its_content_type(client, alice, content_type, body):
    response = post(client, ASK, body, alice, content_type=content_type)
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize("url", [ASK, SEARCH, "/api/v1/answers/00000000-0000-0000-0000-000000000000/feedback"])
def test_deeply_nested_json_is_a_400(client, alice, url):
    """Reproduces issue 10 item 16: 100,000 nested `[` made Python's json raise RecursionError, a 500."""
    response = post(client, url, "[" * 100_000 + "]" * 100_000, alice)
    assert response.status_code == 400, response.content
    assert "nested too deeply" in response.json()["detail"]
    assert not Answer.objects.exists()


def test_a_body_larger_than_django_accepts_is_a_413(client, alice, settings):
    """Reproduces issue 10 item 16 (body size): the limit applied (DRF reads JSON through request.body), but the
    answer was Django's bare HTML 400 page, not an error the client can read."""
    body = {"question": QUESTION, "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    response = post(client, ASK, body, alice)
    assert response.status_code == 413, response.content
    assert "larger" in response.json()["detail"]
    assert not Answer.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"query": ""}, "query"),
    ({"query": 5}, "query"),
    ({"query": "x" * 5000}, "query"),
    ({"query": "espresso", "mode": "fuzzy"}, "mode"),
    ({"query": "espresso", "limit": "lots"}, "limit"),
    ({"query": "espresso", "limit": 0}, "limit"),
    ({"query": "espresso", "limit": 10_000}, "limit"),
    ({"query": "espresso", "limit": True}, "limit"),
    ({"query": "espresso", "filters": "kitchen"}, "filters"),
    ({"query": "espresso", "filters": {"source_ids": "one"}}, "filters"),
    ({"query": "espresso", "filters": {"mime_types": [1, 2]}}, "filters"),
    ({"query": "espresso", "filters": {"modified_after": "yesterday"}}, "filters"),
    ({"query": "espresso", "filters": {"modified_after": "2025-01-01", "modified_before": "2024-01-01"}}, "filters"),
    ("{", "detail"),
])
def test_search_rejects_bad_input(client, alice, body, field):
    response = post(client, SEARCH, body, alice)
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize("body, field", [
    ({"kind": "flag"}, "reason"),
    ({"kind": "flag", "reason": ""}, "reason"),
    ({"kind": "flag", "reason": "boring"}, "reason"),
    ({"kind": "meh"}, "kind"),
    ({}, "kind"),
    ({"kind": "up", "comment": 123}, "comment"),
    ({"kind": "up", "comment": "x" * 4001}, "comment"),
    ("kind=up", "detail"),
])
def test_feedback_rejects_bad_input(client, alice, body, field):
    conversation = Conversation.objects.create(user=alice)
    answer = Answer.objects.create(conversation=conversation, user=alice, question="q", text="a")
    response = post(client, feedback_url(answer.id), body, alice)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Feedback.objects.exists()


# -- search unavailable ------------------------------------------------------------------------------


@pytest.fixture
def elasticsearch_down(settings):
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="elasticsearch",
                         elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout_s=2)
    retrieval_services._backends.clear()
    yield
    retrieval_services._backends.clear()


def test_ask_while_elasticsearch_is_unreachable_is_a_503_and_the_question_is_kept(client, alice, elasticsearch_down):
    response = post(client, ASK, {"question": QUESTION}, alice)
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"] and "127.0.0.1" not in response.json()["detail"]
    record = Answer.objects.get(question=QUESTION)
    assert (record.user, record.status) == (alice, "failed") and record.error


def test_search_while_elasticsearch_is_unreachable_is_a_503(client, alice, elasticsearch_down):
    response = post(client, SEARCH, {"query": "espresso", "mode": "bm25"}, alice)
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def test_chat_stream_while_elasticsearch_is_unreachable_is_an_error_event(client, alice, elasticsearch_down):
    client.force_login(alice)
    events = stream(client, {"q": QUESTION})
    assert [name for name, _ in events] == ["error"] and events[0][1]["status"] == 503
    assert Answer.objects.get(question=QUESTION).surface == "web"


# -- the chat page and its answer stream ---------------------------------------------------------------


def stream(client, params) -> list[tuple[str, dict]]:
    response = client.post(STREAM, params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream") and response["Cache-Control"].startswith("no-cache")
    return sse_events(response)


def test_chat_stream_sends_meta_tokens_citations_done(client, corpus, alice):
    client.force_login(alice)
    events = stream(client, {"q": QUESTION})
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"token"} and len(names) >= 4
    meta, citations = events[0][1], events[-2][1]
    record = Answer.objects.get(id=meta["answer_id"])
    assert "".join(data["text"] for name, data in events if name == "token") == record.text
    assert (record.user, record.surface, str(record.conversation_id)) == (alice, "web", meta["conversation_id"])
    assert citations["citations"][0]["title"] == "Kitchen" and citations["refused"] is False

    follow_up = stream(client, {"q": "Who does it?", "conversation_id": meta["conversation_id"]})
    assert follow_up[0][0] == "meta" and follow_up[0][1]["conversation_id"] == meta["conversation_id"]


def test_the_answer_also_comes_as_html_for_the_api_and_the_chat(client, corpus, alice):
    body = post(client, ASK, {"question": QUESTION}, alice).json()
    html = body["answer_html"]
    assert html.startswith("<p>") and html.endswith("</p>") and "descaled every Friday" in html
    answer_id = body["answer_id"]
    assert f'<a class="cite" href="#src-{answer_id}-1" aria-label="source 1">[1]</a>' in html

    client.force_login(alice)
    events = stream(client, {"q": QUESTION})
    meta, citations = events[0][1], events[-2][1]
    answer_id = meta["answer_id"]
    assert f'href="#src-{answer_id}-1"' in citations["answer_html"]
    assert "descaled every Friday" in citations["answer_html"]


@pytest.mark.parametrize("params, message", [
    ({"q": ""}, "empty"),
    ({"q": "x" * 3000}, "longer"),
    ({"q": QUESTION, "conversation_id": "nope"}, "unknown conversation"),
    ({"q": QUESTION, "conversation_id": str(uuid.uuid4())}, "unknown conversation"),
])
def test_chat_stream_reports_bad_input_as_an_error_event(client, alice, params, message):
    client.force_login(alice)
    events = stream(client, params)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["status"] == 400 and message in events[0][1]["message"]


def test_a_non_staff_employee_signs_in_and_reaches_the_chat(client, alice):
    alice.set_password("correct horse")
    alice.is_staff = False
    alice.save()
    login = client.post("/accounts/login/?next=/chat/", {"username": alice.username, "password": "correct horse",
                                                          "next": "/chat/"})
    assert login.status_code == 302 and login["Location"] == "/chat/"
    assert client.get(CHAT).status_code == 200


def test_chat_needs_a_signed_in_user(client, alice):
    page = client.get(CHAT)
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/chat/")
    assert client.post(STREAM, {"q": QUESTION}).status_code == 401
    client.force_login(alice)
    page = client.get(CHAT)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="csrf-token"' in html and "/chat/stream" in html and 'value="missing_citation"' in html
    assert client.post(STREAM, {"q": QUESTION}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert not Answer.objects.exists()


def test_the_search_page_needs_sign_in_and_links_to_the_chat(client, alice):
    assert client.get("/")["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200 and 'href="/chat/"' in response.content.decode()


@pytest.mark.parametrize("text", ["", "one", "A short answer [1].", "Two lines [1].\n\nSecond  paragraph [2]. ",
                                  "  leading space and a very long tail " * 20])
def test_answer_pieces_join_back_to_the_text(text):
    pieces = answer_pieces(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)


# -- OpenAPI ---------------------------------------------------------------------------------------


def test_the_schema_documents_the_three_endpoints(client):
    response = client.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"/api/v1/ask", "/api/v1/search", "/api/v1/answers/{answer_id}/feedback"} <= paths.keys()
    components = schema["components"]["schemas"]
    for path, request_schema, response_schema, code in [
        ("/api/v1/ask", "AskRequest", "Answer", "200"), ("/api/v1/search", "SearchRequest", "SearchResponse", "200"),
        ("/api/v1/answers/{answer_id}/feedback", "FeedbackRequest", "Feedback", "201"),
    ]:
        operation = paths[path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(request_schema)
        assert operation["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith(response_schema)
        assert "400" in operation["responses"] and "401" in operation["responses"]
    assert {"question", "conversation_id"} <= components["AskRequest"]["properties"].keys()
    assert {"answer", "citations", "answer_id"} <= components["Answer"]["properties"].keys()
    assert "503" in paths["/api/v1/ask"]["post"]["responses"]
    assert "404" in paths["/api/v1/answers/{answer_id}/feedback"]["post"]["responses"]
    assert client.get(DOCS).status_code == 200


# -- manage.py ask ---------------------------------------------------------------------------------


def test_ask_command_prints_the_answer_citations_and_timings(corpus, capsys):
    call_command("ask", QUESTION)
    out = capsys.readouterr().out
    assert "Friday" in out and "[1] Kitchen" in out and "kitchen.md" in out and "timings:" in out

    call_command("ask", QUESTION, json=True)
    result = json.loads(capsys.readouterr().out)
    assert result["citations"][0]["title"] == "Kitchen" and result["timings_ms"]["total"] > 0
    assert Answer.objects.get(id=result["answer_id"]).surface == "cli"


def test_ask_command_as_a_user(corpus, alice, capsys):
    call_command("ask", QUESTION, "--as", "alice", "--json")
    answer_id = json.loads(capsys.readouterr().out)["answer_id"]
    assert Answer.objects.get(id=answer_id).user == alice
    with pytest.raises(CommandError, match="no user named 'mallory'"):
        call_command("ask", QUESTION, "--as", "mallory")
    with pytest.raises(CommandError, match="empty"):
        call_command("ask", "  ")
