"""OpenTelemetry: a SpanExporter that writes finished spans to the traces stream through the
shipper (use it with the SDK's ``BatchSpanProcessor``).

One document per span (docs/DEVELOPING.md): ``@timestamp`` (start), ``trace.id``, ``span.id``,
``parent.id``, ``service.name`` / ``service.version`` (from the resource, else the configured
service), ``span.name``, ``span.kind``, ``span.start_unix_nano`` / ``span.end_unix_nano``,
``span.duration_ms``, ``span.status``, ``event.outcome``, ``span.links``, ``otel.scope.name``
(the instrumentation scope), ``attributes.*`` and ``resource.attributes.*``. The OTLP receiver
maps spans with the same :func:`span_document` and :func:`resource_fields`. The event id is ``<trace id>-<span id>``: exporting a span twice
never stores it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from logsight import spans
from logsight.ecs import Service
from logsight.spans import attribute_fields as _attributes  # one attribute mapping, every span path

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


def resource_fields(resource: Mapping[str, Any] | None,
                    service: Service | None = None) -> dict[str, Any]:
    """The stream fields a resource gives every document it emits, for spans, logs and
    metrics alike and for every way they arrive (this exporter, the OTLP receiver):
    ``service.name`` (the resource's, else the configured service's, else
    ``unknown_service``), ``service.version``, ``service.environment`` (the configured one,
    else the resource's ``deployment.environment[.name]``) and ``resource.attributes.*``."""
    res = dict(resource or {})
    svc = res.get("service.name")
    if (not svc or str(svc).startswith("unknown_service")) and service is not None:
        svc = service.name
    out: dict[str, Any] = {"service.name": str(svc or "unknown_service")}
    version = res.get("service.version") or (service.version if service else None)
    if version:
        out["service.version"] = str(version)
    env = (service.environment if service is not None else None) or res.get(
        "deployment.environment.name") or res.get("deployment.environment")
    if env:
        out["service.environment"] = str(env)
    out.update(_attributes("resource.attributes.", res))
    return out


def attribute_fields(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attributes.*`` of a span, log record or data point (see :func:`_attributes`)."""
    return _attributes("attributes.", attrs)


def span_document(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status: str,
    status_message: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None,
    events: Sequence[tuple[str, Mapping[str, Any] | None]] = (),
    links: Sequence[tuple[str, str]] = (),
    scope: str | None = None,
    service: Service | None = None,
) -> dict[str, Any]:
    """The traces-stream document of one span from plain values (hex ids, ``kind`` one of
    server|client|internal|producer|consumer, ``status`` ok|error|unset): the one span mapping
    of the exporter and the OTLP receiver."""
    res = resource_fields(resource, service)
    doc = spans.span_document(
        trace_id=trace_id, span_id=span_id, parent_id=parent_id,
        service=res.pop("service.name"), version=res.pop("service.version", None),
        environment=res.pop("service.environment", None), name=name, kind=kind,
        start_ns=start_ns, end_ns=end_ns, status=status)
    event_id = doc.pop("event.id")  # last, after the extras, as the exporter always wrote it
    if status_message:
        doc["span.status_message"] = status_message
    for event_name, event_attrs in events:
        if event_name == "exception" and event_attrs:
            doc["error.type"] = str(event_attrs.get("exception.type", ""))
            doc["error.message"] = str(event_attrs.get("exception.message", ""))
            doc["error.stack_trace"] = str(event_attrs.get("exception.stacktrace", ""))
            break
    if links:
        doc["span.links"] = [{"trace.id": t, "span.id": s} for t, s in links]
    if scope:
        doc["otel.scope.name"] = scope
    doc.update(attribute_fields(attributes))
    doc.update(res)
    doc["event.id"] = event_id
    return doc


def span_to_doc(span: ReadableSpan, service: Service | None = None) -> dict[str, Any] | None:
    """The traces-stream document of one finished span (None for a span without context)."""
    ctx = span.context
    if ctx is None:
        return None
    start = int(span.start_time or 0)
    status, _ = _STATUS.get(span.status.status_code, ("unset", "unknown"))
    return span_document(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=format(span.parent.span_id, "016x") if span.parent is not None else None,
        name=span.name,
        kind=_KIND.get(span.kind, "internal"),
        start_ns=start,
        end_ns=int(span.end_time or start),
        status=status,
        status_message=span.status.description,
        attributes=span.attributes,
        resource=span.resource.attributes if span.resource is not None else None,
        events=[(e.name, e.attributes) for e in span.events],
        links=[(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
               for link in span.links],
        scope=span.instrumentation_scope.name if span.instrumentation_scope else None,
        service=service,
    )


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
