"""Daily LLM budgets: under them the configured model answers; once today's answers have used the token or cost
budget, no call is made until midnight, the extractive composer answers, and the reason is recorded and returned."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from answers.models import Answer, Conversation
from answers.services import ask
from tests.answers.test_pii import HELPDESK, helpdesk, openai_llm  # noqa: F401 (fixtures)
from tests.sse import sse_events
from tests.standins import openai as openai_api

pytestmark = pytest.mark.django_db

QUESTION = "When does the IT helpdesk answer, from eight to six?"


def spent_today(user, *, tokens: int = 0, cost: str = "0", days_ago: int = 0) -> None:
    answer = Answer.objects.create(conversation=Conversation.objects.create(user=user), user=user, question="earlier",
                                   input_tokens=tokens, cost_usd=Decimal(cost))
    Answer.objects.filter(pk=answer.pk).update(created_at=timezone.now() - timedelta(days=days_ago))


@pytest.mark.parametrize(("budget", "spent"), [
    ({"llm_daily_token_budget": 1000}, {"tokens": 1000}),
    ({"llm_daily_cost_budget_usd": 0.5}, {"cost": "0.50"}),
])
def test_a_spent_budget_stops_llm_calls_until_midnight(helpdesk, openai_llm, settings, budget, spent):
    settings.CITEWISE = settings.CITEWISE.replace(**budget)
    spent_today(helpdesk, **{key: value * 5 if isinstance(value, int) else "5" for key, value in spent.items()},
                days_ago=1)  # yesterday's use does not count
    answered = ask(QUESTION, principals=frozenset(), user=helpdesk, surface="api")
    assert answered.composer == "openai" and len(openai_llm.requests_to(openai_api.CHAT_COMPLETIONS)) == 1
    assert answered.notice == ""

    spent_today(helpdesk, **spent)
    calls = len(openai_llm.requests_to(openai_api.CHAT_COMPLETIONS))
    # Another question (the same one would be the cached answer, which costs nothing and is still served).
    fallback = ask("Until when does the IT helpdesk answer, eight to six?", principals=frozenset(), user=helpdesk,
                   surface="api")
    assert len(openai_llm.requests_to(openai_api.CHAT_COMPLETIONS)) == calls  # no call made
    assert fallback.composer == "extractive" and not fallback.refused and "eight to six" in fallback.text
    assert fallback.fallback_reason.startswith("today's LLM budget of") and "until midnight" in \
        fallback.fallback_reason
    assert Answer.objects.get(pk=fallback.answer_id).fallback_reason == fallback.fallback_reason
    assert fallback.notice.startswith("Today's budget for the AI model is spent")  # what the asker is told


def test_the_chat_tells_the_asker_why_the_answer_quotes_the_documents(client, helpdesk, openai_llm, settings):
    settings.CITEWISE = settings.CITEWISE.replace(llm_daily_token_budget=10)
    spent_today(helpdesk, tokens=10)
    client.force_login(helpdesk)
    events = dict(sse_events(client.post("/chat/stream", {"q": QUESTION})))
    assert events["meta"]["composer"] == "extractive"
    assert events["meta"]["notice"].startswith("Today's budget for the AI model is spent")
    response = client.post("/api/v1/ask", {"question": QUESTION + " Please."}, content_type="application/json")
    assert response.json()["notice"] == events["meta"]["notice"]


def test_no_budget_is_no_limit(helpdesk, openai_llm, settings):
    spent_today(helpdesk, tokens=10_000_000, cost="1000")
    assert ask(QUESTION, principals=frozenset(), user=helpdesk, surface="api").composer == "openai"
