"""Every question asked is recorded with its audit event, whatever became of it; errors reach clients in one JSON
shape that names nothing internal (issue 11 items 2 and 4)."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import transaction

from answers.models import Answer
from answers.pipeline import Steps
from answers.services import InvalidQuestion, ask
from audit.models import AuditEvent
from core.errors import CitewiseError
from search.types import SearchUnavailable
from tests.api.test_api import ASK, QUESTION, alice, corpus, feedback_url, post  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
PRINCIPALS = frozenset({"public"})


def asked(answer: Answer) -> AuditEvent:
    return AuditEvent.objects.get(action="ask", object_id=str(answer.id))


class ParserBug(Exception):
    pass


def test_an_unexpected_error_in_the_pipeline_is_recorded_and_audited_then_raised(corpus):
    def broken_rerank(query, hits, config):
        raise ParserBug("internal detail at es-prod-3.corp:9200")

    with pytest.raises(ParserBug):
        ask(QUESTION, principals=PRINCIPALS, surface="api", steps=Steps(rerank=broken_rerank))
    [answer] = Answer.objects.all()
    assert answer.status == "failed" and not answer.refused and answer.question == QUESTION
    assert answer.error.startswith("ParserBug: internal detail")
    assert answer.search_query == QUESTION and "rerank" in answer.timings and "retrieve" in answer.timings
    event = asked(answer)
    assert event.detail["status"] == "failed" and event.detail["error"] == answer.error


def test_search_down_is_recorded_and_audited_with_its_user_message(corpus):
    def search_down(query, principals, config, timings):
        raise SearchUnavailable("ConnectionError: http://10.0.0.7:9200 refused")

    with pytest.raises(SearchUnavailable) as raised:
        ask(QUESTION, principals=PRINCIPALS, steps=Steps(retrieve=search_down))
    assert isinstance(raised.value, CitewiseError) and raised.value.http_status == 503
    assert "10.0.0.7" not in raised.value.user_message and "10.0.0.7" in str(raised.value)
    [answer] = Answer.objects.all()
    assert answer.status == "failed" and asked(answer).detail["status"] == "failed"


def test_answered_refused_and_cached_outcomes_each_have_one_audit_event(corpus, settings):
    settings.CITEWISE = settings.CITEWISE.replace(answer_cache_ttl_s=300)
    answered = ask(QUESTION, principals=PRINCIPALS)
    again = ask(QUESTION, principals=PRINCIPALS)
    refused = ask("What is the airspeed of an unladen swallow?", principals=PRINCIPALS)
    assert not answered.refused and not again.refused and refused.refused
    for result, status, cache in ((answered, "answered", "miss"), (again, "answered", "hit"),
                                  (refused, "refused", "miss")):
        answer = Answer.objects.get(id=result.answer_id)
        event = asked(answer)
        assert (answer.status, event.detail["status"], event.detail["cache"]) == (status, status, cache)
    assert AuditEvent.objects.filter(action="ask").count() == 3


def test_the_answer_and_its_audit_event_are_written_together(corpus):
    """An answer is saved in the same transaction as its audit event: rolled back, neither remains."""
    with pytest.raises(RuntimeError), transaction.atomic():
        result = ask(QUESTION, principals=PRINCIPALS)
        assert Answer.objects.filter(id=result.answer_id).exists() and asked(Answer.objects.get(id=result.answer_id))
        raise RuntimeError("roll back")
    assert not Answer.objects.exists() and not AuditEvent.objects.filter(action="ask").exists()


def test_a_question_refused_before_any_work_is_not_recorded(corpus):
    with pytest.raises(InvalidQuestion) as raised:
        ask("   ", principals=PRINCIPALS)
    assert raised.value.code == "invalid_question" and raised.value.user_message == "the question is empty"
    assert not Answer.objects.exists()


# -- the API's errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_api_errors_are_json_even_for_malformed_ids_and_unknown_urls(client, alice, settings, debug):
    settings.DEBUG = debug
    for url in (feedback_url("not-a-uuid"), "/api/v1/answers/", "/api/v1/no-such-endpoint", "/api/v1/ask/extra"):
        response = post(client, url, {"kind": "up"}, alice)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Not found.", "code": "not_found"}, url
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client.get("/no-such-page").status_code == 404  # outside /api/: the site's own page


def test_an_unexpected_api_error_is_a_json_500_that_names_nothing_internal(client, corpus, alice, settings, caplog):
    # A reranker model that is not there (a typo in CITEWISE_RERANK_MODEL): loading it fails inside the pipeline.
    missing = "/srv/models/cross-encoder-that-does-not-exist"
    settings.CITEWISE = settings.CITEWISE.replace(reranker="cross-encoder", rerank_model=missing)
    settings.DEBUG = True  # no HTML debug page either
    api_log = logging.getLogger("citewise.api")  # Citewise's loggers do not propagate to the root's handlers
    api_log.addHandler(caplog.handler)
    try:
        response = post(client, ASK, {"question": QUESTION}, alice)
    finally:
        api_log.removeHandler(caplog.handler)
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "internal_error" and body["detail"].startswith("Something went wrong")
    assert missing not in json.dumps(body) and "Traceback" not in json.dumps(body)
    reference = body["detail"].rsplit("ref ", 1)[1].rstrip(")")
    assert any(reference in record.getMessage() for record in caplog.records)  # the log has what the body hides
    [answer] = Answer.objects.all()
    assert answer.status == "failed" and answer.user == alice and asked(answer).detail["status"] == "failed"


def test_validation_errors_keep_the_fields_and_gain_a_code(client, alice):
    response = post(client, ASK, {"question": ""}, alice)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input" and body["question"] and body["detail"]
