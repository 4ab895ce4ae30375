"""Rate limits on asking and searching, through the API, the web chat and the search page, as clients see them.

Per-channel limits go through the Slack flow (tests/bot/test_slack.py); here: per user, shared by every surface.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from answers.models import Answer
from tests.api.test_api import ASK, QUESTION, SEARCH, alice, bob, corpus, post, stream  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent
OTHER_QUESTIONS = ["Where do I book hotels?", "How much may a hotel night cost?", "Who descales the machine?"]


@pytest.fixture
def limits(settings):
    """Turn limits on for one test, counted under a key prefix of its own (the cache outlives a test).

    Rates are per day: a fixed window that rolled over in the middle of a test would reset its counts.
    """
    settings.RATELIMIT_CACHE_PREFIX = f"citewise-test-rl-{uuid.uuid4().hex}:"

    def turn_on(**rates: str) -> None:
        settings.CITEWISE = settings.CITEWISE.replace(**rates)

    return turn_on


def searches_run() -> float:
    """Retrievals run so far in this process (every backend and mode): the work a limited request must not do."""
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "citewise_searches"
               for sample in metric.samples if sample.name == "citewise_searches_total")


def test_asking_too_fast_on_the_api_is_a_429_with_retry_after_and_runs_no_retrieval(client, corpus, alice, bob,
                                                                                     limits):
    """Reproduces issue 10 item 18: nothing limits how fast one user asks, so one user with ten threads saturates
    the server for everyone."""
    limits(ask_rate_per_user="2/d")
    for question in (QUESTION, OTHER_QUESTIONS[0]):
        assert post(client, ASK, {"question": question}, alice).status_code == 200
    searches, answers = searches_run(), Answer.objects.count()

    limited = post(client, ASK, {"question": OTHER_QUESTIONS[1]}, alice)
    assert limited.status_code == 429, limited.content
    retry_after = int(limited["Retry-After"])
    assert 1 <= retry_after <= 86400
    body = limited.json()
    assert body["retry_after"] == retry_after
    assert "too quickly" in body["detail"] and "wait" in body["detail"]
    # Refused before any work: no retrieval, and nothing recorded.
    assert searches_run() == searches and Answer.objects.count() == answers

    # Someone else asking the same new question is answered, and that does run a retrieval.
    other = post(client, ASK, {"question": OTHER_QUESTIONS[1]}, bob)
    assert other.status_code == 200 and searches_run() > searches


def test_asking_too_fast_in_the_web_chat_is_an_error_event_and_the_limit_spans_surfaces(client, corpus, alice, bob,
                                                                                        limits):
    """Reproduces issue 10 item 18: the web chat has no limit either, and each surface would need its own."""
    limits(ask_rate_per_user="2/d")
    client.force_login(alice)
    assert stream(client, {"q": QUESTION})[0][0] == "meta"
    assert post(client, ASK, {"question": OTHER_QUESTIONS[0]}, alice).status_code == 200  # the same budget
    searches, answers = searches_run(), Answer.objects.count()

    events = stream(client, {"q": OTHER_QUESTIONS[1]})
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]
    assert error["status"] == 429 and 1 <= error["retry_after"] <= 86400
    assert "too quickly" in error["message"] and "wait" in error["message"]
    assert searches_run() == searches and Answer.objects.count() == answers

    client.force_login(bob)
    assert stream(client, {"q": OTHER_QUESTIONS[1]})[0][0] == "meta"


def test_searching_too_fast_is_limited_on_the_api_and_the_search_page(client, corpus, alice, bob, limits):
    """Reproduces issue 10 item 18: /api/v1/search (and the search page) can be called as fast as a client likes."""
    limits(search_rate_per_user="2/d")
    assert post(client, SEARCH, {"query": "espresso"}, alice).status_code == 200
    client.force_login(alice)
    assert client.get("/", {"q": "hotel"}).status_code == 200
    searches = searches_run()

    limited = post(client, SEARCH, {"query": "espresso"}, alice)
    assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 86400
    assert "too quickly" in limited.json()["detail"]
    page = client.get("/", {"q": "hotel"})
    assert page.status_code == 429 and "too quickly" in page.content.decode()
    assert searches_run() == searches

    assert post(client, SEARCH, {"query": "espresso"}, bob).status_code == 200


def test_limits_turned_off_with_zero_or_empty(client, corpus, alice, limits):
    limits(ask_rate_per_user="0", search_rate_per_user="")
    for _ in range(3):
        assert post(client, SEARCH, {"query": "espresso"}, alice).status_code == 200
        assert post(client, ASK, {"question": QUESTION}, alice).status_code == 200


# A second process with the same settings: does it see the asks counted by this one?
_OTHER_PROCESS = """
import sys, django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from answers import throttling
settings.RATELIMIT_CACHE_PREFIX = sys.argv[1]
settings.CITEWISE = settings.CITEWISE.replace(ask_rate_per_user="2/d")
for pk in sys.argv[2:]:
    try:
        throttling.check_ask(user=get_user_model()(pk=int(pk)))
        print(pk, "allowed")
    except throttling.RateLimited as exc:
        print(pk, "limited", exc.retry_after)
"""


def test_with_redis_the_per_user_limit_is_shared_between_processes(client, corpus, alice, bob, limits, settings):
    """Reproduces issue 10 item 18: a limit kept in one process would let each web worker grant the full rate."""
    redis_url = "redis://127.0.0.1:6379/1"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": "citewise"}}
    limits(ask_rate_per_user="2/d")
    for question in (QUESTION, OTHER_QUESTIONS[0]):
        assert post(client, ASK, {"question": question}, alice).status_code == 200

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CITEWISE_"))}
    env.update(DJANGO_SETTINGS_MODULE="console.settings.test", CITEWISE_CACHE_URL=redis_url)
    result = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, settings.RATELIMIT_CACHE_PREFIX, str(alice.pk),
                             str(bob.pk)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    verdicts = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert verdicts[str(alice.pk)].startswith("limited") and verdicts[str(bob.pk)] == "allowed"
    # And back here, bob's ask in the other process counted against him too.
    assert post(client, ASK, {"question": QUESTION}, bob).status_code == 200
    assert post(client, ASK, {"question": QUESTION}, bob).status_code == 429
    assert post(client, ASK, {"question": QUESTION}, alice).status_code == 429
    assert json.loads(post(client, ASK, {"question": QUESTION}, alice).content)["retry_after"] >= 1
