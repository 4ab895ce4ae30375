from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
from django.core.cache import cache

from tests.bot.slack_standin import SlackStandIn

SECRET = "test-signing-secret"
TEAM = "T1"


def sign(body: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": f"v0={digest}"}


@pytest.fixture
def slack(settings):
    standin = SlackStandIn(team_id=TEAM).start()
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    settings.SLACK_API_BASE_URL = standin.base_url
    settings.CONSOLE_URL = ""
    cache.clear()
    yield standin
    standin.stop()
    cache.clear()


class SlackSender:
    def __init__(self, client):
        self.client = client
        self.counter = 0

    def post_event(self, event: dict, *, event_id: str | None = None, headers: dict | None = None, **sign_kw):
        self.counter += 1
        body = json.dumps({"token": "x", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
                           "event_id": event_id or f"Ev{self.counter:06d}", "event_time": int(time.time()),
                           "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
                           "event": event})
        return self.raw(body, "application/json", headers=headers, **sign_kw)

    def post_payload(self, payload: dict):
        body = urlencode({"payload": json.dumps(payload)})
        return self.raw(body, "application/x-www-form-urlencoded")

    def raw(self, body: str, content_type: str, *, headers: dict | None = None, **sign_kw):
        return self.client.post("/slack/events", data=body, content_type=content_type,
                                **sign(body, **sign_kw), **(headers or {}))


@pytest.fixture
def sender(client):
    return SlackSender(client)


def mention(user: str, text: str, *, ts: str, channel: str = "C1", thread_ts: str | None = None) -> dict:
    event = {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "ts": ts, "channel": channel,
             "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def dm(user: str, text: str, *, ts: str, channel: str = "D1") -> dict:
    return {"type": "message", "channel_type": "im", "user": user, "text": text, "ts": ts, "channel": channel,
            "event_ts": ts}
