"""The bots' sense of time: settings.BOT_CLOCK (core/clock.py), which claim leases, a chat's idle spell and the
Slack client's Retry-After waits go through."""

from __future__ import annotations

from core.clock import Clock, configured


def clock() -> Clock:
    """settings.BOT_CLOCK: the system's clock unless a test sets one."""
    return configured("BOT_CLOCK")

