"""Daily LLM budgets: once today's answers have used CITEWISE_LLM_DAILY_TOKEN_BUDGET tokens or cost
CITEWISE_LLM_DAILY_COST_BUDGET_USD, no further question is sent to an LLM until the day ends (in TIME_ZONE); answers
are composed by the extractive composer meanwhile, with the reason recorded and shown. 0 means no budget."""

from __future__ import annotations

import logging
from datetime import datetime, time

from django.db.models import Sum
from django.utils import timezone
from prometheus_client import Counter

from answers.models import Answer
from answers.types import ComposerError
from core.config import CitewiseSettings

logger = logging.getLogger("citewise.answering")

BUDGET_REFUSALS = Counter("citewise_llm_budget_spent_total", "LLM calls not made because a daily budget was spent",
                          ["budget"])


class BudgetSpent(ComposerError):
    """Today's LLM budget is spent: the pipeline answers without the LLM, and says why."""


SPENT = "today's LLM budget of"


def notice(fallback_reason: str) -> str:
    """What to tell the asker when their answer was made without the LLM because a budget was spent, else ""."""
    if SPENT not in fallback_reason:
        return ""
    return "Today's budget for the AI model is spent, so this answer quotes the documents directly until midnight."


def check(config: CitewiseSettings, *, now: datetime | None = None) -> None:
    """Raise BudgetSpent when a daily LLM budget is set and today's answers have used it up."""
    if not (config.llm_daily_token_budget or config.llm_daily_cost_budget_usd):
        return
    now = now or timezone.now()
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    used = Answer.objects.filter(created_at__gte=midnight).aggregate(
        input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost_usd"))
    tokens = (used["input"] or 0) + (used["output"] or 0)
    cost = float(used["cost"] or 0)
    if config.llm_daily_token_budget and tokens >= config.llm_daily_token_budget:
        BUDGET_REFUSALS.labels("tokens").inc()
        raise BudgetSpent(f"{SPENT} {config.llm_daily_token_budget:,} tokens is spent ({tokens:,} "
                          "used): answered without the LLM until midnight")
    if config.llm_daily_cost_budget_usd and cost >= config.llm_daily_cost_budget_usd:
        BUDGET_REFUSALS.labels("cost").inc()
        raise BudgetSpent(f"{SPENT} {config.llm_daily_cost_budget_usd:.2f} USD is spent ({cost:.2f} "
                          "USD used): answered without the LLM until midnight")
