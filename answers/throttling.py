"""Rate limits on asking and searching: per asker and per chat channel, counted in Django's cache.

Every ask goes through `answers.services.ask()`, which calls `check_ask()` before any other work, so the web chat,
the API, Slack, Teams and the CLI share one limit per person; searches call `check_search()`. The limits live here,
under the API and the console that also check searches, because ask() itself must apply them. The counts live in the
default cache (django-ratelimit: fixed windows, atomic add/incr), shared by every process when CITEWISE_CACHE_URL
points at Redis and per process otherwise. Rates come from the settings (CITEWISE_ASK_RATE_PER_USER,
CITEWISE_ASK_RATE_PER_CHANNEL, CITEWISE_SEARCH_RATE_PER_USER); an empty or zero rate turns a limit off.
"""

from __future__ import annotations

import logging
from typing import Any

from django_ratelimit.core import get_usage
from prometheus_client import Counter

from core import errors
from core.config import current

logger = logging.getLogger("citewise.throttling")
RATE_LIMITED = Counter("citewise_rate_limited_total", "Asks and searches refused by a rate limit", ["action", "scope"])

ASK, SEARCH = "ask", "search"
USER, CHANNEL = "user", "channel"


class RateLimited(errors.RateLimited):
    """Too many requests from one asker (scope "user") or one chat channel (scope "channel"); retry later."""

    def __init__(self, action: str, scope: str, retry_after: int):
        self.action, self.scope = action, scope
        retry_after = max(1, int(retry_after))
        who = "This channel is" if scope == CHANNEL else "You are"
        doing = "asking questions" if action == ASK else "searching"
        message = f"{who} {doing} too quickly; please wait {_duration(retry_after)} and try again."
        super().__init__(message, retry_after=retry_after, user_message=message)


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def asker_key(user: Any = None, requester: str = "") -> str:
    """Whom a per-user limit counts: the Citewise user, else the caller's own id (an unlinked chat user)."""
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        return f"user:{user.pk}"
    return requester


def _check(action: str, limits: list[tuple[str, str, str]]) -> None:
    """Count one `action` against each (scope, key, rate); the settings have validated the rates ("" is off)."""
    for scope, key, rate in limits:
        if not key or not rate:
            continue
        try:
            usage = get_usage(None, group=f"citewise.{action}.{scope}", key=lambda _group, _request: key, rate=rate,
                              increment=True)
        except Exception:
            logger.warning("rate limit store unavailable; %s not limited", action, exc_info=True)
            continue
        if usage is not None and usage["should_limit"]:
            RATE_LIMITED.labels(action, scope).inc()
            logger.info("rate limited: %s by %s %s (%s), retry in %ss", action, scope, key, rate, usage["time_left"])
            raise RateLimited(action, scope, usage["time_left"])


def check_ask(*, user: Any = None, requester: str = "", channel: str = "") -> None:
    """Count one question against its asker's and its channel's limits; raise RateLimited if either is spent.

    `requester` names an asker without a Citewise user (e.g. "slack:T1:user:U2"); `channel` a chat channel
    (e.g. "slack:T1:C3"). Neither given and no user (the CLI without --as): nothing to count.
    """
    config = current()
    _check(ASK, [(USER, asker_key(user, requester), config.ask_rate_per_user),
                 (CHANNEL, channel, config.ask_rate_per_channel)])


def check_search(*, user: Any) -> None:
    """Count one search against the user's limit; raise RateLimited if it is spent."""
    _check(SEARCH, [(USER, asker_key(user), current().search_rate_per_user)])
