"""Who may read /metrics, and that asking in the web chat is a CSRF-protected POST."""

from __future__ import annotations

import pytest
from django.test import Client

from answers.models import Answer
from tests.console.conftest import KITCHEN_QUESTION
from tests.sse import sse_events

pytestmark = pytest.mark.django_db

METRICS, CHAT, STREAM = "/metrics", "/chat/", "/chat/stream"
METRICS_TOKEN = "0123456789abcdef-a-long-random-scrape-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events(response) -> list[tuple[str, dict]]:
    return sse_events(response)


# -- /metrics ----------------------------------------------------------------------------------------


def test_metrics_need_the_scrape_token_not_a_loopback_address(client, settings):
    """Reproduces issue 10 item 17: /metrics trusts a loopback REMOTE_ADDR, so behind a reverse proxy on the same
    host every visitor is "local" and reads the metrics."""
    settings.CITEWISE_METRICS_TOKEN = METRICS_TOKEN
    # What a same-host proxy forwards: every request arrives from 127.0.0.1 or ::1.
    for address in ("127.0.0.1", "::1"):
        response = client.get(METRICS, REMOTE_ADDR=address)
        assert response.status_code == 401, address
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"citewise_" not in response.content
    for wrong in (bearer("not-the-token"), bearer(METRICS_TOKEN[:-1]), bearer(METRICS_TOKEN + "x"),
                  {"Authorization": f"Token {METRICS_TOKEN}"}, {"Authorization": METRICS_TOKEN}, bearer("")):
        assert client.get(METRICS, headers=wrong, REMOTE_ADDR="127.0.0.1").status_code == 401, wrong

    scraped = client.get(METRICS, headers=bearer(METRICS_TOKEN), REMOTE_ADDR="10.1.2.3")
    assert scraped.status_code == 200 and b"citewise_searches_total" in scraped.content
    assert scraped["Content-Type"].startswith("text/plain")


def test_metrics_for_staff_sessions_and_nobody_else_without_a_token(client, settings, alice, admin_user):
    """Reproduces issue 10 item 17: without a configured token, only staff may read /metrics (not loopback)."""
    settings.CITEWISE_METRICS_TOKEN = ""
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 401
    # An empty configured token never matches an empty (or any) bearer token.
    assert client.get(METRICS, headers=bearer(""), REMOTE_ADDR="127.0.0.1").status_code == 401
    client.force_login(alice)
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 403
    client.force_login(admin_user)
    assert client.get(METRICS, REMOTE_ADDR="10.1.2.3").status_code == 200


# -- the chat stream ---------------------------------------------------------------------------------


def test_asking_in_the_chat_is_a_post_with_a_csrf_token(corpus, alice):
    """Reproduces issue 10 item 17: a GET on the chat stream records a question without CSRF protection, so any
    page the employee visits can ask in their name (an <img> or EventSource to /chat/stream?q=...)."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get(STREAM, {"q": KITCHEN_QUESTION}).status_code == 405
    forged = browser.post(STREAM, {"q": KITCHEN_QUESTION})
    assert forged.status_code == 403 and b"CSRF" in forged.content
    assert not Answer.objects.exists()

    token = str(browser.get(CHAT).context["csrf_token"])
    response = browser.post(STREAM, {"q": KITCHEN_QUESTION}, headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    names = [name for name, _ in events(response)]
    assert names[0] == "meta" and names[-1] == "done"
    record = Answer.objects.get()
    assert (record.user, record.surface, record.question) == (alice, "web", KITCHEN_QUESTION)
