"""Prometheus metrics for the chat bots, labelled by platform."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BOT_EVENTS = Counter("citewise_bot_events_total", "Chat-platform questions by what became of them",
                     ["platform", "outcome"])  # outcome: done, failed, duplicate
BOT_ANSWER_SECONDS = Histogram(
    "citewise_bot_answer_seconds", "Time to answer a chat question (identity resolved → answer composed)",
    ["platform"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
