"""The botbuilder adapter for Teams, built from settings: the request path (bot.teams.listeners) and the background
answer (bot.teams.platform) both run their turns on it.

Every import of botbuilder / botframework lives under bot/teams/, so a move to the Microsoft 365 Agents SDK
touches this package only.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from botbuilder.core import CloudAdapterBase, TurnContext
from django.conf import settings

from bot.teams.auth import TeamsNotConfigured, build_authentication

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


__all__ = ["TeamsAdapter", "TeamsNotConfigured", "get_adapter"]
