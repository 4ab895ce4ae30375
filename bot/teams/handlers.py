"""Teams activities → messaging-core calls → Adaptive Card replies.

The request path (CitewiseTeamsBot) only answers card actions, which Teams needs answered inline, and queues
questions; the answer itself is prepared in `process_activity` (a Celery task, eager in the embedded default),
which sends a typing indicator, resolves who asked, and replies in the same conversation or thread.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from botbuilder.core import BotAdapter, InvokeResponse, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationParameters,
)
from bs4 import BeautifulSoup
from django.conf import settings
from django.core.cache import cache

from bot import selectors, services
from bot.services import (
    SCOPE_CHANNEL,
    SCOPE_PERSONAL,
    Asker,
    BotAnswer,
    BotError,
    DirectoryUser,
    IdentityLookupFailed,
)
from bot.teams import render
from bot.teams.adapter import get_adapter
from bot.teams.auth import identity_tenants, tenant_id

logger = logging.getLogger("citewise.bot.teams")
PLATFORM = "teams"
FAILURE_MESSAGE = ("Sorry, something went wrong while answering. Please try again; if it keeps happening, tell your"
                   " admin (ref {ref}).")
HELP_MESSAGE = "Ask me a question about your company's documents, and I'll answer with numbered sources."
WELCOME_MESSAGE = ("Hi! I'm Citewise. Ask me anything about your company's documents: I answer with numbered sources,"
                   " using only what you are allowed to read. Rate answers with 👍 / 👎, or flag a wrong one.")
MAX_CHANNEL_MEMBERS = 2000
MEMBERS_PAGE_SIZE = 200
MAX_KEY = 255


# -- reading activities ------------------------------------------------------------------------------

def _key(value: str) -> str:
    """Teams ids can be long; a stored key longer than the column becomes a digest of it."""
    return value if len(value) <= MAX_KEY else "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _entity_props(entity: Any) -> dict[str, Any]:
    if isinstance(entity, dict):
        return entity
    return {"type": getattr(entity, "type", ""), **(getattr(entity, "additional_properties", None) or {})}


def _bot_mentions(activity: Activity) -> list[dict[str, Any]]:
    bot_id = activity.recipient.id if activity.recipient else None
    return [props for props in map(_entity_props, activity.entities or [])
            if (props.get("type") or "").lower() == "mention" and (props.get("mentioned") or {}).get("id") == bot_id]


def mentions_bot(activity: Activity) -> bool:
    return bool(_bot_mentions(activity))


def question_text(activity: Activity) -> str:
    """The question without the bot's @mention, as plain text (Teams sends mentions and formatting as HTML)."""
    text = activity.text or ""
    for mention in _bot_mentions(activity):
        if mention.get("text"):
            text = text.replace(mention["text"], " ")
    text = re.sub(r"</?at>", "", text)
    text = BeautifulSoup(text, "html.parser").get_text(" ")
    return re.sub(r"\s+", " ", text).strip()


def user_key(account: Any) -> str:
    """The stable id of a Teams user: the AAD object id (display names and 29: ids are not used as keys)."""
    return getattr(account, "aad_object_id", None) or account.id


def event_id(activity: Activity) -> str:
    # Activity ids are unique only within their conversation.
    return hashlib.sha256(f"{activity.conversation.id}|{activity.id}".encode()).hexdigest()


def _conversation_type(activity: Activity) -> str:
    return (activity.conversation.conversation_type if activity.conversation else None) or "personal"


def _channel(activity: Activity) -> tuple[str, str]:
    """(team id, channel id) keys of an admin's channel settings; a group chat is its own channel."""
    data = activity.channel_data or {}
    if _conversation_type(activity) == "channel":
        channel = (data.get("channel") or {}).get("id") or activity.conversation.id.split(";", 1)[0]
        return (data.get("team") or {}).get("id") or tenant_id(activity), channel
    return tenant_id(activity), activity.conversation.id


# -- identity ----------------------------------------------------------------------------------------

def _member_record(member: Any) -> dict[str, Any]:
    return {"addresses": [a for a in (member.email, member.user_principal_name) if a],
            "tenant_id": getattr(member, "tenant_id", None) or "",
            "user_role": getattr(member, "user_role", None) or ""}


def directory_user(record: dict[str, Any], tenant: str) -> DirectoryUser:
    """A member's addresses count only for a full member ("user", not "guest") of the conversation's tenant, and
    only when that tenant's directory is trusted (identity_tenants): otherwise they are another organisation's
    claims about its own users."""
    internal = (bool(tenant) and tenant.lower() in identity_tenants()
                and str(record.get("tenant_id") or "").lower() == tenant.lower()
                and str(record.get("user_role") or "").lower() == "user")
    return DirectoryUser(addresses=tuple(record.get("addresses") or ()), internal=internal)


