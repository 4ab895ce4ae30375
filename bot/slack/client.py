"""The Slack Web API client: Slack's own, with a 429's Retry-After honoured only when it is short."""

from __future__ import annotations

import logging
import random
from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.clock import clock as bot_clock
from core.clock import Clock
from core.outbound import observe

logger = logging.getLogger("citewise.bot.slack")

# A longer Retry-After is not waited for: the call fails (SlackApiError, 429) and the event is left to Slack's retry.
# A request thread asleep for minutes is one a web worker may be killed over, losing the event with it.
MAX_RETRY_AFTER_S = 30


def _retry_after_s(response: HttpResponse | None) -> float | None:
    if response is None:
        return None
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(float(values[0]), 0.0)
            except ValueError:
                return None  # an HTTP date, or garbage: no promise of a short wait
    return None


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, retrying only when Retry-After is at most MAX_RETRY_AFTER_S (and a number), and
    waiting on the bots' clock."""

    def __init__(self, max_retry_count: int = 1, clock: Clock | None = None):
        super().__init__(max_retry_count=max_retry_count)
        self.clock = clock

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        wait = _retry_after_s(response)
        if wait is None or wait > MAX_RETRY_AFTER_S:
            logger.warning("slack %s rate limited for %s s (over %s s, or not given in seconds): not waiting",
                           request.url, wait, MAX_RETRY_AFTER_S)
            return False
        return True

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        # The library's own version reads Retry-After with int(), which a fractional value would crash.
        state.next_attempt_requested = True
        (self.clock or bot_clock()).sleep(min(_retry_after_s(response) or 1.0, MAX_RETRY_AFTER_S) + random.random())
        state.increment_current_attempt()


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class MeteredWebClient(WebClient):
    """Counts each Web API call (with the client's own retries) in core.outbound's metrics."""

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        with observe("slack", status_of=_http_status):
            return super().api_call(api_method, **kwargs)


def make_client(token: str | None = None, *, clock: Clock | None = None) -> WebClient:
    """A Web API client that honours a 429's Retry-After up to MAX_RETRY_AFTER_S (twice at most) and retries
    dropped connections. It waits on `clock`, by default the bots' clock (settings.BOT_CLOCK) at the time."""
    return MeteredWebClient(
        token=token if token is not None else settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=int(settings.SLACK_API_TIMEOUT_S),
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1),
                        CappedRateLimitRetryHandler(max_retry_count=2, clock=clock)],
    )
