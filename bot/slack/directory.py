"""Who a Slack user is, through the Web API: the installation whose members count as ours, users.info and
users.list (cached), and a channel's member list."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import BotError, Directory, DirectoryUser

logger = logging.getLogger("citewise.bot.slack")
MAX_CHANNEL_MEMBERS = 2000
MEMBERS_PAGE = 200
# Past this many users to look up, the workspace's user list is paged through instead of asking about each
# (users.info is a Tier 4 method, users.list Tier 2 with up to USERS_LIST_PAGE users a call).
USERS_INFO_AT_MOST = 5
USERS_LIST_PAGE = 200


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


def _cache_key(team_id: str, user_id: str) -> str:
    # v2: entries without the team and guest fields must not be read as a member of ours.
    return f"citewise:slack:user:v2:{team_id}:{user_id}"


def _info(user: dict[str, Any]) -> dict[str, Any]:
    """What counts of a users.info / users.list user object: email, bot, deleted, home team and org, guest flags."""
    return {"email": (user.get("profile") or {}).get("email") or "",
            "is_bot": bool(user.get("is_bot")) or user.get("id") == "USLACKBOT", "deleted": bool(user.get("deleted")),
            "team_id": user.get("team_id") or "",
            "enterprise_id": (user.get("enterprise_user") or {}).get("enterprise_id") or "",
            # Multi-channel (restricted) and single-channel (ultra restricted) guests; strangers are users of
            # another organisation who share no channel with the app.
            "guest": bool(user.get("is_restricted")) or bool(user.get("is_ultra_restricted")),
            "stranger": bool(user.get("is_stranger"))}


def user_infos(client: WebClient, team_id: str, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What Slack says about each of `user_ids`, cached; users it will not say anything about are left out.

    A few users not in the cache are asked about one by one (users.info); more than USERS_INFO_AT_MOST are read
    from the workspace's user list instead (users.list, USERS_LIST_PAGE at a time, until all are found), so that a
    channel of hundreds of members costs a few calls rather than one each, and stays clear of rate limits.
    """
    keys = {user_id: _cache_key(team_id, user_id) for user_id in dict.fromkeys(user_ids)}
    cached = cache.get_many(list(keys.values()))
    found = {user_id: cached[key] for user_id, key in keys.items() if isinstance(cached.get(key), dict)}
    missing = [user_id for user_id in keys if user_id not in found]
    if len(missing) > USERS_INFO_AT_MOST:
        found.update(_from_user_list(client, team_id, set(missing)))
        # Users of other organisations (a Slack Connect channel) are not in the list: asked about only when few.
        missing = [user_id for user_id in missing if user_id not in found][:USERS_INFO_AT_MOST]
    fetched: dict[str, dict[str, Any]] = {}
    for user_id in missing:
        try:
            fetched[user_id] = _info(client.users_info(user=user_id)["user"])
        except (SlackApiError, KeyError):
            logger.warning("users.info failed for %s/%s", team_id, user_id, exc_info=True)
    cache.set_many({keys[user_id]: info for user_id, info in fetched.items()},
                   timeout=int(settings.SLACK_USER_CACHE_TTL_S))
    return found | fetched


def _from_user_list(client: WebClient, team_id: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The wanted users' entries from users.list, page by page until all are found; every entry read is cached."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    try:
        while True:
            page = client.users_list(cursor=cursor, limit=USERS_LIST_PAGE)
            infos = {user["id"]: _info(user) for user in page.get("members") or [] if user.get("id")}
            cache.set_many({_cache_key(team_id, user_id): info for user_id, info in infos.items()},
                           timeout=int(settings.SLACK_USER_CACHE_TTL_S))
            found.update((user_id, info) for user_id, info in infos.items() if user_id in wanted)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor or len(found) == len(wanted):
                return found
    except SlackApiError:
        logger.warning("users.list failed for %s after %d users", team_id, len(found), exc_info=True)
        return found


def directory_user(info: dict[str, Any], home: Installation) -> DirectoryUser | None:
    """A member of the installing workspace, or of its Enterprise Grid org, who is not a guest: only then does
    their email identify a Citewise account. A Slack Connect partner's admin can give anyone any address."""
    if not info:
        return None
    same_org = (bool(home.team_id) and info.get("team_id") == home.team_id) or (
        bool(home.enterprise_id) and info.get("enterprise_id") == home.enterprise_id)
    internal = same_org and not (info.get("guest") or info.get("stranger") or info.get("deleted")
                                 or info.get("is_bot"))
    return DirectoryUser(addresses=(info["email"],) if info.get("email") else (), internal=internal,
                         bot=bool(info.get("is_bot")))


def workspace_directory(client: WebClient, team_id: str, home: Installation) -> Directory:
    """bot.services' Directory for one workspace, through the Web API."""
    def lookup(user_ids: Sequence[str]) -> dict[str, DirectoryUser | None]:
        return {user_id: directory_user(info, home) for user_id, info in user_infos(client, team_id, user_ids).items()}
    return lookup


def channel_members(client: WebClient, channel: str) -> list[str]:
    """Every member of a channel (conversations.members, page by page); BotError past MAX_CHANNEL_MEMBERS."""
    members: list[str] = []
    cursor = None
    while len(members) < MAX_CHANNEL_MEMBERS:
        page = client.conversations_members(channel=channel, cursor=cursor, limit=MEMBERS_PAGE)
        members.extend(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return members
    raise BotError("This channel is too large for answers everyone can read; ask me in a DM instead.")
