"""The bots' sense of time: what time it is, and how to wait.

Everything in bot/ that waits (a Retry-After, a backoff) or compares with the current time (claim leases, a chat's
idle spell) asks `clock()`, which is settings.BOT_CLOCK: the system's clock in production, one a test controls so
that it can assert how long the bot meant to wait without waiting.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` before going on."""


class SystemClock:
    def now(self) -> datetime:
        return timezone.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def clock() -> Clock:
    """settings.BOT_CLOCK: a Clock, or the dotted path of one."""
    configured = getattr(settings, "BOT_CLOCK", None) or SYSTEM_CLOCK
    return import_string(configured) if isinstance(configured, str) else configured
