"""The bolt App, built from settings: one for the HTTP Events API (Django adapter) and for Socket Mode."""

from __future__ import annotations

import logging
import random
import threading
import time

from django.conf import settings
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

logger = logging.getLogger("citewise.bot.slack")
_lock = threading.Lock()
_apps: dict[tuple[str, str, str], App] = {}

# A longer Retry-After is not waited for: the call fails (SlackApiError, 429) and the event is left to Slack's retry.
# A request thread asleep for minutes is one a web worker may be killed over, losing the event with it.
MAX_RETRY_AFTER_S = 30


class SlackNotConfigured(RuntimeError):
    pass


def _retry_after_s(response: HttpResponse) -> float | None:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(float(values[0]), 0.0)
            except ValueError:
                return None  # an HTTP date, or garbage: no promise of a short wait
    return None


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, retrying only when Retry-After is at most MAX_RETRY_AFTER_S (and a number)."""

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
        time.sleep(min(_retry_after_s(response) or 1.0, MAX_RETRY_AFTER_S) + random.random())
        state.increment_current_attempt()


def make_client(token: str | None = None) -> WebClient:
    """A Web API client that honours a 429's Retry-After up to MAX_RETRY_AFTER_S (twice at most) and retries
    dropped connections."""
    return WebClient(
        token=token if token is not None else settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=int(settings.SLACK_API_TIMEOUT_S),
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), CappedRateLimitRetryHandler(max_retry_count=2)],
    )


def get_app() -> App:
    """The App for the current settings (rebuilt if they change, as they do between tests)."""
    token, secret, base_url = settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET, settings.SLACK_API_BASE_URL
    if not token or not secret:
        raise SlackNotConfigured("set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    key = (token, secret, base_url)
    with _lock:
        app = _apps.get(key)
        if app is None:
            from bot.slack.handlers import register

            # process_before_response: listeners only enqueue (bot.tasks), so the ack is still immediate, and
            # no listener runs on a thread the Django request does not own.
            app = App(signing_secret=secret, client=make_client(token), process_before_response=True,
                      token_verification_enabled=False, logger=logger)
            register(app)
            _apps.clear()
            _apps[key] = app
        return app
