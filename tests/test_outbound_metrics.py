"""Every call to a service outside Citewise is counted by service and outcome (core.outbound), through each client's
own plumbing: an httpx client (connectors, OpenAI- and Cohere-compatible LLMs), the Slack SDK's client, and Bot
Framework's connector client. Each against a local stand-in speaking the service's wire format."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from slack_sdk.errors import SlackApiError

from answers.llm.openai import OpenAICompatibleComposer
from answers.types import ComposerError
from bot.slack.client import make_client
from core.outbound import MeteredClient
from tests.answers.test_llm_composers import passages
from tests.bot.test_teams import personal_message, send, teams  # noqa: F401 - fixture
from tests.faults.outages import free_port
from tests.standins import openai as openai_api
from tests.standins.openai import OpenAIStandIn
from tests.standins.slack import SlackStandIn


def calls(service: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("citewise_outbound_calls_total", {"service": service, "outcome": outcome}) or 0.0


class Counted:
    """The change in each (service, outcome) count across a block."""

    def __init__(self, *keys: tuple[str, str]) -> None:
        self.keys = keys

    def __enter__(self) -> Counted:
        self.before = {key: calls(*key) for key in self.keys}
        return self

    def __exit__(self, *exc) -> None:
        self.delta = {key: calls(*key) - self.before[key] for key in self.keys}


def test_slack_web_api_calls_are_counted_by_outcome():
    with SlackStandIn(team_id="T1") as slack:
        client = make_client("xoxb-test")
        client.base_url = slack.base_url
        keys = [("slack", outcome) for outcome in ("ok", "server_error", "error")]
        with Counted(*keys) as counted:
            client.chat_postMessage(channel="C1", text="hello")
            slack.fail("chat.postMessage", status=500)
            with pytest.raises(SlackApiError):
                client.chat_postMessage(channel="C1", text="hello")
            with pytest.raises(SlackApiError):  # ok=false with HTTP 200: the API refused it
                client.conversations_info(channel="")
        assert counted.delta == {("slack", "ok"): 1, ("slack", "server_error"): 1, ("slack", "error"): 1}


def test_llm_calls_are_counted_by_outcome(settings):
    from answers.llm.limits import Limits

    with OpenAIStandIn() as server:
        composer = OpenAICompatibleComposer(base_url=f"{server.url}/v1", api_key="k", model="gpt-test",
                                            limits=Limits(timeout_s=5, max_retries=0, max_input_tokens=6000,
                                                          max_output_tokens=100))
        keys = [("llm.openai", outcome) for outcome in ("ok", "throttled", "server_error")]
        with Counted(*keys) as counted:
            server.script(openai_api.CHAT_COMPLETIONS, openai_api.completion("Hotels cost 240 euros [1]."))
            composer.compose("How much is a hotel?", passages(("Travel", "Hotels cost 240 euros a night.")))
            server.fail(openai_api.CHAT_COMPLETIONS, status=429, retry_after=1)
            with pytest.raises(ComposerError):
                composer.compose("How much is a hotel?", passages(("Travel", "Hotels cost 240 euros a night.")))
            server.fail(openai_api.CHAT_COMPLETIONS, status=503)
            with pytest.raises(ComposerError):
                composer.compose("How much is a hotel?", passages(("Travel", "Hotels cost 240 euros a night.")))
        assert counted.delta == {("llm.openai", "ok"): 1, ("llm.openai", "throttled"): 1,
                                 ("llm.openai", "server_error"): 1}


def test_an_unreachable_service_is_counted_as_unreachable():
    client = MeteredClient("connector.example", timeout=2)
    with Counted(("connector.example", "unreachable")) as counted, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{free_port()}/")
    assert counted.delta == {("connector.example", "unreachable"): 1}


def test_every_connector_sends_through_a_metered_client():
    from pathlib import Path

    sources = Path(__file__).resolve().parents[1] / "connectors" / "sources"
    for module in sources.glob("*.py"):
        text = module.read_text()
        assert "httpx.Client(" not in text and "requests." not in text, f"{module.name}: an unmetered client"
    assert sum("MeteredClient(" in m.read_text() for m in sources.glob("*.py")) >= 5


@pytest.mark.django_db
def test_bot_framework_replies_and_tokens_are_counted(client, teams, isolated_index):
    keys = [("teams", "ok"), ("teams.token", "ok")]
    with Counted(*keys) as counted:
        response = send(client, teams, personal_message(teams, "alice", "When is the espresso machine descaled?"))
        assert response.status_code == 200
    assert teams.connector.activities(), "the bot replied"
    assert counted.delta[("teams", "ok")] == len(teams.connector.activities())
    assert counted.delta[("teams.token", "ok")] >= 1
