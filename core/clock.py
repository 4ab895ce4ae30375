"""What time it is, and how to wait, for code whose waits a test must control.

Code that waits (a Retry-After, a backoff) or compares with the current time (claim leases, a chat's idle spell)
asks `configured(<setting name>)`: the system's clock in production, one a test controls through that Django setting
(a Clock, or the dotted path of one), so that it can assert how long the code meant to wait without waiting.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` before going on."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def configured(setting: str) -> Clock:
    """The Clock Django setting `setting` names (a Clock or its dotted path); the system's when it is unset."""
    value = getattr(settings, setting, None) or SYSTEM_CLOCK
    return import_string(value) if isinstance(value, str) else value
