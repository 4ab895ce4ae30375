"""The bolt App, built from settings: one for the HTTP Events API (Django adapter) and for Socket Mode."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

logger = logging.getLogger("citewise.bot.slack")
_lock = threading.Lock()
_apps: dict[tuple[str, str, str], App] = {}


class SlackNotConfigured(RuntimeError):
    pass


def make_client(token: str | None = None) -> WebClient:
    """A Web API client that honours 429 Retry-After (twice at most) and retries dropped connections."""
    return WebClient(
        token=token if token is not None else settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=int(settings.SLACK_API_TIMEOUT_S),
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), RateLimitErrorRetryHandler(max_retry_count=2)],
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
