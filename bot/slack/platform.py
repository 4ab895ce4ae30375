"""The background answer to a Slack question: the event as a bot.workflow Question, and the Web API as its Platform
(a reaction while it works, users.info for who is who, conversations.members for a channel, and the answer posted
in the thread)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import workflow
from bot.services import BotAnswer, DirectoryUser
from bot.slack import render
from bot.slack.client import make_client
from bot.slack.directory import Installation, channel_members, workspace_directory
from bot.workflow import Delivery, Question

logger = logging.getLogger("citewise.bot.slack")
PLATFORM = "slack"
PROGRESS_REACTION = "eyes"
MENTION = re.compile(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>")


class SlackPlatform:
    """bot.workflow.Platform for one message in a Slack channel or DM."""

    def __init__(self, client: WebClient, *, team_id: str, home: Installation, channel: str, user_id: str,
                 ts: str, thread: str, bot_user_id: str):
        self.client, self.team_id, self.home = client, team_id, home
        self.channel, self.user_id, self.ts, self.thread, self.bot_user_id = channel, user_id, ts, thread, bot_user_id
        self._directory = workspace_directory(client, team_id, home)

    def show_progress(self) -> None:
        self._react("reactions_add")

    def stop_progress(self) -> None:
        self._react("reactions_remove")

    def directory(self, user_ids: Sequence[str]) -> Mapping[str, DirectoryUser | None]:
        return self._directory(user_ids)

    def channel_members(self) -> list[str]:
        # A failing conversations.members is a failed answer (SlackApiError), not a public-only one.
        return [member for member in channel_members(self.client, self.channel) if member != self.bot_user_id]

    def deliver_answer(self, answer: BotAnswer, delivery: Delivery) -> None:
        text, blocks = render.answer_blocks(answer, ephemeral=delivery is Delivery.PRIVATE,
                                            console_url=settings.CONSOLE_URL)
        self._post(text, blocks, delivery)

    def deliver_failure(self, message: str, delivery: Delivery) -> None:
        self._post(message, render.message_blocks(message), delivery)

    def _post(self, text: str, blocks: list[dict[str, Any]], delivery: Delivery) -> None:
        if delivery is Delivery.PRIVATE:
            self.client.chat_postEphemeral(channel=self.channel, user=self.user_id, thread_ts=self.thread, text=text,
                                           blocks=blocks)
        else:
            self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread, text=text, blocks=blocks,
                                         unfurl_links=False, unfurl_media=False)

    def _react(self, method: str) -> None:
        try:
            getattr(self.client, method)(channel=self.channel, timestamp=self.ts, name=PROGRESS_REACTION)
        except SlackApiError as exc:
            logger.debug("%s failed: %s", method, exc)


def question(payload: dict[str, Any]) -> Question:
    """The question a queued Slack event (bot.slack.listeners) asks."""
    event_id, team_id, event = payload["event_id"], payload["team_id"], payload["event"]
    channel, user_id, ts = event["channel"], event["user"], event["ts"]
    bot_user_id = payload.get("bot_user_id") or ""
    text = MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), event.get("text") or "").strip()
    return Question(
        platform=PLATFORM, event_id=event_id, team_id=team_id, user_id=user_id, text=text, channel_id=channel,
        thread_id=event.get("thread_ts") or ts,
        settings_key=None if event.get("channel_type") == "im" else (team_id, channel),
        mentioned=bool(payload.get("mentioned")), reference=event_id,
        log_context=f"event={event_id} team={team_id} channel={channel} user={user_id} ts={ts}")


def process_event(payload: dict[str, Any], client: WebClient | None = None) -> workflow.Outcome:
    """Answer one queued question event, at most once per event_id."""
    asked = question(payload)
    event = payload["event"]
    # Payloads queued before the installation was recorded: the event's own workspace, and no org.
    home = Installation(**(payload.get("installation") or {"team_id": asked.team_id}))
    platform = SlackPlatform(client or make_client(), team_id=asked.team_id, home=home, channel=event["channel"],
                             user_id=asked.user_id, ts=event["ts"], thread=asked.thread_id,
                             bot_user_id=payload.get("bot_user_id") or "")
    return workflow.answer(asked, platform)
