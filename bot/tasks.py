"""Background work for the chat bots: the answer is prepared here, after the platform's request was acknowledged.

Listeners (the request path) queue these; each hands its payload to its platform's adapter, which runs the
bot.workflow. The Teams adapter is imported only when a Teams question is answered: botbuilder is slow to import.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from kombu.exceptions import OperationalError

from bot.metrics import BOT_QUEUE_FALLBACKS

logger = logging.getLogger("citewise.bot")


def queue_answer(task: Task, payload: dict[str, Any], *, platform: str) -> None:
    """Queue the answer for a worker. A broker that cannot take it (Redis down) does not lose the question: it is
    answered in this process, as the embedded default answers every question, and the platform is acknowledged
    after that."""
    try:
        # No publish retries: the platform waits for its acknowledgement while we would.
        task.apply_async((payload,), retry=False)
    except OperationalError as exc:
        BOT_QUEUE_FALLBACKS.labels(platform).inc()
        logger.warning("%s answer answered in-process: the task broker is unavailable (%s)", platform, exc)
        task.apply((payload,))


@shared_task(name="bot.answer_slack_event")
def answer_slack_event(payload: dict[str, Any]) -> str:
    from bot.slack.platform import process_event

    return process_event(payload).value


@shared_task(name="bot.answer_teams_activity")
def answer_teams_activity(payload: dict[str, Any]) -> str:
    from bot.teams.platform import process_activity

    return process_activity(payload).value
