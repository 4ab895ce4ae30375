"""Reads for the chat-bot platform modules: an admin's channel settings."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import ChannelSettings

EPHEMERAL = ChannelSettings.Visibility.EPHEMERAL.value  # privately to the asker, with their permissions
CHANNEL_SAFE = ChannelSettings.Visibility.CHANNEL_SAFE.value


@dataclass(frozen=True)
class ChannelPolicy:
    enabled: bool = True
    respond_only_when_mentioned: bool = True
    visibility: str = EPHEMERAL


def channel_policy(platform: str, team_id: str, channel_id: str) -> ChannelPolicy:
    """The admin's settings for a channel, or the defaults (enabled, mentions only, private answers)."""
    row = ChannelSettings.objects.filter(platform=platform, team_id=team_id, channel_id=channel_id).first()
    if row is None:
        return ChannelPolicy()
    return ChannelPolicy(row.enabled, row.respond_only_when_mentioned, row.visibility)
