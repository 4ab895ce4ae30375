"""The background answer to a Teams question: the activity as a bot.workflow Question, and the Bot Connector as its
Platform (a typing indicator while it works, member records for who is who, the answer as an Adaptive Card in the
conversation or in the asker's 1:1 chat).

botbuilder is async and the workflow is not: the turn runs on the adapter's event loop, the workflow on a thread of
it (sync_to_async), and each Connector call goes back to the loop (async_to_sync).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from botbuilder.core import BotAdapter, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationParameters
from django.conf import settings

from bot import workflow
from bot.services import BotAnswer, BotError, DirectoryUser
from bot.teams import render
from bot.teams.activities import channel, conversation_type, event_id, key, mentions_bot, question_text, user_key
from bot.teams.adapter import get_adapter
from bot.teams.auth import tenant_id
from bot.teams.directory import TeamsDirectory
from bot.workflow import Delivery, Question

logger = logging.getLogger("citewise.bot.teams")
PLATFORM = "teams"
MAX_CHANNEL_MEMBERS = 2000
MEMBERS_PAGE_SIZE = 200
SENT_PRIVATELY = "I've sent you the answer in a private chat, with your permissions."
NOT_SENT_PRIVATELY = ("I couldn't message you privately, so the answer isn't shown here: ask me in a personal chat with"
                      " Citewise instead.")


class TeamsPlatform:
    """bot.workflow.Platform for one message in a Teams channel, group chat or personal chat."""

    def __init__(self, turn_context: TurnContext):
        self.turn_context = turn_context
        self._directory = TeamsDirectory(turn_context)

    def show_progress(self) -> None:
        try:
            self._send(Activity(type=ActivityTypes.typing))
        except Exception:
            logger.warning("teams typing indicator failed: conversation=%s", self._conversation, exc_info=True)

    def stop_progress(self) -> None:
        pass  # a typing indicator ends by itself, or with the next message

    def directory(self, user_ids: Sequence[str]) -> Mapping[str, DirectoryUser | None]:
        return self._directory(user_ids)

    def channel_members(self) -> list[str] | None:
        # The paged list carries every member's email, UPN, tenant and role: no member is looked up on their own.
        members: list[Any] = []
        token = None
        try:
            while True:
                page = async_to_sync(TeamsInfo.get_paged_members)(self.turn_context, token, MEMBERS_PAGE_SIZE)
                members.extend(page.members or [])
                token = page.continuation_token
                if len(members) > MAX_CHANNEL_MEMBERS:
                    raise BotError("This channel is too large for answers everyone can read; ask me in a personal"
                                   " chat instead.")
                if not token:
                    break
        except BotError:
            raise
        except Exception:
            logger.warning("teams member list failed: conversation=%s", self._conversation, exc_info=True)
            return None
        return self._directory.remember(members)

    def deliver_answer(self, answer: BotAnswer, delivery: Delivery) -> None:
        private = delivery is Delivery.PRIVATE
        card = render.answer_card(answer, console_url=settings.CONSOLE_URL, private_in_chat=private)
        reply = Activity(type=ActivityTypes.message, summary=render.summary(answer),
                         attachments=[render.card_attachment(card)])
        if not private:
            self._send(reply)
        else:
            # Teams has no ephemeral messages for bots: a channel answer for the asker alone goes to their 1:1 chat.
            self._send(MessageFactory.text(SENT_PRIVATELY if self._send_privately(reply) else NOT_SENT_PRIVATELY))

    def deliver_failure(self, message: str, delivery: Delivery) -> None:
        self._send(MessageFactory.text(message))

    @property
    def _conversation(self) -> str:
        return self.turn_context.activity.conversation.id

    def _send(self, activity: Activity) -> None:
        async_to_sync(self.turn_context.send_activity)(activity)

    def _send_privately(self, reply: Activity) -> bool:
        activity = self.turn_context.activity
        connector = self.turn_context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]
        tenant = tenant_id(activity)
        parameters = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=activity.recipient.id), tenant_id=tenant,
            members=[ChannelAccount(id=activity.from_property.id)], channel_data={"tenant": {"id": tenant}})

        async def send() -> None:
            created = await connector.conversations.create_conversation(parameters)
            await connector.conversations.send_to_conversation(created.id, reply)

        try:
            async_to_sync(send)()
        except Exception:
            logger.warning("teams private answer could not be delivered: conversation=%s", self._conversation,
                           exc_info=True)
            return False
        return True


def question(activity: Activity) -> Question:
    """The question a queued Teams activity (bot.teams.listeners) asks."""
    kind = conversation_type(activity)
    team_key, channel_id = channel(activity)
    event, tenant, user = event_id(activity), tenant_id(activity), user_key(activity.from_property)
    return Question(
        platform=PLATFORM, event_id=event, team_id=tenant, user_id=user, text=question_text(activity),
        channel_id=key(channel_id), thread_id=key(activity.conversation.id),
        settings_key=None if kind == "personal" else (team_key, channel_id), mentioned=mentions_bot(activity),
        reference=event[:12],
        log_context=f"activity={activity.id} conversation={activity.conversation.id} tenant={tenant} user={user}",
        # Personal and group chats have no threads: after a quiet spell a question starts a new conversation.
        fresh_after=None if kind == "channel" else timedelta(minutes=settings.TEAMS_CHAT_IDLE_MINUTES))


def process_activity(payload: dict[str, Any]) -> workflow.Outcome:
    """Answer one queued question activity, at most once."""
    return async_to_sync(_process_activity)(payload)


async def _process_activity(payload: dict[str, Any]) -> workflow.Outcome:
    activity = Activity().deserialize(payload["activity"])
    adapter = get_adapter()
    outcome: dict[str, workflow.Outcome] = {}

    async def logic(turn_context: TurnContext) -> None:
        outcome["result"] = await sync_to_async(workflow.answer)(question(turn_context.activity),
                                                                  TeamsPlatform(turn_context))

    claims = adapter.create_claims_identity(payload.get("app_id") or settings.TEAMS_APP_ID)
    await adapter.process_proactive(claims, activity, None, logic)
    return outcome.get("result", workflow.Outcome.FAILED)
