"""The Teams request path: authenticate an activity, then answer what Teams needs answered inline (card actions,
a greeting, help) and queue questions (bot.tasks, answered by bot.teams.platform)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from botbuilder.core import InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity
from django.conf import settings

from bot import services
from bot.services import Asker, BotError
from bot.tasks import answer_teams_activity, queue_answer
from bot.teams import render
from bot.teams.activities import conversation_type, mentions_bot, question_text, user_key
from bot.teams.adapter import get_adapter
from bot.teams.auth import (
    AuthenticationUnavailable,
    TeamsNotConfigured,
    TenantMismatch,
    service_url_allowed,
    tenant_allowed,
    tenant_id,
)
from bot.teams.directory import TeamsDirectory

logger = logging.getLogger("citewise.bot.teams")
PLATFORM = "teams"
HELP_MESSAGE = "Ask me a question about your company's documents, and I'll answer with numbered sources."
WELCOME_MESSAGE = ("Hi! I'm Citewise. Ask me anything about your company's documents: I answer with numbered sources,"
                   " using only what you are allowed to read. Rate answers with 👍 / 👎, or flag a wrong one.")


# -- authentication ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None


async def authenticate_header(auth_header: str | None) -> Reply | None:
    """The token alone, before the request's body is read (so an unauthenticated body is never parsed): a refusal,
    or None when it may go on. receive() checks it again with the activity."""
    if not settings.TEAMS_APP_ID:
        return None  # DEBUG only (build_authentication refuses otherwise): the Emulator without an app id
    if not auth_header:
        return Reply(401, {"error": "missing Authorization header"})
    try:
        await get_adapter().bot_framework_authentication.authenticate_header(auth_header)
    except AuthenticationUnavailable as exc:
        logger.error("teams request not verified, OpenID metadata unavailable: %s", exc)
        return Reply(503, {"error": "cannot verify Bot Framework tokens right now"})
    except Exception as exc:  # noqa: BLE001 - the library signals bad tokens with many exception types
        logger.warning("teams request refused before reading it (%s: %s)", type(exc).__name__, exc)
        return Reply(401, {"error": "unauthorized"})
    return None


async def receive(activity: Activity, auth_header: str | None, raw_activity: dict[str, Any]) -> Reply:
    """Authenticate an incoming activity and run the bot on it. Nothing runs for a request that fails here."""
    adapter = get_adapter()
    try:
        authenticated = await adapter.bot_framework_authentication.authenticate_request(activity, auth_header)
    except AuthenticationUnavailable as exc:
        logger.error("teams activity not verified, OpenID metadata unavailable: %s", exc)
        return Reply(503, {"error": "cannot verify Bot Framework tokens right now"})
    except Exception as exc:  # noqa: BLE001 - the library signals bad tokens with many exception types
        logger.warning("teams activity refused (%s: %s): type=%s serviceUrl=%s", type(exc).__name__, exc,
                       activity.type, activity.service_url)
        return Reply(401, {"error": "unauthorized"})
    if not service_url_allowed(activity.service_url):
        logger.warning("teams activity refused, serviceUrl not allowed: %s", activity.service_url)
        return Reply(403, {"error": "serviceUrl not allowed"})
    try:
        tenant = tenant_id(activity)
    except TenantMismatch as exc:
        logger.warning("teams activity refused, %s", exc)
        return Reply(403, {"error": "the activity names two different tenants"})
    if not tenant_allowed(tenant):
        logger.warning("teams activity refused, tenant not allowed: %s", tenant)
        return Reply(403, {"error": "tenant not allowed"})
    invoke = await adapter.process_activity(authenticated, activity, CitewiseTeamsBot(raw_activity).on_turn)
    if invoke is None:
        return Reply(200)
    return Reply(invoke.status, invoke.body)


def check_configured() -> None:
    """Raises TeamsNotConfigured unless the Teams endpoint may serve requests."""
    get_adapter()


# -- the bot -----------------------------------------------------------------------------------------

def _enqueue(payload: dict[str, Any]) -> None:
    queue_answer(answer_teams_activity, payload, platform=PLATFORM)


class CitewiseTeamsBot(TeamsActivityHandler):
    def __init__(self, raw_activity: dict[str, Any]):
        # The activity as received: botbuilder's serialize() drops properties the queue must keep (mention
        # entities' details, conversation.tenantId).
        self.raw_activity = raw_activity

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        if value.get("citewise") in (render.FEEDBACK_VERB, render.FLAG_VERB):
            # Action.Submit, from clients without Universal Actions.
            message = await card_action(turn_context, value["citewise"], value)
            await turn_context.send_activity(MessageFactory.text(message))
            return
        if not question_text(activity):
            if conversation_type(activity) == "personal" or mentions_bot(activity):
                await turn_context.send_activity(MessageFactory.text(HELP_MESSAGE))
            return
        await sync_to_async(_enqueue)({"activity": self.raw_activity, "app_id": settings.TEAMS_APP_ID})

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        # Only a personal install greets: a welcome in every channel it is added to would be noise.
        if conversation_type(turn_context.activity) == "personal":
            await turn_context.send_activity(MessageFactory.text(WELCOME_MESSAGE))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        action = (activity.value or {}).get("action") if isinstance(activity.value, dict) else None
        if not isinstance(action, dict) or action.get("type") != "Action.Execute":
            return InvokeResponse(status=400, body={
                "statusCode": 400, "type": "application/vnd.microsoft.error",
                "value": {"code": "BadRequest", "message": "expected an Action.Execute"}})
        message = await card_action(turn_context, str(action.get("verb") or ""), action.get("data") or {})
        # Built by hand: botbuilder's AdaptiveCardInvokeResponse cannot serialize a message (string) value.
        return InvokeResponse(status=200, body={"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                                                "value": message})


async def resolve_asker(turn_context: TurnContext) -> Asker:
    """The Citewise user behind the activity's sender; the members endpoint is asked only when the AAD identity
    is not linked."""
    activity = turn_context.activity
    directory = TeamsDirectory(turn_context)
    return await sync_to_async(services.resolve_user)(PLATFORM, directory.tenant, user_key(activity.from_property),
                                                      directory)


async def card_action(turn_context: TurnContext, verb: str, data: dict[str, Any]) -> str:
    """👍 / 👎 / Flag from an answer card, recorded through the core; returns what to tell the user."""
    answer_id = str(data.get("answer_id") or "")
    if verb == render.FLAG_VERB:
        kind, reason, comment = "flag", str(data.get("reason") or ""), str(data.get("comment") or "")
        if not reason:
            return "Choose what is wrong with the answer, then send the flag."
    elif verb == render.FEEDBACK_VERB and data.get("kind") in ("up", "down"):
        kind, reason, comment = data["kind"], "", ""
    else:
        return "That action is not supported."
    asker = await resolve_asker(turn_context)
    try:
        await sync_to_async(services.give_feedback)(asker, answer_id, kind, reason=reason,
                                                    comment=comment[:render.MAX_COMMENT_CHARS])
    except BotError as exc:
        return exc.user_message
    return "Thanks, the answer was flagged for review." if kind == "flag" else "Thanks, your feedback was recorded."


__all__ = ["CitewiseTeamsBot", "Reply", "TeamsNotConfigured", "authenticate_header", "card_action", "check_configured",
           "receive", "resolve_asker"]
