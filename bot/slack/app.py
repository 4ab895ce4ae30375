"""The bolt App, built from settings: one for the HTTP Events API (Django adapter) and for Socket Mode."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from slack_bolt import App

from bot.slack.client import make_client
from bot.slack.listeners import register

logger = logging.getLogger("citewise.bot.slack")
_lock = threading.Lock()
_apps: dict[tuple[str, str, str], App] = {}


class SlackNotConfigured(RuntimeError):
    pass


def get_app() -> App:
    """The App for the current settings (rebuilt if they change, as they do between tests)."""
    token, secret, base_url = settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET, settings.SLACK_API_BASE_URL
    if not token or not secret:
        raise SlackNotConfigured("set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    key = (token, secret, base_url)
    with _lock:
        app = _apps.get(key)
        if app is None:
            # process_before_response: listeners only enqueue (bot.tasks), so the ack is still immediate, and
            # no listener runs on a thread the Django request does not own.
            app = App(signing_secret=secret, client=make_client(token), process_before_response=True,
                      token_verification_enabled=False, logger=logger)
            register(app)
            _apps.clear()
            _apps[key] = app
        return app
