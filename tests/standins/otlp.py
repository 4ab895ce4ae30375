"""A stand-in for an OpenTelemetry collector's OTLP/HTTP trace receiver: POST /v1/traces with a protobuf
ExportTraceServiceRequest (gzip or not), answered with an empty ExportTraceServiceResponse. The spans received are
kept, decoded, for a test to read."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.standins.base import RecordedRequest, Reply, StandInServer

TRACES = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class CollectorStandIn(StandInServer):
    def __init__(self) -> None:
        super().__init__()
        self._spans: list[ReceivedSpan] = []
        self._spans_lock = threading.Lock()

    def default(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != TRACES:
            return Reply(404, {"error": "only POST /v1/traces"})
        if request.headers.get("content-type") != "application/x-protobuf":
            return Reply(415, {"error": "OTLP/HTTP protobuf only"})
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in export.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(service, span.name, span.trace_id.hex(), span.span_id.hex(),
                                                 span.parent_span_id.hex()))
        with self._spans_lock:
            self._spans.extend(received)
        return Reply(200, ExportTraceServiceResponse().SerializeToString(),
                     headers={"Content-Type": "application/x-protobuf"})

    def spans(self) -> list[ReceivedSpan]:
        with self._spans_lock:
            return list(self._spans)
