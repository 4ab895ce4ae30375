"""The LLM provider goes away and comes back: each question is still answered (extractive, quoting the passages) with
the reason recorded, nothing is cached from the degraded answers, and the provider is used again as soon as it
answers, with no restart."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from answers.models import Answer
from answers.services import ask
from tests.answers.test_llm_composers import (  # noqa: F401 - fixtures
    QUESTION,
    citing,
    clock,
    cohere_server,
    indexed,
    llm_settings,
    openai_server,
)
from tests.faults.outages import TcpForwarder
from tests.standins import openai as openai_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider_behind_forwarder(llm_settings, openai_server):
    target = urlsplit(openai_server.url)
    forwarder = TcpForwarder(target.hostname, target.port).start()
    llm_settings.CITEWISE = llm_settings.CITEWISE.replace(
        composer="openai", openai_base_url=f"http://{forwarder.address}/v1", answer_cache_ttl_s=600)
    yield forwarder
    forwarder.cut()


def test_with_the_llm_down_answers_fall_back_with_the_reason_and_the_llm_is_used_again_when_it_returns(
        indexed, openai_server, provider_behind_forwarder):
    openai_server.always(openai_api.CHAT_COMPLETIONS, citing("240 euros", "Hotel stays are capped at 240 euros "
                                                             "per night", "openai"))
    assert ask(QUESTION, principals=frozenset()).composer == "openai"

    provider_behind_forwarder.cut()
    for _ in range(2):  # a degraded answer is not cached: each question tries the provider again
        down = ask(QUESTION + " Please.", principals=frozenset())
        assert down.composer == "extractive" and not down.refused
        assert "240 euros" in down.text and down.citations[0].document_id == "travel"
        record = Answer.objects.get(id=down.answer_id)
        assert record.status == "answered" and record.fallback_reason.startswith("composer openai failed")
        assert record.timings["cache"] == "miss"

    provider_behind_forwarder.restore()
    back = ask(QUESTION + " Please.", principals=frozenset())
    assert (back.composer, back.fallback_reason) == ("openai", "")
    assert "240 euros per night [1]" in back.text