async def member_record(turn_context: TurnContext, account: Any) -> dict[str, Any]:
    """Email, UPN, tenant and role of a conversation member from the members endpoint, cached per tenant and
    user."""
    # v2: entries without the tenant and role must not be read as a member of ours.
    key = f"citewise:teams:member:v2:{tenant_id(turn_context.activity)}:{user_key(account)}"
    cached = await cache.aget(key)
    if isinstance(cached, dict):
        return cached
    try:
        member = await TeamsInfo.get_member(turn_context, account.id)
    except Exception as exc:  # noqa: BLE001 - any connector failure means "unknown right now"
        raise IdentityLookupFailed(f"{type(exc).__name__}: {exc}") from exc
    record = _member_record(member)
    await cache.aset(key, record, timeout=int(settings.TEAMS_USER_CACHE_TTL_S))
    return record


async def resolve_asker(turn_context: TurnContext) -> Asker:
    """The Citewise user behind the activity's sender; the members endpoint is asked only when the AAD identity
    is not linked."""
    activity = turn_context.activity
    tenant, key = tenant_id(activity), user_key(activity.from_property)
    asker = await sync_to_async(services.resolve_user)(PLATFORM, tenant, key)
    if asker.linked:
        return asker
    failure: IdentityLookupFailed | None = None
    record: dict[str, Any] = {}
    try:
        record = await member_record(turn_context, activity.from_property)
    except IdentityLookupFailed as exc:
        failure = exc

    def lookup(_user_id: str) -> DirectoryUser:
        if failure is not None:
            raise failure
        return directory_user(record, tenant)

    return await sync_to_async(services.resolve_user)(PLATFORM, tenant, key, lookup)


async def channel_principals(turn_context: TurnContext, asker: Asker) -> tuple[frozenset[str], int, bool]:
    """(principals every member holds, members unlinked, whether the member list could not be read)."""
    members: list[Any] = []
    token = None
    try:
        while True:
            page = await TeamsInfo.get_paged_members(turn_context, token, MEMBERS_PAGE_SIZE)
            members.extend(page.members or [])
            token = page.continuation_token
            if len(members) > MAX_CHANNEL_MEMBERS:
                raise BotError("This channel is too large for answers everyone can read; ask me in a personal chat"
                               " instead.")
            if not token:
                break
    except BotError:
        raise
    except Exception:  # noqa: BLE001 - unknown membership: fall back to what everyone may read
        logger.warning("teams member list failed: conversation=%s", turn_context.activity.conversation.id,
                       exc_info=True)
        return frozenset(), 0, True
    tenant = tenant_id(turn_context.activity)

    def resolve_all() -> tuple[frozenset[str], int]:
        askers = [asker] + [
            services.resolve_user(PLATFORM, tenant, user_key(m),
                                  lambda _id, m=m: directory_user(_member_record(m), tenant))
            for m in members if user_key(m) != asker.user_id]
        return services.shared_principals(askers)

    principals, unlinked = await sync_to_async(resolve_all)()
    return principals, unlinked, False


# -- the request path --------------------------------------------------------------------------------

def _enqueue(payload: dict[str, Any]) -> None:
    from bot.tasks import answer_teams_activity

    answer_teams_activity.delay(payload)


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
            if _conversation_type(activity) == "personal" or mentions_bot(activity):
                await turn_context.send_activity(MessageFactory.text(HELP_MESSAGE))
            return
        await sync_to_async(_enqueue)({"activity": self.raw_activity, "app_id": settings.TEAMS_APP_ID})

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        # Only a personal install greets: a welcome in every channel it is added to would be noise.
        if _conversation_type(turn_context.activity) == "personal":
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


# -- the background answer ---------------------------------------------------------------------------

def process_activity(payload: dict[str, Any]) -> str:
    """Answer one question activity, at most once. Returns what happened (for tests and logs)."""
    return async_to_sync(_process_activity)(payload)


async def _process_activity(payload: dict[str, Any]) -> str:
    activity = Activity().deserialize(payload["activity"])
    adapter = get_adapter()
    outcome: dict[str, str] = {}

    async def logic(turn_context: TurnContext) -> None:
        outcome["result"] = await answer_turn(turn_context)

    claims = adapter.create_claims_identity(payload.get("app_id") or settings.TEAMS_APP_ID)
    await adapter.process_proactive(claims, activity, None, logic)
    return outcome.get("result", "failed")


def _card_activity(answer: BotAnswer, *, private_in_chat: bool = False) -> Activity:
    card = render.answer_card(answer, console_url=settings.CONSOLE_URL, private_in_chat=private_in_chat)
    return Activity(type=ActivityTypes.message, summary=render.summary(answer),
                    attachments=[render.card_attachment(card)])


