"""The one retry policy for every LLM provider call (chat, query rewrite, Cohere Rerank), on tenacity.

Retries are ours, not the SDKs' (both SDKs are built with max_retries=0): the SDKs honour Retry-After for
up to 60 s (cohere) or 120 s (openai), and the openai SDK also retries timeouts, which would multiply the
time a person waits. Here a call is retried at most CITEWISE_LLM_MAX_RETRIES times on 408/409/429/5xx and
connection failures: after Retry-After when the server sends one (in seconds or as an HTTP date), giving
up at once when it asks for more than MAX_RETRY_WAIT_S, or else after exponential backoff with jitter.
A client-side timeout is not retried: the asker has already waited CITEWISE_LLM_TIMEOUT_S.

Waiting goes through a Clock (settings.LLM_CLOCK, the system's in production), so that tests script 429s
and 500s and assert the waits without sleeping.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from answers.types import ComposerError
from core.clock import Clock
from core.clock import configured as clock_named

logger = logging.getLogger("citewise.answering.llm")

RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx
MAX_RETRY_WAIT_S = 10.0
INITIAL_BACKOFF_S = 0.5

T = TypeVar("T")


def configured_clock() -> Clock:
    """settings.LLM_CLOCK: the clock retries wait on (the system's unless a test sets one)."""
    return clock_named("LLM_CLOCK")


@dataclass(frozen=True)
class Failure:
    """How a provider call failed: what to say, and whether (and after how long) to try again."""

    message: str
    retryable: bool = False
    # Retry-After and Retry-After-Ms as the server sent them (names lower-cased); read when the wait is chosen.
    retry_after: Mapping[str, str] = field(default_factory=dict)


def short(value: Any, limit: int = 200) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str)
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def status_failure(status: int, body: Any, headers: Mapping[str, Any] | None) -> Failure:
    retryable = status in RETRYABLE_STATUS or status >= 500
    lowered = {str(name).lower(): str(value) for name, value in (headers or {}).items()} if retryable else {}
    retry_after = {name: value for name, value in lowered.items() if name in ("retry-after", "retry-after-ms")}
    return Failure(f"HTTP {status}: {short(body)}", retryable, retry_after)


def retry_after_s(retry_after: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from Retry-After-Ms, or Retry-After as seconds or an HTTP date; None if absent."""
    if "retry-after-ms" in retry_after:
        try:
            return max(0.0, float(retry_after["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = retry_after.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        # An HTTP date is always GMT; "-0000" (how some servers write it) parses without a zone.
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now.timestamp()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _Failed(Exception):
    """A provider exception, described; it carries the attempt it ended so that messages can count them."""

    def __init__(self, failure: Failure, attempt: int) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.attempt = attempt


def _failed(retry_state: RetryCallState) -> _Failed:
    """The failed attempt tenacity is deciding about (only _Failed is ever retried)."""
    failed = retry_state.outcome.exception() if retry_state.outcome else None
    if not isinstance(failed, _Failed):  # the retry predicate lets nothing else through
        raise TypeError(f"not a retryable failure: {failed!r}")
    return failed


class _wait_retry_after(wait_base):
    """What Retry-After asks for, uncapped (_stop_when_wait_exceeds refuses too long a wait); else `backoff`."""

    def __init__(self, backoff: wait_base, clock: Clock) -> None:
        self.backoff = backoff
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> float:
        asked = retry_after_s(_failed(retry_state).failure.retry_after, self.clock.now())
        return self.backoff(retry_state) if asked is None else asked


class _stop_when_wait_exceeds(stop_base):
    """Give up rather than wait longer than `limit_s` (tenacity chooses the wait before asking to stop)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return (retry_state.upcoming_sleep or 0.0) > self.limit_s


def call_with_retry(call: Callable[[], T], *, describe: Callable[[Exception], Failure], what: str,
                    max_retries: int, clock: Clock | None = None) -> T:
    """`call()`, retried at most `max_retries` times on retryable failures; ComposerError when it gives up.

    `describe` turns the provider SDK's exception into a Failure; `what` names the call in messages and logs.
    """
    clock = clock or configured_clock()
    max_retries = max(0, max_retries)
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        try:
            return call()
        except Exception as exc:
            raise _Failed(describe(exc), attempts) from exc

    def log_retry(retry_state: RetryCallState) -> None:
        logger.warning("%s: %s; retry %d of %d in %.2f s", what, _failed(retry_state).failure.message,
                       retry_state.attempt_number, max_retries, retry_state.upcoming_sleep)

    def give_up(retry_state: RetryCallState) -> T:
        failed = _failed(retry_state)
        if failed.attempt <= max_retries:  # retries were left: the server asked for too long a wait
            raise ComposerError(
                f"{what}: {failed.failure.message}; Retry-After {retry_state.upcoming_sleep:.0f} s is longer than "
                f"the {MAX_RETRY_WAIT_S:.0f} s this will wait{_counted(failed.attempt)}") from failed.__cause__
        raise ComposerError(f"{what}: {failed.failure.message}{_counted(failed.attempt)}") from failed.__cause__

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, _Failed) and exc.failure.retryable),
        stop=stop_after_attempt(max_retries + 1) | _stop_when_wait_exceeds(MAX_RETRY_WAIT_S),
        wait=_wait_retry_after(wait_exponential_jitter(multiplier=INITIAL_BACKOFF_S, max=MAX_RETRY_WAIT_S,
                                                       jitter=INITIAL_BACKOFF_S / 2), clock),
        sleep=clock.sleep,
        before_sleep=log_retry,
        retry_error_callback=give_up,
    )
    try:
        return retrying(attempt)
    except _Failed as failed:  # not retryable
        raise ComposerError(f"{what}: {failed.failure.message}{_counted(failed.attempt)}") from failed.__cause__


def _counted(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""
