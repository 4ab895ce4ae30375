"""The web chat's stream shows the answer being made as it happens: each stage of the pipeline as it starts, and,
with a composer that streams (an OpenAI-compatible server), its draft piece by piece before the verified answer.
Nothing streams where nobody watches (the API)."""

from __future__ import annotations

import json

import pytest

from answers.models import Answer
from tests.console.conftest import KITCHEN_QUESTION
from tests.sse import sse_events
from tests.standins import openai as openai_api

pytestmark = pytest.mark.django_db


def asked_in_the_chat(client, user, question: str) -> list[tuple[str, dict]]:
    client.force_login(user)
    response = client.post("/chat/stream", {"q": question})
    assert response.status_code == 200
    return sse_events(response, progress=True)


def test_each_stage_is_reported_as_it_starts_then_the_answer(client, corpus, alice):
    events = asked_in_the_chat(client, alice, KITCHEN_QUESTION)
    names = [name for name, _ in events]
    first_answer_event = names.index("meta")
    stages = [data["stage"] for name, data in events[:first_answer_event] if name == "progress"]
    assert stages == ["searching", "reading", "writing", "checking"]
    assert all(name == "progress" for name in names[:first_answer_event])
    reading = next(data for _, data in events if data.get("stage") == "reading")
    assert reading["passages"] >= 1 and reading["label"] == f"Reading {reading['passages']} passages…"
    assert "draft" not in names  # the extractive composer has no draft to show
    assert names[-2:] == ["citations", "done"]


@pytest.fixture
def openai_composer(settings):
    with openai_api.OpenAIStandIn() as server:
        server.always(openai_api.CHAT_COMPLETIONS, openai_api.grounded)
        settings.CITEWISE = settings.CITEWISE.replace(
            composer="openai", openai_base_url=f"{server.url}/v1", openai_api_key="test-key", openai_model="gpt-test",
            llm_max_retries=0)
        yield server


def test_a_streaming_composer_s_draft_arrives_piece_by_piece_before_the_verified_answer(
        client, corpus, alice, openai_composer):
    events = asked_in_the_chat(client, alice, KITCHEN_QUESTION)
    names = [name for name, _ in events]
    drafts = [data["text"] for name, data in events if name == "draft"]
    assert len(drafts) > 3 and names.index("draft") < names.index("meta")
    # The draft is the model's reply as sent, piece by piece; what is shown in the end is the verified answer.
    asked = openai_composer.requests_to(openai_api.CHAT_COMPLETIONS)[-1].json
    assert asked["stream"] is True and asked["stream_options"] == {"include_usage": True}
    draft = "".join(drafts)
    assert "descaled every Friday" in draft and draft.rstrip().endswith("[1].")
    answer = Answer.objects.get()
    assert (answer.composer, answer.refused, answer.fallback_reason) == ("openai", False, "")
    assert "descaled every Friday" in answer.text and answer.output_tokens == max(1, len(draft) // 4)
    writing = next(i for i, (name, data) in enumerate(events) if name == "progress" and data["stage"] == "writing")
    checking = next(i for i, (name, data) in enumerate(events) if name == "progress" and data["stage"] == "checking")
    assert writing < names.index("draft") and max(i for i, name in enumerate(names) if name == "draft") < checking


def test_the_api_asks_the_same_model_without_streaming(client, corpus, alice, openai_composer):
    from tests.console.conftest import auth

    response = client.post("/api/v1/ask", json.dumps({"question": KITCHEN_QUESTION}), content_type="application/json",
                           headers=auth(alice))
    assert response.status_code == 200 and "descaled every Friday" in response.json()["answer"]
    assert "stream" not in openai_composer.requests_to(openai_api.CHAT_COMPLETIONS)[-1].json
