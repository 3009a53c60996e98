"""OpenTelemetry: a SpanExporter that writes finished spans to the traces stream through the
shipper (use it with the SDK's ``BatchSpanProcessor``).

One document per span (docs/DEVELOPING.md): ``@timestamp`` (start), ``trace.id``, ``span.id``,
``parent.id``, ``service.name`` / ``service.version`` (from the resource, else the configured
service), ``span.name``, ``span.kind``, ``span.start_unix_nano`` / ``span.end_unix_nano``,
``span.duration_ms``, ``span.status``, ``event.outcome``, ``span.links``, ``attributes.*`` and
``resource.attributes.*``. The event id is ``<trace id>-<span id>``: exporting a span twice
never stores it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from logsight.ecs import Service, format_timestamp_ns
from logsight.spans import attribute_fields as _attributes  # one mapping for every span path

Emit = Callable[[str, Mapping[str, Any]], bool]

_KIND = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUS = {StatusCode.OK: ("ok", "success"), StatusCode.ERROR: ("error", "failure"),
           StatusCode.UNSET: ("unset", "unknown")}


def span_to_doc(span: ReadableSpan, service: Service | None = None) -> dict[str, Any] | None:
    """The traces-stream document of one finished span (None for a span without context)."""
    ctx = span.context
    if ctx is None:
        return None
    trace_id = format(ctx.trace_id, "032x")
    span_id = format(ctx.span_id, "016x")
    start = int(span.start_time or 0)
    end = int(span.end_time or start)
    res = dict(span.resource.attributes) if span.resource is not None else {}
    svc = res.get("service.name")
    if (not svc or str(svc).startswith("unknown_service")) and service is not None:
        svc = service.name
    status, outcome = _STATUS.get(span.status.status_code, ("unset", "unknown"))
    doc: dict[str, Any] = {
        "@timestamp": format_timestamp_ns(start),
        "trace.id": trace_id,
        "span.id": span_id,
    }
    if span.parent is not None:
        doc["parent.id"] = format(span.parent.span_id, "016x")
    doc["service.name"] = str(svc or "unknown_service")
    version = res.get("service.version") or (service.version if service else None)
    if version:
        doc["service.version"] = str(version)
    if service is not None and service.environment:
        doc["service.environment"] = service.environment
    doc.update({
        "span.name": span.name,
        "span.kind": _KIND.get(span.kind, "internal"),
        "span.start_unix_nano": start,
        "span.end_unix_nano": end,
        "span.duration_ms": (end - start) / 1e6,
        "span.status": status,
        "event.outcome": outcome,
    })
    if span.status.description:
        doc["span.status_message"] = span.status.description
    for event in span.events:
        if event.name == "exception" and event.attributes:
            doc["error.type"] = str(event.attributes.get("exception.type", ""))
            doc["error.message"] = str(event.attributes.get("exception.message", ""))
            doc["error.stack_trace"] = str(event.attributes.get("exception.stacktrace", ""))
            break
    if span.links:
        doc["span.links"] = [
            {"trace.id": format(link.context.trace_id, "032x"),
             "span.id": format(link.context.span_id, "016x")}
            for link in span.links
        ]
    doc.update(_attributes("attributes.", span.attributes))
    doc.update(_attributes("resource.attributes.", res))
    doc["event.id"] = f"{trace_id}-{span_id}"
    return doc


class EcsSpanExporter(SpanExporter):
    """Writes finished spans to the traces stream via ``emit`` (the shipper's submit).

    ``export`` only queues (the shipper sends in the background), so it returns quickly;
    ``force_flush`` waits for delivery through ``flush``."""

    def __init__(
        self,
        emit: Emit,
        *,
        service: Service | None = None,
        flush: Callable[[float], bool] | None = None,
    ) -> None:
        self._emit = emit
        self._service = service
        self._flush = flush
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        for span in spans:
            try:
                doc = span_to_doc(span, self._service)
            except Exception:  # one odd span must not lose the batch
                continue
            if doc is not None:
                self._emit("traces", doc)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(timeout_millis / 1000) if self._flush else True
