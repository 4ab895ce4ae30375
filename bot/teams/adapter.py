"""The botbuilder adapter for Teams, built from settings, and the request path: authenticate, then dispatch.

Every import of botbuilder / botframework lives under bot/teams/, so a move to the Microsoft 365 Agents SDK
touches this package only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from botbuilder.core import CloudAdapterBase, TurnContext
from botbuilder.schema import Activity
from django.conf import settings

from bot.teams.auth import (
    AuthenticationUnavailable,
    TeamsNotConfigured,
    TenantMismatch,
    build_authentication,
    service_url_allowed,
    tenant_allowed,
    tenant_id,
)

logger = logging.getLogger("citewise.bot.teams")
_lock = threading.Lock()
_adapters: dict[tuple[Any, ...], TeamsAdapter] = {}


class TeamsAdapter(CloudAdapterBase):
    """CloudAdapterBase driven by Django rather than aiohttp: the view hands it parsed activities."""

    def __init__(self) -> None:
        super().__init__(build_authentication())
        self.on_turn_error = self._on_turn_error

    async def _on_turn_error(self, turn_context: TurnContext, error: Exception) -> None:
        # Reaches here only for failures outside the answer path (which reports its own, friendlier errors).
        logger.error("teams turn failed: activity=%s conversation=%s", turn_context.activity.id,
                     getattr(turn_context.activity.conversation, "id", ""), exc_info=error)
        raise error


def _settings_key() -> tuple[Any, ...]:
    return tuple(getattr(settings, name) for name in (
        "TEAMS_ENABLED", "DEBUG", "TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_APP_TENANT_ID",
        "TEAMS_OPENID_METADATA_URL", "TEAMS_EMULATOR_OPENID_METADATA_URL", "TEAMS_TOKEN_ISSUER", "TEAMS_TOKEN_URL",
        "TEAMS_OAUTH_SCOPE"))


def get_adapter() -> TeamsAdapter:
    """The adapter for the current settings (rebuilt if they change, as they do between tests).

    Raises TeamsNotConfigured when the bot is off, or has no app id outside DEBUG.
    """
    key = _settings_key()
    with _lock:
        adapter = _adapters.get(key)
        if adapter is None:
            adapter = TeamsAdapter()
            _adapters.clear()
            _adapters[key] = adapter
        return adapter


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
    from bot.teams.handlers import CitewiseTeamsBot

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


__all__ = ["Reply", "TeamsAdapter", "TeamsNotConfigured", "authenticate_header", "check_configured", "get_adapter",
           "receive"]
