"""Background work for the chat bots: the answer is prepared here, after the platform's request was acknowledged."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="bot.answer_slack_event")
def answer_slack_event(payload: dict[str, Any]) -> str:
    from bot.slack.handlers import process_event

    return process_event(payload)


@shared_task(name="bot.answer_teams_activity")
def answer_teams_activity(payload: dict[str, Any]) -> str:
    from bot.teams.handlers import process_activity

    return process_activity(payload)
