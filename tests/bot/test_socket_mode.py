"""The Slack Socket Mode service (`manage.py slack_socket_mode`, docker-compose's `slack-socket-mode`) as a process:
it opens the WebSocket apps.connections.open hands out, acknowledges an event envelope, answers it with the asker's
permissions, and keeps its heartbeat fresh only while connected, which is what its container health check reads."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from console import healthcheck
from tests.bot.conftest import SECRET, index_with_a_slack_asker, mention, slack  # noqa: F401 - fixture
from tests.bot.test_slack import blocks_text
from tests.console.conftest import KITCHEN_QUESTION
from tests.standins.slack_socket_mode import SocketModeStandIn
from tests.workers import ROOT, shared_database, stop, worker_environment  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def wait_until(predicate, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_the_socket_mode_service_answers_an_envelope_and_its_heartbeat_follows_the_connection(
        settings, tmp_path, shared_database, slack):
    index_dir, index_name = index_with_a_slack_asker(settings, tmp_path, "test-socket")

    socket = SocketModeStandIn().start()
    slack.socket_mode_url = socket.url
    env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name)  # no broker: the service answers in-process, as the embedded default does
    env.update(SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test",
               SLACK_API_BASE_URL=slack.base_url)
    heartbeat, log = tmp_path / "heartbeat", tmp_path / "socket-mode.log"
    service = subprocess.Popen([sys.executable, "manage.py", "slack_socket_mode", "--heartbeat-file", str(heartbeat),
                                "--heartbeat-interval", "0.5"], cwd=ROOT, env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        assert socket.wait_connected(120), log.read_text()[-4000:]
        envelope = socket.push_event(mention("UALICE", KITCHEN_QUESTION, ts="100.000001"))
        wait_until(lambda: envelope in socket.acks, 60, "the envelope's acknowledgement", log)
        wait_until(slack.posts, 120, "the answer", log)
        [post] = slack.posts()
        assert "Friday" in blocks_text(post["body"]["blocks"]) and post["body"]["user"] == "UALICE"
        wait_until(heartbeat.exists, 10, "the first heartbeat", log)
        assert healthcheck.main(["slack-socket-mode", "--heartbeat-file", str(heartbeat)]) == 0

        socket.drop()  # Slack goes away: the client cannot reconnect, the heartbeat stops
        time.sleep(3)
        with pytest.raises(healthcheck.Unhealthy, match="not connected"):
            healthcheck.check_heartbeat(heartbeat, stale_after=2)
    finally:
        stop(service)
        socket.stop()
