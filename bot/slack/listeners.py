"""Slack listeners (shared by HTTP and Socket Mode): the request path. A question is only translated and queued
(bot.tasks, answered by bot.slack.platform); feedback and flags are recorded through bot.services at once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import services
from bot.services import BotError
from bot.slack import render
from bot.slack.directory import installation, workspace_directory
from bot.tasks import answer_slack_event, queue_answer

logger = logging.getLogger("citewise.bot.slack")
PLATFORM = "slack"


# -- listeners (ack path: translate and enqueue only) ------------------------------------------------

def _answerable(event: dict[str, Any], bot_user_id: str | None) -> bool:
    if event.get("bot_id") or event.get("subtype") not in (None, "thread_broadcast", "file_share"):
        return False  # other bots, our own messages, edits and deletions
    user = event.get("user")
    return bool(user) and user != bot_user_id and bool((event.get("text") or "").strip())


def _enqueue(body: dict[str, Any], event: dict[str, Any], context: Any, *, mentioned: bool) -> None:
    if not _answerable(event, context.bot_user_id):
        return
    queue_answer(answer_slack_event, {
        "event_id": body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}",
        "team_id": body.get("team_id") or context.team_id or event.get("team", ""),
        "installation": asdict(installation(body, context)),
        "bot_user_id": context.bot_user_id or "",
        "mentioned": mentioned,
        "event": {k: event.get(k) for k in ("type", "user", "text", "ts", "thread_ts", "channel", "channel_type")},
    }, platform=PLATFORM)


def _team(body: dict[str, Any]) -> str:
    return (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", "")


def _channel(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")


def register(app: App) -> None:
    @app.event("app_mention")
    def on_mention(body, event, context):
        _enqueue(body, event, context, mentioned=True)

    @app.event("message")
    def on_message(body, event, context):
        # DMs always; channel messages only where an admin turned "respond only when mentioned" off, and then
        # not those that mention the bot (app_mention answers them).
        if event.get("channel_type") != "im" and f"<@{context.bot_user_id}" in (event.get("text") or ""):
            return
        _enqueue(body, event, context, mentioned=False)

    @app.action(re.compile(r"^feedback_(up|down)$"))
    def on_feedback(ack, body, action, client, context):
        ack()
        kind = "up" if action["action_id"] == "feedback_up" else "down"
        user_id, team_id = body["user"]["id"], _team(body)
        asker = services.resolve_user(PLATFORM, team_id, user_id,
                                      workspace_directory(client, team_id, installation(body, context)))
        try:
            services.give_feedback(asker, action.get("value", ""), kind)
            message = "Thanks, your feedback was recorded."
        except BotError as exc:
            message = exc.user_message
        _notify(client, _channel(body), user_id, message)

    @app.action("flag")
    def on_flag(ack, body, action, client):
        ack()
        view = render.flag_modal(action.get("value", ""), _channel(body))
        try:
            client.views_open(trigger_id=body.get("trigger_id") or "", view=view)
        except SlackApiError as exc:  # e.g. the trigger expired (3 s): the user can click again
            logger.warning("could not open the flag modal: %s", exc)

    @app.view(render.FLAG_CALLBACK_ID)
    def on_flag_submitted(ack, body, view, client, context):
        values = view["state"]["values"]  # a dict: bot.slack.views checked the payload's shape
        reason = _state_value(values, "reason", "selected_option")
        comment = _state_value(values, "comment", "value")
        meta = _metadata(view)
        user_id, team_id = body["user"]["id"], _team(body)
        asker = services.resolve_user(PLATFORM, team_id, user_id,
                                      workspace_directory(client, team_id, installation(body, context)))
        try:
            services.give_feedback(asker, meta.get("answer_id", ""), "flag", reason=reason, comment=comment)
        except BotError as exc:
            ack(response_action="errors", errors={"reason" if not reason else "comment": exc.user_message[:150]})
            return
        ack()


def _state_value(values: dict[str, Any], block: str, field: str) -> str:
    """An input's value in a submitted view's state (render.flag_modal gives block and element the same id); ""
    for anything else."""
    element = values.get(block)
    element = element.get(block) if isinstance(element, dict) else None
    value = element.get(field) if isinstance(element, dict) else None
    if isinstance(value, dict):  # a select's selected_option
        value = value.get("value")
    return value if isinstance(value, str) else ""


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    """The modal's private_metadata as we wrote it (render.flag_modal); {} for anything else."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _notify(client: WebClient, channel: str, user: str, message: str) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=message)
    except SlackApiError:
        logger.warning("could not tell slack user %s in %s: %s", user, channel, message)
