"""Traces, opt-in: a Slack question's trace runs from the web request through the Celery task a real worker runs
to the search and the reply, every process exporting its spans over OTLP/HTTP to a collector (a stand-in speaking
the OTLP protobuf wire format)."""

from __future__ import annotations

import time

import pytest

from tests.bot.conftest import SECRET, index_with_a_slack_asker, mention, sender, slack  # noqa: F401 - fixtures
from tests.console.conftest import KITCHEN_QUESTION
from tests.standins.otlp import CollectorStandIn
from tests.workers import redis_celery, shared_database, start_worker, stop, worker_environment  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def collector(monkeypatch):
    with CollectorStandIn() as server:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
        yield server


@pytest.fixture
def traced_web(collector, monkeypatch):
    """This process traced as the web service would be with CITEWISE_OTEL_ENABLED=1; undone afterwards."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from core import tracing

    monkeypatch.setenv("OTEL_SERVICE_NAME", "citewise-web")
    tracing.configure()
    yield tracing
    tracing.flush()
    DjangoInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()


def test_a_slack_questions_trace_runs_from_the_web_request_through_the_worker_to_the_search(
        client, settings, tmp_path, shared_database, redis_celery, slack, sender, collector, traced_web):
    index_dir, index_name = index_with_a_slack_asker(settings, tmp_path, "test-trace")

    env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
    env.update(CITEWISE_OTEL_ENABLED="1", OTEL_SERVICE_NAME="citewise-worker", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
               OTEL_BSP_SCHEDULE_DELAY="200", SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN="xoxb-test",
               SLACK_API_BASE_URL=slack.base_url)
    log = tmp_path / "worker.log"
    worker = start_worker(env, redis_celery, log)
    try:
        response = sender.post_event(mention("UALICE", KITCHEN_QUESTION, ts="100.000001"))
        assert response.status_code == 200
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not slack.posts():
            time.sleep(0.2)
        assert slack.posts(), log.read_text()[-4000:]
        traced_web.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s.service == "citewise-worker" and s.name == "citewise.retrieve"
                                                      for s in collector.spans()):
            time.sleep(0.2)
    finally:
        stop(worker)

    spans = collector.spans()
    [web_request] = [s for s in spans if s.service == "citewise-web" and s.parent_span_id == ""
                     and "slack/events" in s.name]
    trace = [s for s in spans if s.trace_id == web_request.trace_id]
    by_id = {s.span_id: s for s in trace}
    [publish] = [s for s in trace if s.name.startswith("apply_async/bot.answer_slack_event")]
    [run] = [s for s in trace if s.name.startswith("run/bot.answer_slack_event")]
    assert publish.service == "citewise-web" and run.service == "citewise-worker"
    assert by_id[run.parent_span_id] == publish  # the context crossed the broker in the task's headers
    [retrieve] = [s for s in trace if s.name == "citewise.retrieve"]
    assert retrieve.service == "citewise-worker"
    ancestor = retrieve
    while ancestor.parent_span_id:
        ancestor = by_id[ancestor.parent_span_id]
    assert ancestor == web_request  # one trace: web request → task → search
