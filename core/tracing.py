"""OpenTelemetry traces, opt-in (CITEWISE_OTEL_ENABLED=1): each web request, the Celery tasks it queues (the trace
context travels in the task's headers), every pipeline stage (retrieval.metrics.timed) and every Elasticsearch call
(the client's own instrumentation) become spans of one trace, exported over OTLP/HTTP.

The exporter reads the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME (default "citewise"; give web and worker names of their own).
Off, nothing is configured and `span()` is the API's no-op.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

_lock = threading.Lock()
# A proxy: it follows the provider configure() installs, whenever that happens.
_tracer = trace.get_tracer("citewise")
_installed: dict[str, Any] = {}  # "provider": the TracerProvider, once configured


def configure(service_name: str | None = None) -> None:
    """Install the tracer provider and instrument Django and Celery; once per process."""
    with _lock:
        if "provider" in _installed:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "citewise"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        # Batched, in a thread of its own: a slow or absent collector never delays a request.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument(tracer_provider=provider)
        CeleryInstrumentor().instrument(tracer_provider=provider)
        _installed["provider"] = provider


def flush(timeout_s: float = 10.0) -> bool:
    """Export the spans finished so far (a task's end, a test)."""
    provider = _installed.get("provider")
    return bool(provider.force_flush(int(timeout_s * 1000))) if provider is not None else True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    with _tracer.start_as_current_span(name, attributes=attributes or None):
        yield
