"""Background work for the chat bots: the answer is prepared here, after the platform's request was acknowledged.

Listeners (the request path) queue these; each hands its payload to its platform's adapter, which runs the
bot.workflow. The Teams adapter is imported only when a Teams question is answered: botbuilder is slow to import.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="bot.answer_slack_event")
def answer_slack_event(payload: dict[str, Any]) -> str:
    from bot.slack.platform import process_event

    return process_event(payload).value


@shared_task(name="bot.answer_teams_activity")
def answer_teams_activity(payload: dict[str, Any]) -> str:
    from bot.teams.platform import process_activity

    return process_activity(payload).value
