from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.cache import cache

from tests.clock import FakeClock
from tests.fixtures import merge, payload
from tests.standins.slack import SlackStandIn

SECRET = "test-signing-secret"
TEAM = "T1"


def sign(body: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": f"v0={digest}"}


@pytest.fixture
def bot_clock(settings) -> FakeClock:
    clock = FakeClock()
    settings.BOT_CLOCK = clock
    return clock


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

    def post_event(self, envelope: dict, *, event_id: str | None = None, headers: dict | None = None, **sign_kw):
        """Send an Events API envelope (tests/fixtures/slack) as a new delivery: a fresh event_id unless one is
        given, stamped now."""
        self.counter += 1
        body = json.dumps(merge(dict(envelope), {"event_id": event_id or f"Ev{self.counter:06d}",
                                                 "event_time": int(time.time())}))
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
    """An app_mention envelope."""
    return payload("slack/app_mention", event={"user": user, "text": f"<@UBOT> {text}", "ts": ts, "event_ts": ts,
                                                "channel": channel, "thread_ts": thread_ts})


def dm(user: str, text: str, *, ts: str, channel: str = "D1", **event) -> dict:
    """A message.im envelope."""
    return payload("slack/message_im", event={"user": user, "text": text, "ts": ts, "event_ts": ts,
                                               "channel": channel, **event})


def channel_message(user: str, text: str, *, ts: str, channel: str = "C1") -> dict:
    """A message.channels envelope: a channel message that does not mention the bot."""
    return payload("slack/message_channel", event={"user": user, "text": text, "ts": ts, "event_ts": ts,
                                                    "channel": channel})


def button_click(action_id: str, value: str, *, user: str = "UALICE", **fields) -> dict:
    """A block_actions payload: `user` clicked the answer's button `action_id` (feedback_up/down, flag)."""
    clicked = payload("slack/block_actions", user={"id": user, "username": user.lower(), "name": user.lower()},
                      **fields)
    if clicked.get("actions"):
        clicked["actions"][0].update(action_id=action_id, value=value)
    return clicked


def flag_submission(private_metadata: str, *, user: str = "UALICE", reason: str | None = "wrong",
                    comment: str | None = "Out of date", **fields) -> dict:
    """A view_submission payload of the flag modal; None leaves a field out of the state."""
    submitted = payload("slack/view_submission", user={"id": user, "username": user.lower(), "name": user.lower()},
                        view={"private_metadata": private_metadata}, **fields)
    values = submitted["view"]["state"]["values"]
    if reason is None:
        del values["reason"]
    else:
        values["reason"]["reason"]["selected_option"]["value"] = reason
    if comment is None:
        del values["comment"]
    else:
        values["comment"]["comment"]["value"] = comment
    return submitted


def index_with_a_slack_asker(settings, tmp_path, prefix: str) -> tuple[Path, str]:
    """An embedded index of its own holding tests/console's two-document corpus, and alice linked as Slack user
    UALICE: for tests whose answering runs in another process. Returns the index's directory and name."""
    import uuid

    from identity.models import ExternalIdentity
    from retrieval import services as retrieval_services
    from tests.console.conftest import index_corpus, make_user, write_corpus

    index_dir, index_name = tmp_path / "index", f"{prefix}-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                                                  index_name=index_name)
    retrieval_services._backends.clear()
    index_corpus(write_corpus(tmp_path / "docs"))
    ExternalIdentity.objects.create(user=make_user("alice"), principal=f"slack:{TEAM}:user:UALICE")
    return index_dir, index_name
