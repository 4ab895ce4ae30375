"""Redis stops and comes back: the web app keeps answering (the answer cache and rate limits fail open, a chat
question the broker cannot take is answered in-process), readiness says the broker is down, and the cache is used
again once Redis returns, without a restart."""

from __future__ import annotations

import json

import pytest

from answers.models import Answer
from console.celery import app as celery_app
from identity.models import ExternalIdentity
from tests.bot.conftest import TEAM, mention, sender, slack  # noqa: F401 - fixtures
from tests.bot.test_slack import blocks_text
from tests.console.conftest import KITCHEN_QUESTION, auth, corpus, make_user  # noqa: F401 - fixture
from tests.faults.outages import RedisServer
from tests.workers import reset_celery_connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(settings, tmp_path):
    """Cache, rate limits and the task broker on a redis-server of the test's own, which the test may stop."""
    server = RedisServer(tmp_path / "redis").start()
    original_caches = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"{server.url}/1", "KEY_PREFIX": "citewise"}}
    settings.CITEWISE = settings.CITEWISE.replace(ask_rate_per_user="100/m", ask_rate_per_channel="100/m")
    settings.CELERY_BROKER_URL = f"{server.url}/0"
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    reset_celery_connections()
    celery_app.conf.update(broker_url=settings.CELERY_BROKER_URL, task_always_eager=False)
    yield server
    reset_celery_connections()
    celery_app.conf.update(saved)
    settings.CACHES = original_caches  # before the server goes: other fixtures' teardowns clear the cache
    server.stop()


def ask(client, user, question: str):
    response = client.post("/api/v1/ask", json.dumps({"question": question}), content_type="application/json",
                           headers=auth(user))
    assert response.status_code == 200, response.content
    body = response.json()
    return body, Answer.objects.get(id=body["answer_id"]).timings["cache"]


def test_with_redis_stopped_the_api_still_answers_and_the_cache_returns_by_itself(client, corpus, own_redis):
    alice = make_user("alice")
    assert ask(client, alice, KITCHEN_QUESTION)[1] == "miss"
    assert ask(client, alice, KITCHEN_QUESTION)[1] == "hit"  # the answer cache is Redis

    own_redis.stop()
    body, cache_status = ask(client, alice, KITCHEN_QUESTION)
    assert cache_status == "unavailable" and "Friday" in body["answer"] and body["citations"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("error")
    assert client.get("/healthz").status_code == 200

    own_redis.start()  # same port: the clients reconnect by themselves
    assert client.get("/readyz").status_code == 200
    assert ask(client, alice, KITCHEN_QUESTION)[1] == "miss"  # a fresh Redis is empty...
    assert ask(client, alice, KITCHEN_QUESTION)[1] == "hit"  # ...and used again


def test_with_redis_stopped_a_slack_question_is_answered_in_process_not_lost(corpus, slack, sender, own_redis):
    alice = make_user("alice")
    ExternalIdentity.objects.create(user=alice, principal=f"slack:{TEAM}:user:UALICE")
    own_redis.stop()
    response = sender.post_event(mention("UALICE", KITCHEN_QUESTION, ts="100.000001"))
    assert response.status_code == 200
    [post] = slack.posts()
    assert "Friday" in blocks_text(post["body"]["blocks"])
    assert Answer.objects.get().surface == "slack"

    own_redis.start()  # with the broker back, questions are queued for a worker again (none runs here)
    response = sender.post_event(mention("UALICE", KITCHEN_QUESTION, ts="100.000002"))
    assert response.status_code == 200 and len(slack.posts()) == 1
    import redis

    assert redis.Redis.from_url(f"{own_redis.url}/0").llen("celery") == 1
