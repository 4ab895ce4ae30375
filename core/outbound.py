"""Metrics for every call Citewise makes to a service outside it: Slack, Teams, LLM and reranking providers, and
the connectors' sources, each labelled by service and outcome.

Outcomes: ok (2xx/3xx), throttled (429), client_error (other 4xx), server_error (5xx), timeout, unreachable
(connection refused, reset, DNS), error (anything else). Retries are separate calls: a 429 followed by a success
counts one throttled and one ok, which is what a provider's own dashboard shows.

The clients' own plumbing carries the measurement: an httpx client (the connectors, and the OpenAI and Cohere SDKs,
which take one), a requests response hook (Bot Framework's connector client), and `observe()`
around calls made any other way (slack_sdk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

OUTBOUND_CALLS = Counter("citewise_outbound_calls_total", "Calls to services outside Citewise, by outcome",
                         ["service", "outcome"])
OUTBOUND_SECONDS = Histogram("citewise_outbound_call_seconds", "Time a call to a service outside Citewise took",
                             ["service"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


def outcome_of_status(status: int) -> str:
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


def outcome_of_error(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return "unreachable"
    name = type(exc).__name__.lower()  # requests', urllib3's and slack_sdk's own error classes
    if "timeout" in name:
        return "timeout"
    if "connection" in name or isinstance(exc, OSError):
        return "unreachable"
    return "error"


def record(service: str, outcome: str, seconds: float) -> None:
    OUTBOUND_CALLS.labels(service, outcome).inc()
    OUTBOUND_SECONDS.labels(service).observe(seconds)


@contextmanager
def observe(service: str, status_of: Callable[[Any], int | None] = lambda _: None) -> Iterator[None]:
    """Count the call made inside the block: an exception by its kind (and `status_of(exc)`, when the client's
    error carries an HTTP status), else ok."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        status = status_of(exc)
        # An error with a 2xx status is the API's own refusal (Slack's ok=false): an error, not a success.
        record(service, outcome_of_status(status) if status and status >= 400 else outcome_of_error(exc),
               time.perf_counter() - started)
        raise
    record(service, "ok", time.perf_counter() - started)


class MeteredClient(httpx.Client):
    """An httpx client that counts each request it sends: the response's status, or the error. (A client, not a
    transport: a custom transport would turn off httpx's proxies from the environment.)"""

    def __init__(self, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = super().send(request, **kwargs)
        except Exception as exc:
            record(self.service, outcome_of_error(exc), time.perf_counter() - started)
            raise
        record(self.service, outcome_of_status(response.status_code), time.perf_counter() - started)
        return response


def requests_hook(service: str) -> Callable[..., Any]:
    """A requests response hook counting each response (transport errors raise before any hook runs: callers
    wrap those in `observe`)."""
    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        record(service, outcome_of_status(response.status_code), response.elapsed.total_seconds())
        return response

    return hook
