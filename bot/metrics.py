"""Prometheus metrics for the chat bots, labelled by platform."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# The claim ledger (bot.services): events marked done or failed, and retries dropped as duplicates.
BOT_EVENTS = Counter("citewise_bot_events_total", "Chat-platform questions by what became of them",
                     ["platform", "outcome"])  # outcome: done, failed, duplicate
# What the workflow made of each question: outcome is a bot.workflow.Outcome value (answered, explained, failed,
# ignored, duplicate, superseded), halt a bot.workflow.Halt value (why it was not answered; "none" when it was).
BOT_QUESTIONS = Counter("citewise_bot_questions_total", "Chat-platform questions by the workflow's outcome",
                        ["platform", "outcome", "halt"])
BOT_ANSWER_SECONDS = Histogram(
    "citewise_bot_answer_seconds", "Time to answer a chat question (identity resolved → answer composed)",
    ["platform"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
# Questions answered inside the request because the task broker could not take them (bot.tasks.queue_answer).
BOT_QUEUE_FALLBACKS = Counter("citewise_bot_queue_fallbacks_total",
                              "Chat questions answered in-process because the task broker was unavailable", ["platform"])