async def _send_privately(turn_context: TurnContext, reply: Activity) -> bool:
    """Send `reply` to the asker's 1:1 chat with the bot (Teams has no ephemeral messages for bots)."""
    activity = turn_context.activity
    connector = turn_context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]
    tenant = tenant_id(activity)
    parameters = ConversationParameters(
        is_group=False, bot=ChannelAccount(id=activity.recipient.id), tenant_id=tenant,
        members=[ChannelAccount(id=activity.from_property.id)], channel_data={"tenant": {"id": tenant}})
    try:
        created = await connector.conversations.create_conversation(parameters)
        await connector.conversations.send_to_conversation(created.id, reply)
    except Exception:  # noqa: BLE001 - e.g. the app is not installed for the user
        logger.warning("teams private answer could not be delivered: conversation=%s", activity.conversation.id,
                       exc_info=True)
        return False
    return True


async def answer_turn(turn_context: TurnContext) -> str:
    activity = turn_context.activity
    conversation_type = _conversation_type(activity)
    ids = (f"activity={activity.id} conversation={activity.conversation.id} tenant={tenant_id(activity)} "
           f"user={user_key(activity.from_property)}")
    team_key, channel = _channel(activity)
    policy = None
    if conversation_type != "personal":
        policy = await sync_to_async(selectors.channel_policy)(PLATFORM, team_key, channel)
        if not policy.enabled or (policy.respond_only_when_mentioned and not mentions_bot(activity)):
            return "ignored"
    event = event_id(activity)
    claim = await sync_to_async(services.claim_event)(PLATFORM, event)
    if claim is None:
        logger.info("teams activity already handled, ignoring the redelivery: %s", ids)
        return "duplicate"
    channel_safe = policy is not None and policy.visibility == selectors.CHANNEL_SAFE
    # A channel answer that is not channel-safe goes to the asker's 1:1 chat.
    private = policy is not None and not channel_safe
    # Personal and group chats have no threads: after a quiet spell a question starts a new conversation.
    fresh_after = None if conversation_type == "channel" else timedelta(minutes=settings.TEAMS_CHAT_IDLE_MINUTES)
    try:
        await _send_typing(turn_context)
        asker = await resolve_asker(turn_context)
        principals, unlinked, members_failed = (await channel_principals(turn_context, asker) if channel_safe
                                                else (None, 0, False))
        if not await sync_to_async(services.renew_claim)(claim):
            return _superseded(ids)
        answer = await sync_to_async(services.answer_question)(
            asker, channel_id=_key(channel), thread_id=_key(activity.conversation.id), text=question_text(activity),
            scope=SCOPE_CHANNEL if channel_safe else SCOPE_PERSONAL, principals=principals,
            members_unlinked=unlinked, fresh_after=fresh_after)
        answer.members_lookup_failed = members_failed
        reply = _card_activity(answer, private_in_chat=private)
        if not await sync_to_async(services.renew_claim)(claim):
            return _superseded(ids)
        if not private:
            await turn_context.send_activity(reply)
        elif await _send_privately(turn_context, reply):
            await turn_context.send_activity(MessageFactory.text(
                "I've sent you the answer in a private chat, with your permissions."))
        else:
            await turn_context.send_activity(MessageFactory.text(
                "I couldn't message you privately, so the answer isn't shown here: ask me in a personal chat with"
                " Citewise instead."))
    except BotError as exc:
        logger.warning("teams question not answered (%s): %s", exc.user_message, ids)
        outcome = await _send_failure(turn_context, exc.user_message, ids)
        await sync_to_async(services.finish_event)(PLATFORM, event, error=exc.user_message if exc.retryable else "",
                                                   attempt=claim.attempt)
        return outcome
    except Exception as exc:  # noqa: BLE001 - every failure becomes a friendly message and a log line
        logger.exception("teams answer failed: %s", ids)
        await _send_failure(turn_context, FAILURE_MESSAGE.format(ref=event[:12]), ids)
        await sync_to_async(services.finish_event)(PLATFORM, event, error=f"{type(exc).__name__}: {exc}",
                                                   attempt=claim.attempt)
        return "failed"
    await sync_to_async(services.finish_event)(PLATFORM, event, attempt=claim.attempt)
    logger.info("teams question answered: %s answer=%s", ids, answer.result.answer_id)
    return "answered"


def _superseded(ids: str) -> str:
    # The claim ran out while this worker was at it and a redelivery took the activity over: that one answers.
    logger.warning("teams activity taken over by a redelivery; leaving it to that: %s", ids)
    return "superseded"


async def _send_typing(turn_context: TurnContext) -> None:
    try:
        await turn_context.send_activity(Activity(type=ActivityTypes.typing))
    except Exception:  # noqa: BLE001 - only a progress hint: the answer still goes out
        logger.warning("teams typing indicator failed: conversation=%s", turn_context.activity.conversation.id,
                       exc_info=True)


async def _send_failure(turn_context: TurnContext, message: str, ids: str) -> str:
    try:
        await turn_context.send_activity(MessageFactory.text(message))
        return "explained"
    except Exception:  # noqa: BLE001
        logger.exception("could not post the failure message either: %s", ids)
        return "failed"
