"""JSON log lines carry the ids of the work that wrote them: the web request's (echoed in X-Request-ID, carried
into the tasks it queues), the answer's, and the chat event's."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings

from tests.console.conftest import KITCHEN_QUESTION, auth, corpus  # noqa: F401 - fixture


@pytest.fixture
def json_lines():
    """The settings' own JSON formatter on a handler of the test's own, for the citewise loggers."""
    formatter = logging.config.DictConfigurator(django_settings.LOGGING).configure_formatter(
        django_settings.LOGGING["formatters"]["json"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("citewise")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    logger.removeHandler(handler)
    logger.level = level


@pytest.mark.django_db
def test_an_asks_log_lines_carry_the_request_and_answer_ids(client, corpus, json_lines):
    from tests.console.conftest import make_user

    alice = make_user("alice")
    response = client.post("/api/v1/ask", json.dumps({"question": KITCHEN_QUESTION}),
                           content_type="application/json", headers={**auth(alice), "X-Request-ID": "req-4711"})
    assert response.status_code == 200 and response["X-Request-ID"] == "req-4711"
    [line] = [line for line in json_lines() if line["event"].startswith("answer ")]
    assert line["request_id"] == "req-4711" and line["answer_id"] == response.json()["answer_id"]
    assert line["citations"] >= 1 and line["surface"] == "api" and KITCHEN_QUESTION not in json.dumps(line)

    # Another request: a fresh id of its own (an implausible one offered is replaced), no ids left over.
    response = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert response["X-Request-ID"] != "<script>" and len(response["X-Request-ID"]) == 32


def test_a_queued_task_carries_the_request_id_into_the_worker():
    from console.celery import _carry_request_id
    from core import logcontext

    logcontext.new_request("req-99")
    headers: dict = {}
    _carry_request_id(headers=headers)
    assert headers == {"citewise_request_id": "req-99"}
    logcontext.clear()
