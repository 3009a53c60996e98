"""Explicit mappings for every stream and index logsight writes.

Fields we analyse are mapped explicitly; anything else an app adds is kept in ``_source`` and
mapped by dynamic templates (strings as keyword, numbers as double) so a first document can never
turn a number into text or the other way round for the rest of an index's life.
"""

from __future__ import annotations

from typing import Any

KW = {"type": "keyword", "ignore_above": 1024}
DATE = {"type": "date"}
DOUBLE = {"type": "double"}
LONG = {"type": "long"}
BOOL = {"type": "boolean"}
TEXT = {"type": "text"}
UNINDEXED = {"type": "keyword", "index": False, "doc_values": False}
OPAQUE = {"type": "object", "enabled": False}

DYNAMIC_TEMPLATES: list[dict[str, Any]] = [
    {"labels": {"path_match": "labels.*", "mapping": KW}},
    {"strings_as_keyword": {"match_mapping_type": "string", "mapping": KW}},
    {"integers_as_double": {"match_mapping_type": "long", "mapping": DOUBLE}},
    {"floats_as_double": {"match_mapping_type": "double", "mapping": DOUBLE}},
]


def _tree(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"log.level": {...}}`` -> nested ``properties``."""
    root: dict[str, Any] = {}
    for path, mapping in flat.items():
        node = root
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = dict(mapping)
    return root


ECS_BASE: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "message": TEXT,
    "service.name": KW,
    "service.version": KW,
    "service.environment": KW,
    "service.node.name": KW,
    "host.hostname": KW,
    "host.name": KW,
    "event.id": KW,
    "event.kind": KW,
    "event.dataset": KW,
    "event.outcome": KW,
    "event.ingested": DATE,
    "event.original": UNINDEXED,
    "trace.id": KW,
    "span.id": KW,
    "transaction.id": KW,
    "ecs.version": KW,
    "data_stream.type": KW,
    "data_stream.dataset": KW,
    "data_stream.namespace": KW,
}

LOGS: dict[str, dict[str, Any]] = {
    **ECS_BASE,
    "log.level": KW,
    "log.logger": KW,
    "log.origin.file.name": KW,
    "log.origin.file.line": LONG,
    "log.origin.function": KW,
    "process.pid": LONG,
    "process.thread.name": KW,
    "error.type": KW,
    "error.message": TEXT,
    "error.stack_trace": {"type": "text", "index": False},
    "logsight.template_id": KW,
    "logsight.template": KW,
    "logsight.truncated": BOOL,
}

TRACES: dict[str, dict[str, Any]] = {
    **ECS_BASE,
    "parent.id": KW,
    "span.name": KW,
    "span.kind": KW,
    "span.start_unix_nano": LONG,
    "span.end_unix_nano": LONG,
    "span.duration_ms": DOUBLE,
    "span.status": KW,
    "span.status_message": TEXT,
    "span.links": OPAQUE,
    "span.events": OPAQUE,
    "scope.name": KW,
}

MLEVENTS: dict[str, dict[str, Any]] = {
    **ECS_BASE,
    "ml.event_type": KW,
    "ml.model.name": KW,
    "ml.model.version": KW,
    "ml.request_id": KW,
    "ml.features": {"type": "object", "dynamic": True},
    "ml.prediction": KW,
    "ml.prediction_value": DOUBLE,
    "ml.score": DOUBLE,
    "ml.probabilities": {"type": "object", "dynamic": True},
    "ml.latency_ms": DOUBLE,
    "ml.label": KW,
    "ml.label_value": DOUBLE,
    "ml.kpi.name": KW,
    "ml.kpi.value": DOUBLE,
}

METRICS: dict[str, dict[str, Any]] = {
    **ECS_BASE,
    "system.cpu.pct": DOUBLE,
    "system.memory.used_bytes": DOUBLE,
    "system.memory.pct": DOUBLE,
    "process.cpu.pct": DOUBLE,
    "process.memory.rss_bytes": DOUBLE,
    "system.network.in_bytes": DOUBLE,
    "system.network.out_bytes": DOUBLE,
    "system.disk.read_bytes": DOUBLE,
    "system.disk.write_bytes": DOUBLE,
    "gpu.utilization_pct": DOUBLE,
    "gpu.memory.used_bytes": DOUBLE,
    "gpu.memory.total_bytes": DOUBLE,
    # resources per process / container / pod (logsight.adapters.metrics)
    "metricset.period": LONG,
    "process.pid": LONG,
    "process.io.read_bytes": DOUBLE,
    "process.io.write_bytes": DOUBLE,
    "system.cpu.cores": DOUBLE,
    "system.network.scope": KW,
    "system.disk.scope": KW,
    "container.id": KW,
    "container.name": KW,
    "container.cpu.pct": DOUBLE,
    "container.cpu.limit_cores": DOUBLE,
    "container.cpu.request_cores": DOUBLE,
    "container.cpu.throttled_ratio": DOUBLE,
    "container.cpu.throttled_ms": DOUBLE,
    "container.memory.usage_bytes": DOUBLE,
    "container.memory.peak_bytes": DOUBLE,
    "container.memory.limit_bytes": DOUBLE,
    "container.memory.request_bytes": DOUBLE,
    "container.memory.pct": DOUBLE,
    "container.disk.read.bytes": DOUBLE,
    "container.disk.write.bytes": DOUBLE,
    "orchestrator.type": KW,
    "orchestrator.namespace": KW,
    "orchestrator.cluster.name": KW,
    "orchestrator.resource.name": KW,
    "orchestrator.resource.type": KW,
    "orchestrator.resource.id": KW,
    "gpu.count": DOUBLE,
    "gpu.model": KW,
    "gpu.power.watts": DOUBLE,
    "gpu.devices": OPAQUE,
}

FINDINGS: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "id": KW,
    "kind": KW,
    "title": TEXT,
    "summary": TEXT,
    "severity": KW,
    "score": DOUBLE,
    "confidence": DOUBLE,
    "service": KW,
    "subject": KW,
    "operation": KW,
    "feature": KW,
    "model": KW,
    "model_version": KW,
    "window_start": DATE,
    "window_end": DATE,
    "detected_at": DATE,
    "namespace": KW,
    "sample_ids": KW,
    "evidence": OPAQUE,
    "evidence_text": TEXT,
}

DEADLETTER: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "original": OPAQUE,
    "original_text": UNINDEXED,
    "failure.message": TEXT,
    "failure.processor": KW,
    "failure.tag": KW,
    "failure.pipeline": KW,
    "failure.stream": KW,
    "failure.stage": KW,
}

ALERTS: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "rule.id": KW,
    "rule.name": KW,
    "rule.severity": KW,
    "rule.runbook": KW,
    "state": KW,
    "value": DOUBLE,
    "threshold": DOUBLE,
    "matched": OPAQUE,
    "message": TEXT,
    "throttled": BOOL,
    "delivery": KW,
    "actions": KW,
    "group": KW,
    "group_field": KW,
    "op": KW,
    "namespace": KW,
    "index": KW,
    "source": KW,
}

CRITICAL_PATH: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "window_start": DATE,
    "window_end": DATE,
    "namespace": KW,
    "entry_point": KW,
    "entry_service": KW,
    "service.name": KW,
    "service.version": KW,
    "span.name": KW,
    "traces": LONG,
    "count": LONG,
    "on_critical_path": LONG,
    "on_critical_path_ratio": DOUBLE,
    "critical_path_ms": DOUBLE,
    "critical_path_share": DOUBLE,
    "self_time_p50_ms": DOUBLE,
    "self_time_p95_ms": DOUBLE,
    "latency_p50_ms": DOUBLE,
    "latency_p95_ms": DOUBLE,
    "latency_p99_ms": DOUBLE,
    "error_rate": DOUBLE,
    "rank": LONG,
    # per-trace, per-operation documents of the trace-completion job (doc_kind
    # "trace_operation") and its coverage record (doc_kind "coverage")
    "doc_kind": KW,
    "trace.id": KW,
    "root_service": KW,
    "root_operation": KW,
    "root_orphan": BOOL,
    "trace_duration_ms": DOUBLE,
    "span_count": LONG,
    "errors": LONG,
    "error": BOOL,
    "self_ms": DOUBLE,
    "self_ms_values": DOUBLE,
    "duration_ms_values": DOUBLE,
    "is_root_operation": BOOL,
    "trace_spans": LONG,
    "trace_orphans": LONG,
    "trace_clipped": LONG,
    "covered_from": DATE,
    "covered_until": DATE,
}

DEPENDENCIES: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "window_start": DATE,
    "window_end": DATE,
    "namespace": KW,
    "source.service": KW,
    "target.service": KW,
    "via": KW,
    "calls": LONG,
    "rate_per_s": DOUBLE,
    "errors": LONG,
    "error_rate": DOUBLE,
    "latency_p50_ms": DOUBLE,
    "latency_p95_ms": DOUBLE,
}

PROFILES: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "profile_id": KW,
    "name": KW,
    "namespace": KW,
    "source": KW,
    "features": KW,
    "fields": OPAQUE,
    "model": KW,
    "model_version": KW,
    "feature": KW,
    "kind": KW,
    "type": KW,
    "window_start": DATE,
    "window_end": DATE,
    "count": LONG,
    "profile": OPAQUE,
}

LEASES: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "task": KW,
    "window": KW,
    "owner": KW,
    "expires_at": DATE,
    "state": KW,
}

META: dict[str, dict[str, Any]] = {
    "@timestamp": DATE,
    "asset": KW,
    "version": LONG,
    "hash": KW,
}


def mapping(fields: dict[str, dict[str, Any]], *, dynamic: bool | str = True) -> dict[str, Any]:
    return {
        "dynamic": dynamic,
        "dynamic_templates": DYNAMIC_TEMPLATES,
        "properties": _tree(fields),
    }


def flat_fields(fields: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Dotted field name -> type, for checks such as the Kibana objects' tests."""
    return {k: v.get("type", "object") for k, v in fields.items()}


COST: dict[str, dict[str, Any]] = {  # logsight.writer.cost_documents
    "@timestamp": DATE,
    "window_start": DATE,
    "window_end": DATE,
    "namespace": KW,
    "service": KW,
    "team": KW,
    "model": KW,
    "model_version": KW,
    "stage": KW,
    "capacity": KW,
    "instance_type": KW,
    "currency": KW,
    "hours": DOUBLE,
    "cpu_core_hours": DOUBLE,
    "memory_gb_hours": DOUBLE,
    "gpu_hours": DOUBLE,
    "cpu_cost": DOUBLE,
    "memory_cost": DOUBLE,
    "gpu_cost": DOUBLE,
    "instance_cost": DOUBLE,
    "total_cost": DOUBLE,
    "predictions": LONG,
    "cost_per_1k_predictions": DOUBLE,
}
