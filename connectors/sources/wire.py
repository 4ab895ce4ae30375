"""Values SaaS APIs send that every connector reads alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class Unresolvable(Exception):
    """Why an item's readers cannot be known: its permissions are then unknown (visible to nobody)."""


def retry_after(value: str | None, *, default: float) -> float:
    """Seconds a Retry-After header (in seconds) asks to wait; `default` when it is missing or not a number."""
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def iso_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time (a trailing Z allowed, as Atlassian and Microsoft write them), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
