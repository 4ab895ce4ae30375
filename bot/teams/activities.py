"""Reading Teams activities: the question's text without the bot's @mention, who sent it, which conversation and
channel it belongs to."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from botbuilder.schema import Activity
from bs4 import BeautifulSoup

from bot.teams.auth import tenant_id

MAX_KEY = 255


def key(value: str) -> str:
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


def conversation_type(activity: Activity) -> str:
    return (activity.conversation.conversation_type if activity.conversation else None) or "personal"


def channel(activity: Activity) -> tuple[str, str]:
    """(team id, channel id) keys of an admin's channel settings; a group chat is its own channel."""
    data = activity.channel_data or {}
    if conversation_type(activity) == "channel":
        channel_id = (data.get("channel") or {}).get("id") or activity.conversation.id.split(";", 1)[0]
        return (data.get("team") or {}).get("id") or tenant_id(activity), channel_id
    return tenant_id(activity), activity.conversation.id
