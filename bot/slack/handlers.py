"""Slack listeners (shared by HTTP and Socket Mode) and the background answer: translate, call bot.services, render."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import selectors, services
from bot.services import SCOPE_CHANNEL, SCOPE_PERSONAL, BotError, DirectoryUser
from bot.slack import render

logger = logging.getLogger("citewise.bot.slack")
PLATFORM = "slack"
PROGRESS_REACTION = "eyes"
FAILURE_MESSAGE = ("Sorry, something went wrong while answering. Please try again; if it keeps happening, tell your"
                   " admin (ref {ref}).")
MENTION = re.compile(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>")
MAX_CHANNEL_MEMBERS = 2000


@dataclass(frozen=True)
class Installation:
    """The workspace the app is installed in, and its Enterprise Grid org if any: whose members' emails count."""

    team_id: str = ""
    enterprise_id: str = ""


def installation(body: dict[str, Any], context: Any = None) -> Installation:
    """From bolt's authorization (auth.test of our token), else the signed payload's `authorizations`.

    Never the user's own team: in a Slack Connect channel that names the partner's workspace.
    """
    result = getattr(context, "authorize_result", None)
    granted = (body.get("authorizations") or [{}])[0] or {}
    return Installation(
        team_id=(getattr(result, "team_id", None) or granted.get("team_id") or ""),
        enterprise_id=(getattr(result, "enterprise_id", None) or granted.get("enterprise_id") or ""))


# -- listeners (ack path: translate and enqueue only) ------------------------------------------------

def _answerable(event: dict[str, Any], bot_user_id: str | None) -> bool:
    if event.get("bot_id") or event.get("subtype") not in (None, "thread_broadcast", "file_share"):
        return False  # other bots, our own messages, edits and deletions
    user = event.get("user")
    return bool(user) and user != bot_user_id and bool((event.get("text") or "").strip())


def _enqueue(body: dict[str, Any], event: dict[str, Any], context: Any, *, mentioned: bool) -> None:
    from bot.tasks import answer_slack_event

    if not _answerable(event, context.bot_user_id):
        return
    answer_slack_event.delay({
        "event_id": body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}",
        "team_id": body.get("team_id") or context.team_id or event.get("team", ""),
        "installation": asdict(installation(body, context)),
        "bot_user_id": context.bot_user_id or "",
        "mentioned": mentioned,
        "event": {k: event.get(k) for k in ("type", "user", "text", "ts", "thread_ts", "channel", "channel_type")},
    })


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
                                      email_lookup(client, team_id, installation(body, context)))
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
                                      email_lookup(client, team_id, installation(body, context)))
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


# -- identity lookups through the Web API ------------------------------------------------------------

def user_info(client: WebClient, team_id: str, user_id: str) -> dict[str, Any]:
    """What users.info says about a user (email, bot, deleted, home team and org, guest flags), cached; {} when
    Slack will not say."""
    # v2: entries without the team and guest fields must not be read as a member of ours.
    key = f"citewise:slack:user:v2:{team_id}:{user_id}"
    cached = cache.get(key)
    if isinstance(cached, dict):
        return cached
    try:
        user = client.users_info(user=user_id)["user"]
    except (SlackApiError, KeyError):
        logger.warning("users.info failed for %s/%s", team_id, user_id, exc_info=True)
        return {}
    info = {"email": (user.get("profile") or {}).get("email") or "",
            "is_bot": bool(user.get("is_bot")) or user.get("id") == "USLACKBOT", "deleted": bool(user.get("deleted")),
            "team_id": user.get("team_id") or "",
            "enterprise_id": (user.get("enterprise_user") or {}).get("enterprise_id") or "",
            # Multi-channel (restricted) and single-channel (ultra restricted) guests; strangers are users of
            # another organisation who share no channel with the app.
            "guest": bool(user.get("is_restricted")) or bool(user.get("is_ultra_restricted")),
            "stranger": bool(user.get("is_stranger"))}
    cache.set(key, info, timeout=int(settings.SLACK_USER_CACHE_TTL_S))
    return info


def directory_user(info: dict[str, Any], home: Installation) -> DirectoryUser | None:
    """A member of the installing workspace, or of its Enterprise Grid org, who is not a guest: only then does
    their email identify a Citewise account. A Slack Connect partner's admin can give anyone any address."""
    if not info:
        return None
    same_org = (bool(home.team_id) and info.get("team_id") == home.team_id) or (
        bool(home.enterprise_id) and info.get("enterprise_id") == home.enterprise_id)
    internal = same_org and not (info.get("guest") or info.get("stranger") or info.get("deleted")
                                 or info.get("is_bot"))
    return DirectoryUser(addresses=(info["email"],) if info.get("email") else (), internal=internal)


def email_lookup(client: WebClient, team_id: str, home: Installation):
    def lookup(user_id: str) -> DirectoryUser | None:
        return directory_user(user_info(client, team_id, user_id), home)
    return lookup


