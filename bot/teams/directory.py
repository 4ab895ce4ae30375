"""Who a Teams user is: the Bot Connector's member records (email, UPN, home tenant, role), cached, and whose
directory counts (bot.teams.auth.identity_tenants)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo
from django.conf import settings
from django.core.cache import cache

from bot.services import DirectoryUser, IdentityLookupFailed
from bot.teams.activities import user_key
from bot.teams.auth import identity_tenants, tenant_id


def member_record(member: Any) -> dict[str, Any]:
    """What counts of a TeamsChannelAccount: its addresses, home tenant and role."""
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


async def fetch_member_record(turn_context: TurnContext, account: Any) -> dict[str, Any]:
    """Email, UPN, tenant and role of a conversation member from the members endpoint, cached per tenant and
    user."""
    # v2: entries without the tenant and role must not be read as a member of ours.
    key = f"citewise:teams:member:v2:{tenant_id(turn_context.activity)}:{user_key(account)}"
    cached = await cache.aget(key)
    if isinstance(cached, dict):
        return cached
    try:
        member = await TeamsInfo.get_member(turn_context, account.id)
    except Exception as exc:
        raise IdentityLookupFailed(f"{type(exc).__name__}: {exc}") from exc
    record = member_record(member)
    await cache.aset(key, record, timeout=int(settings.TEAMS_USER_CACHE_TTL_S))
    return record


class TeamsDirectory:
    """bot.services' Directory for one turn: members already listed answer from their records, the sender from
    the members endpoint (the only call it makes). Synchronous (the core is), run on a thread of the turn's event
    loop (sync_to_async)."""

    def __init__(self, turn_context: TurnContext):
        self.turn_context = turn_context
        self.tenant = tenant_id(turn_context.activity)
        self.records: dict[str, dict[str, Any]] = {}

    def remember(self, members: list[Any]) -> list[str]:
        """Keep the records of listed members; their user keys, in order."""
        keys = []
        for member in members:
            self.records[user_key(member)] = member_record(member)
            keys.append(user_key(member))
        return keys

    def __call__(self, user_ids: Sequence[str]) -> dict[str, DirectoryUser | None]:
        sender = self.turn_context.activity.from_property
        if user_key(sender) in user_ids and user_key(sender) not in self.records:
            self.records[user_key(sender)] = async_to_sync(fetch_member_record)(self.turn_context, sender)
        return {user_id: directory_user(self.records[user_id], self.tenant) for user_id in user_ids
                if user_id in self.records}
