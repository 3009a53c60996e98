"""One span mapping: the traces-stream document of a span, whatever shape it arrived in.

Span files in the OTel-JSON shape (``trace_id``, ``span_id``, ``parent_span_id``,
``start_time_unix_nano``, ``status.code``, ...; the shapes ``logsight traces bottlenecks
--input`` reads, :data:`logsight.sources.traces.FIELD_ALIASES`) are read by the same code the
analyses use (:func:`logsight.sources.traces.spans_frame`) and turned into the document the
OTel exporter writes (:func:`span_document`: ``trace.id``, ``span.id``, ``parent.id``,
``span.start_unix_nano``, ...; ``event.id`` = ``<trace id>-<span id>``, so a span both exported
and ingested from a file is stored once). ``logsight ingest --kind traces`` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from logsight.ecs import format_timestamp_ns

_OUTCOME = {"ok": "success", "error": "failure", "unset": "unknown"}
# keys that say a record is already a traces-stream document (ECS-shaped)
_ECS_KEYS = ("trace.id", "span.id", "span.start_unix_nano")


def _value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (tuple, list)):
        return [_value(x) for x in v]
    return v


def attribute_fields(prefix: str, attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``prefix + key`` for each attribute. A key that is also the dotted prefix of another
    (``db.system`` beside ``db.system.name``) gets a ``_value`` suffix, since an indexed field
    cannot be both a value and an object."""
    if not attrs:
        return {}
    keys = list(attrs)
    parents = {k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)}
    out: dict[str, Any] = {}
    for k in keys:
        name = k + "_value" if k in parents else k
        out[prefix + name] = _value(attrs[k])
    return out


def span_document(*, trace_id: str, span_id: str, parent_id: str | None, service: str,
                  name: str, start_ns: int, end_ns: int, status: str = "unset",
                  kind: str = "internal", version: str | None = None,
                  environment: str | None = None) -> dict[str, Any]:
    """The core of every traces-stream document (dotted keys, in the exporter's order): the
    exporter and the OTLP receiver (:func:`logsight.adapters.otel.span_document`) add their
    extras to it, span files and ingest use it as it is."""
    doc: dict[str, Any] = {
        "@timestamp": format_timestamp_ns(start_ns),
        "trace.id": trace_id,
        "span.id": span_id,
    }
    if parent_id:
        doc["parent.id"] = parent_id
    doc["service.name"] = service
    if version:
        doc["service.version"] = version
    if environment:
        doc["service.environment"] = environment
    doc.update({
        "span.name": name,
        "span.kind": kind,
        "span.start_unix_nano": int(start_ns),
        "span.end_unix_nano": int(end_ns),
        "span.duration_ms": (int(end_ns) - int(start_ns)) / 1e6,
        "span.status": status,
        "event.outcome": _OUTCOME.get(status, "unknown"),
        "event.id": f"{trace_id}-{span_id}",
    })
    return doc


def is_ecs_span(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is already a traces-stream document (dotted or nested)."""
    if any(k in record for k in _ECS_KEYS):
        return True
    trace = record.get("trace")
    return isinstance(trace, Mapping) and "id" in trace


def span_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The traces-stream document for one span record of any accepted shape (ValueError
    saying what is missing otherwise). Attributes (``attributes``, ``resource.attributes``
    or OTLP's ``resource``) are kept under ``attributes.*`` / ``resource.attributes.*``."""
    from logsight.sources.traces import spans_frame

    frame = spans_frame([record])
    row = frame.iloc[0]
    parent = row["parent_id"]
    doc = span_document(
        trace_id=str(row["trace_id"]), span_id=str(row["span_id"]),
        parent_id=None if parent is None or parent != parent or parent == "" else str(parent),
        service=str(row["service"]), name=str(row["name"]), start_ns=int(row["start_ns"]),
        end_ns=int(row["end_ns"]), status=str(row["status"]), kind=str(row["kind"]),
        version=str(row["version"]) or None)
    attrs = record.get("attributes")
    if isinstance(attrs, Mapping):
        doc.update(attribute_fields("attributes.", attrs))
    resource = record.get("resource")
    res_attrs = resource.get("attributes") if isinstance(resource, Mapping) else None
    if isinstance(res_attrs, Mapping):
        doc.update(attribute_fields("resource.attributes.", res_attrs))
    return doc