def channel_members(client: WebClient, channel: str) -> list[str]:
    members: list[str] = []
    cursor = None
    while len(members) < MAX_CHANNEL_MEMBERS:
        page = client.conversations_members(channel=channel, cursor=cursor, limit=200)
        members.extend(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return members
    raise BotError("This channel is too large for answers everyone can read; ask me in a DM instead.")


# -- the background answer ---------------------------------------------------------------------------

def _react(client: WebClient, method: str, channel: str, ts: str) -> None:
    try:
        getattr(client, method)(channel=channel, timestamp=ts, name=PROGRESS_REACTION)
    except SlackApiError as exc:
        logger.debug("%s failed: %s", method, exc)


class _ClaimLost(Exception):
    """This worker's claim ran out and a retry of the event took it over: the retry answers, this worker stops."""


def process_event(payload: dict[str, Any], client: WebClient | None = None) -> str:
    """Answer one question event, at most once per event_id. Returns what happened (for tests and logs)."""
    from bot.slack.app import make_client

    event_id, team_id, event = payload["event_id"], payload["team_id"], payload["event"]
    channel, user_id, ts = event["channel"], event["user"], event["ts"]
    thread = event.get("thread_ts") or ts
    is_dm = event.get("channel_type") == "im"
    ids = f"event={event_id} team={team_id} channel={channel} user={user_id} ts={ts}"
    channel_settings = None if is_dm else selectors.channel_policy(PLATFORM, team_id, channel)
    if channel_settings is not None and (not channel_settings.enabled or (
            not payload.get("mentioned") and channel_settings.respond_only_when_mentioned)):
        return "ignored"
    claim = services.claim_event(PLATFORM, event_id)
    if claim is None:
        logger.info("slack event already handled, ignoring the retry: %s", ids)
        return "duplicate"
    client = client or make_client()
    ephemeral = channel_settings is not None and channel_settings.visibility == selectors.EPHEMERAL
    bot_user_id = payload.get("bot_user_id") or ""
    text = MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), event.get("text") or "").strip()

    def keep_claim() -> None:
        # Renewed before every step that can take long, so only a dead worker's claim runs out.
        if not services.renew_claim(claim):
            raise _ClaimLost

    def post(message_text: str, blocks: list[dict[str, Any]]) -> None:
        if ephemeral:
            client.chat_postEphemeral(channel=channel, user=user_id, thread_ts=thread, text=message_text, blocks=blocks)
        else:
            client.chat_postMessage(channel=channel, thread_ts=thread, text=message_text, blocks=blocks,
                                    unfurl_links=False, unfurl_media=False)

    _react(client, "reactions_add", channel, ts)
    superseded = False
    try:
        keep_claim()
        # Payloads queued before the installation was recorded: the event's own workspace, and no org.
        home = Installation(**(payload.get("installation") or {"team_id": team_id}))
        lookup = email_lookup(client, team_id, home)
        asker = services.resolve_user(PLATFORM, team_id, user_id, lookup)
        if channel_settings is not None and channel_settings.visibility == selectors.CHANNEL_SAFE:
            member_ids = {m for m in channel_members(client, channel) if m != bot_user_id} | {user_id}
            members = [services.resolve_user(PLATFORM, team_id, m, lookup) for m in sorted(member_ids)
                       if m == user_id or not user_info(client, team_id, m).get("is_bot")]
            principals, unlinked = services.shared_principals(members)
            keep_claim()
            answer = services.answer_question(asker, channel_id=channel, thread_id=thread, text=text,
                                              scope=SCOPE_CHANNEL, principals=principals, members_unlinked=unlinked)
        else:
            keep_claim()
            answer = services.answer_question(asker, channel_id=channel, thread_id=thread, text=text,
                                              scope=SCOPE_PERSONAL)
        message_text, blocks = render.answer_blocks(answer, ephemeral=ephemeral,
                                                    console_url=settings.CONSOLE_URL)
        keep_claim()  # last chance to leave the answer to a retry that took over, rather than answer twice
        post(message_text, blocks)
    except _ClaimLost:
        superseded = True
        logger.warning("slack event taken over by a retry while this worker was at it; leaving it to that: %s", ids)
        return "superseded"
    except BotError as exc:
        logger.warning("slack question not answered (%s): %s", exc.user_message, ids)
        outcome = _post_failure(post, exc.user_message, ids)
        services.finish_event(PLATFORM, event_id, error=exc.user_message if exc.retryable else "",
                              attempt=claim.attempt)
        return outcome
    except Exception as exc:  # noqa: BLE001 - every failure becomes a friendly message and a log line
        logger.exception("slack answer failed: %s", ids)
        _post_failure(post, FAILURE_MESSAGE.format(ref=event_id), ids)
        services.finish_event(PLATFORM, event_id, error=f"{type(exc).__name__}: {exc}", attempt=claim.attempt)
        return "failed"
    finally:
        if not superseded:
            _react(client, "reactions_remove", channel, ts)
    services.finish_event(PLATFORM, event_id, attempt=claim.attempt)
    logger.info("slack question answered: %s answer=%s", ids, answer.result.answer_id)
    return "answered"


def _post_failure(post, message: str, ids: str) -> str:
    try:
        post(message, render.message_blocks(message))
        return "explained"
    except Exception:  # noqa: BLE001
        logger.exception("could not post the failure message either: %s", ids)
        return "failed"
