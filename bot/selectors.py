"""Reads for the chat-bot platform modules: channel settings and who a platform user is."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import SlackChannelSettings

EPHEMERAL = SlackChannelSettings.Visibility.EPHEMERAL.value
CHANNEL_SAFE = SlackChannelSettings.Visibility.CHANNEL_SAFE.value


@dataclass(frozen=True)
class ChannelSettings:
    enabled: bool = True
    respond_only_when_mentioned: bool = True
    visibility: str = EPHEMERAL


def slack_channel_settings(team_id: str, channel_id: str) -> ChannelSettings:
    """The admin's settings for a channel, or the defaults (enabled, mentions only, ephemeral answers)."""
    row = SlackChannelSettings.objects.filter(team_id=team_id, channel_id=channel_id).first()
    if row is None:
        return ChannelSettings()
    return ChannelSettings(row.enabled, row.respond_only_when_mentioned, row.visibility)
