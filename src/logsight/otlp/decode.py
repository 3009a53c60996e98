"""OTLP/HTTP payloads (protobuf or JSON, maybe gzip) into stream documents.

Decoding uses the official ``opentelemetry-proto`` messages. The OTLP JSON encoding differs
from protobuf's canonical JSON in one way that matters: trace and span ids are hex strings,
not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding); they are
turned into base64 before ``json_format`` parses the payload, so both encodings decode into
the same message. Enum values may be integers or names; ``json_format`` takes both.

The documents are the ones our own exporter writes: spans through
:func:`logsight.adapters.otel.span_document`, resource attributes through
:func:`logsight.adapters.otel.resource_fields` (one mapping). Every document has a stable
``event.id`` (spans ``<trace id>-<span id>``; log records and data points a digest of their
resource, scope and bytes), so an SDK's retry of an export stores nothing twice.

A payload that cannot be decoded raises :class:`BadPayload` (the receiver answers 400); a
record that decodes but cannot become a document (a span id of the wrong length, ...) is a
:class:`Rejected` record for the dead-letter index, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from logsight import names
from logsight.adapters.otel import attribute_fields, resource_fields, span_document
from logsight.ecs import format_timestamp_ns

# OTLP signal -> (request message, stream kind)
SIGNALS: dict[str, tuple[type[Message], str]] = {
    "traces": (ExportTraceServiceRequest, names.TRACES),
    "logs": (ExportLogsServiceRequest, names.LOGS),
    "metrics": (ExportMetricsServiceRequest, names.METRICS),
}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_HEX_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                          "parent_span_id"})
_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}
# OTLP severity numbers in blocks of four (TRACE 1-4, DEBUG 5-8, ... FATAL 21-24)
_SEVERITY = ("trace", "debug", "info", "warn", "error", "fatal")


class BadPayload(ValueError):
    """The request body is not an OTLP export request of the signal (400, with why)."""


class UnsupportedMedia(BadPayload):
    """Neither protobuf nor JSON (415)."""


@dataclass(frozen=True)
class Rejected:
    """A record that decoded but cannot be stored in its stream: dead-lettered with why."""

    reason: str
    original: dict[str, Any]


@dataclass
class Decoded:
    """What one export request holds: documents for ``kind``'s stream and rejected records."""

    kind: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def decompress(body: bytes, encoding: str | None, *, max_bytes: int) -> bytes:
    """The body without its ``Content-Encoding`` (gzip, deflate or none), at most
    ``max_bytes`` once inflated (a small gzip bomb must not take the process's memory)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise BadPayload(f"unsupported Content-Encoding {encoding!r} (gzip, deflate, identity)")
    wbits = 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise BadPayload(f"body is not valid {enc}: {e}") from None
    if len(out) > max_bytes:
        raise TooLarge(max_bytes)
    if not d.eof:
        raise BadPayload(f"body is not valid {enc}: truncated")
    return out


class TooLarge(ValueError):
    """The (inflated) body is larger than the receiver takes (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than the limit of {limit} bytes")
        self.limit = limit


def _hex_to_b64(value: Any) -> Any:
    if isinstance(value, str) and value:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise BadPayload(f"id {value[:40]!r} is not hex (OTLP/JSON ids are hex "
                             "strings)") from None
    return value


def _ids_to_b64(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _hex_to_b64(v) if k in _HEX_ID_KEYS else _ids_to_b64(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_ids_to_b64(x) for x in node]
    return node


def parse(signal: str, body: bytes, content_type: str | None) -> Message:
    """The export request message of ``signal`` from a protobuf or JSON body."""
    message_type, _ = SIGNALS[signal]
    ctype = (content_type or PROTOBUF).split(";")[0].strip().lower()
    msg = message_type()
    if ctype == PROTOBUF:
        try:
            msg.ParseFromString(body)
        except DecodeError as e:
            raise BadPayload(f"body is not a protobuf {message_type.__name__}: {e}") from None
        return msg
    if ctype == JSON:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadPayload(f"body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadPayload(f"body must be a JSON object ({message_type.__name__})")
        try:
            json_format.ParseDict(_ids_to_b64(data), msg, ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise BadPayload(f"body is not an OTLP/JSON {message_type.__name__}: {e}") from None
        return msg
    raise UnsupportedMedia(f"unsupported Content-Type {content_type!r} ({PROTOBUF} or {JSON})")


def any_value(v: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue`` (bytes as base64 text)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _hex(raw: bytes, size: int, what: str) -> str:
    if len(raw) != size:
        raise ValueError(f"{what} has {len(raw)} bytes, not {size}")
    if not any(raw):
        raise ValueError(f"{what} is all zeros (invalid)")
    return raw.hex()


def _original(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def digest(*parts: bytes) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()[:32]


def decode(signal: str, msg: Message, *, now_ns: Callable[[], int]) -> Decoded:
    """The documents (and rejected records) of an export request of ``signal``;
    ``now_ns`` stamps log records that carry no time at all."""
    _, kind = SIGNALS[signal]
    out = Decoded(kind)
    if signal == "traces":
        _spans(msg, out)
    elif signal == "logs":
        _logs(msg, out, now_ns)
    else:
        _metrics(msg, out)
    return out


def _spans(msg: Any, out: Decoded) -> None:
    for rs in msg.resource_spans:
        res = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                try:
                    trace_id = _hex(sp.trace_id, 16, "trace_id")
                    span_id = _hex(sp.span_id, 8, "span_id")
                    parent = _hex(sp.parent_span_id, 8, "parent_span_id") \
                        if sp.parent_span_id else None
                    start, end = int(sp.start_time_unix_nano), int(sp.end_time_unix_nano)
                    if start <= 0:
                        raise ValueError("start_time_unix_nano is missing")
                    if end < start:
                        raise ValueError("end_time_unix_nano is before start_time_unix_nano")
                    doc = span_document(
                        trace_id=trace_id, span_id=span_id, parent_id=parent,
                        name=sp.name, kind=_KINDS.get(sp.kind, "internal"),
                        start_ns=start, end_ns=end,
                        status=_STATUS.get(sp.status.code, "unset"),
                        status_message=sp.status.message or None,
                        attributes=attributes(sp.attributes), resource=res,
                        events=[(e.name, attributes(e.attributes)) for e in sp.events],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in sp.links],
                        scope=ss.scope.name or None,
                    )
                except ValueError as e:
                    out.rejected.append(Rejected(f"span: {e}", _original(sp)))
                    continue
                out.documents.append(doc)


def _level(number: int, text: str) -> str:
    if text:
        return text.strip().lower()
    if 1 <= number <= 24:
        return _SEVERITY[(number - 1) // 4]
    return "info"


def _logs(msg: Any, out: Decoded, now_ns: Callable[[], int]) -> None:
    for rl in msg.resource_logs:
        res = attributes(rl.resource.attributes)
        res_bytes = rl.resource.SerializeToString(deterministic=True)
        for sl in rl.scope_logs:
            scope = sl.scope.SerializeToString(deterministic=True)
            for rec in sl.log_records:
                try:
                    ts = int(rec.time_unix_nano or rec.observed_time_unix_nano or now_ns())
                    body = any_value(rec.body)
                    message = body if isinstance(body, str) else (
                        "" if body is None else json.dumps(body, default=str))
                    doc: dict[str, Any] = {
                        "@timestamp": format_timestamp_ns(ts),
                        "log.level": _level(int(rec.severity_number), rec.severity_text),
                        "message": message,
                    }
                    if sl.scope.name:
                        doc["log.logger"] = sl.scope.name
                    doc.update(resource_fields(res))
                    if rec.trace_id:
                        doc["trace.id"] = _hex(rec.trace_id, 16, "trace_id")
                    if rec.span_id:
                        doc["span.id"] = _hex(rec.span_id, 8, "span_id")
                    if rec.event_name:
                        doc["event.action"] = rec.event_name
                    doc.update(attribute_fields(attributes(rec.attributes)))
                except ValueError as e:
                    out.rejected.append(Rejected(f"log record: {e}", _original(rec)))
                    continue
                doc["event.id"] = digest(res_bytes, scope,
                                          rec.SerializeToString(deterministic=True))
                out.documents.append(doc)


def _metrics(msg: Any, out: Decoded) -> None:
    for rm in msg.resource_metrics:
        res = attributes(rm.resource.attributes)
        res_fields = resource_fields(res)
        res_bytes = rm.resource.SerializeToString(deterministic=True)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                which = metric.WhichOneof("data")
                if which is None:
                    out.rejected.append(Rejected(f"metric {metric.name!r}: no data",
                                                 _original(metric)))
                    continue
                data = getattr(metric, which)
                for point in data.data_points:
                    doc = _point(metric, which, point)
                    if doc is None:
                        out.rejected.append(Rejected(
                            f"metric {metric.name!r}: data point without time_unix_nano",
                            _original(point)))
                        continue
                    doc.update(res_fields)
                    if sm.scope.name:
                        doc["otel.scope.name"] = sm.scope.name
                    doc["event.id"] = digest(res_bytes, metric.name.encode(),
                                              point.SerializeToString(deterministic=True))
                    out.documents.append(doc)


def _point(metric: Any, which: str, point: Any) -> dict[str, Any] | None:
    ts = int(point.time_unix_nano)
    if ts <= 0:
        return None
    doc: dict[str, Any] = {
        "@timestamp": format_timestamp_ns(ts),
        "metric.name": metric.name,
        "metric.type": which,
    }
    if metric.unit:
        doc["metric.unit"] = metric.unit
    if which in ("gauge", "sum"):
        v = point.WhichOneof("value")
        doc["metric.value"] = float(getattr(point, v)) if v else None
        if which == "sum":
            doc["metric.monotonic"] = bool(metric.sum.is_monotonic)
    else:  # histogram, exponential_histogram, summary
        doc["metric.count"] = int(point.count)
        doc["metric.sum"] = float(point.sum)
        if which == "histogram" and point.count:
            doc["metric.value"] = float(point.sum) / int(point.count)  # the mean
    doc.update(attribute_fields(attributes(point.attributes)))
    return doc


def response(signal: str, rejected: int, message: str = "") -> Message:
    """The export response: empty when everything was taken, else OTLP's partial success."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    resp: Any
    if signal == "traces":
        resp = trace_service_pb2.ExportTraceServiceResponse()
        field_name = "rejected_spans"
    elif signal == "logs":
        resp = logs_service_pb2.ExportLogsServiceResponse()
        field_name = "rejected_log_records"
    else:
        resp = metrics_service_pb2.ExportMetricsServiceResponse()
        field_name = "rejected_data_points"
    if rejected:
        setattr(resp.partial_success, field_name, rejected)
        resp.partial_success.error_message = message
    return resp


def encode_response(msg: Message, content_type: str) -> bytes:
    """The response body in the request's encoding."""
    if content_type == JSON:
        return json.dumps(json_format.MessageToDict(msg)).encode()
    return msg.SerializeToString()
