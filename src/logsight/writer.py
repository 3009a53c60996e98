"""The one place analyses write to the cluster: findings (``logsight-findings``) and the
critical-path aggregates of trace analyses (``logsight-critical-path``).

Jobs get a :class:`Writer` (or None: nothing is stored); sources only read. The document
shapes of the critical-path index are defined here, next to the code that writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis.drift import ReferenceProfile
from logsight.analysis.traces import TraceAnalysis, aggregate_operations, entry_points
from logsight.analysis.traces.dependencies import DependencyEdge
from logsight.findings import Finding, write_findings
from logsight.names import F
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine

# The namespace critical-path aggregates record when every namespace was read.
ALL_NAMESPACES = "*"


class Writer(Protocol):
    """Where a job stores what it found."""

    def findings(self, findings: Sequence[Finding]) -> int: ...

    def critical_path(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int: ...

    def profile(self, profile: ReferenceProfile, **kw: Any) -> str: ...

    def dependencies(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int: ...
    def cost(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int: ...


class ClusterWriter:
    """Writes to the cluster behind ``engine``, by stable ids (a re-run overwrites). With
    ``findings=False`` it stores what was asked for by name (a profile) but no findings."""

    def __init__(self, engine: Engine, *, refresh: bool | str = "wait_for",
                 findings: bool = True) -> None:
        self.engine = engine
        self.refresh = refresh
        self.store_findings = findings

    def findings(self, findings: Sequence[Finding]) -> int:
        if not findings or not self.store_findings:
            return 0
        return write_findings(self.engine, findings, refresh=self.refresh)

    def critical_path(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        return write_critical_path(self.engine, documents, refresh=self.refresh)

    def trace_operations(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Per-trace documents of the trace-completion job (see
        :func:`trace_operation_documents`)."""
        return write_trace_operations(self.engine, documents, refresh=self.refresh)

    def coverage(self, *, namespace: str | None, covered_from: datetime,
                 covered_until: datetime, now: datetime) -> str:
        return write_coverage(self.engine, namespace=namespace, covered_from=covered_from,
                              covered_until=covered_until, now=now)

    def profile(self, profile: ReferenceProfile, **kw: Any) -> str:
        """Store a drift reference profile (see :func:`store_profile`); its id."""
        return store_profile(self.engine, profile, **kw)

    def dependencies(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Store dependency-map edges (see :func:`dependency_documents`) by their ids."""
        return _index_by_id(self.engine, names.DEPENDENCIES_INDEX, documents, self.refresh,
                            "dependency")
    def cost(self, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Index cost rows (see :func:`cost_documents`) by their stable ids."""
        return _index_by_id(self.engine, names.COST_INDEX, documents, self.refresh, "cost")


def namespace_marker(namespace: str | None) -> str:
    """What critical-path aggregates record as their namespace: the namespace read, or
    :data:`ALL_NAMESPACES` when every namespace was read."""
    return namespace or ALL_NAMESPACES


def critical_path_id(
    entry_service: str, entry_operation: str, service: str, operation: str, version: str,
    window_start: datetime, window_end: datetime, *, namespace: str | None = None,
) -> str:
    """Stable ``_id`` of a critical-path aggregate (re-runs over a window overwrite it; runs
    over other namespaces, or over all of them, never do)."""
    key = "|".join([namespace_marker(namespace), entry_service, entry_operation, service,
                    operation, version, iso(window_start), iso(window_end)])
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def critical_path_documents(
    analysis: TraceAnalysis, *, window_start: datetime, window_end: datetime,
    namespace: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) per (entry point, service, operation, service version) for
    :data:`logsight.names.CRITICAL_PATH_INDEX`; ``critical_path_share`` and ``rank`` are within
    the entry point. ``namespace`` is the one the spans were read from (None: all of them,
    recorded as :data:`ALL_NAMESPACES`); it is a field of every document and part of its id."""
    marker = namespace_marker(namespace)
    spans = analysis.spans
    if len(spans) == 0:
        return []
    spans = pd.concat([spans, entry_points(analysis)], axis=1)
    if "version" not in spans.columns:
        spans = spans.assign(version="")
    view = TraceAnalysis(spans=spans, traces=analysis.traces, stats=analysis.stats)
    keys = ("entry_service", "entry_operation", "service", "name", "version")
    agg = aggregate_operations(view, keys=keys, share_within=keys[:2])
    agg["rank"] = agg.groupby(list(keys[:2]), sort=False).cumcount() + 1
    traces = analysis.traces.groupby(["entry_service", "entry_operation"]).size()
    out: list[tuple[str, dict[str, Any]]] = []
    for r in agg.to_dict("records"):
        doc = {
            "@timestamp": iso(window_end),
            "window_start": iso(window_start),
            "window_end": iso(window_end),
            "namespace": marker,
            "entry_point": str(r["entry_operation"]),
            "entry_service": str(r["entry_service"]),
            "service.name": str(r["service"]),
            "service.version": str(r["version"]),
            "span.name": str(r["name"]),
            "traces": int(traces.get((r["entry_service"], r["entry_operation"]), 0)),
            "count": int(r["count"]),
            "on_critical_path": int(r["on_critical_path"]),
            "on_critical_path_ratio": float(r["on_critical_path_ratio"]),
            "critical_path_ms": float(r["critical_path_ms"]),
            "critical_path_share": float(r["critical_path_share"]),
            "self_time_p50_ms": float(r["self_time_p50_ms"]),
            "self_time_p95_ms": float(r["self_time_p95_ms"]),
            "latency_p50_ms": float(r["latency_p50_ms"]),
            "latency_p95_ms": float(r["latency_p95_ms"]),
            "latency_p99_ms": float(r["latency_p99_ms"]),
            "error_rate": float(r["error_rate"]),
            "rank": int(r["rank"]),
        }
        _id = critical_path_id(
            str(r["entry_service"]), str(r["entry_operation"]), str(r["service"]),
            str(r["name"]), str(r["version"]), window_start, window_end, namespace=marker,
        )
        out.append((_id, doc))
    return out


def write_critical_path(
    engine: Engine, documents: Sequence[tuple[str, Mapping[str, Any]]],
    *, refresh: bool | str = "wait_for",
) -> int:
    """Index critical-path aggregates by their stable id (re-runs overwrite)."""
    if not documents:
        return 0
    result = engine.bulk(
        (({"index": {"_index": names.CRITICAL_PATH_INDEX, "_id": i}}, d) for i, d in documents),
        refresh=refresh,
    )
    if result.errors:
        e = result.errors[0]
        raise RuntimeError(
            f"{len(result.errors)} critical-path document(s) not written: {e.error_type}: "
            f"{e.reason}"
        )
    return result.ok


def dependency_documents(
    edges: Sequence[DependencyEdge], *, window_start: datetime, window_end: datetime,
    namespace: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) per edge of the map for :data:`logsight.names.DEPENDENCIES_INDEX`
    (a Kibana view of the map reads these); the id is (namespace, source, target, window), so
    a re-run over the window overwrites."""
    marker = namespace_marker(namespace)
    out: list[tuple[str, dict[str, Any]]] = []
    for e in edges:
        key = "|".join([marker, e.source, e.target, iso(window_start), iso(window_end)])
        out.append((hashlib.sha1(key.encode()).hexdigest()[:24], {
            "@timestamp": iso(window_end), "window_start": iso(window_start),
            "window_end": iso(window_end), "namespace": marker,
            "source": {"service": e.source}, "target": {"service": e.target}, "via": e.via,
            "calls": e.calls, "rate_per_s": e.rate_per_s if e.rate_per_s == e.rate_per_s
            else None, "errors": e.errors, "error_rate": e.error_rate,
            "latency_p50_ms": e.latency_p50_ms, "latency_p95_ms": e.latency_p95_ms,
        }))
    return out


def _index_by_id(engine: Engine, index: str, documents: Sequence[tuple[str, Mapping[str, Any]]],
                 refresh: bool | str, what: str) -> int:
    if not documents:
        return 0
    result = engine.bulk((({"index": {"_index": index, "_id": i}}, d) for i, d in documents),
                         refresh=refresh)
    if result.errors:
        e = result.errors[0]
        raise RuntimeError(f"{len(result.errors)} {what} document(s) not written: "
                           f"{e.error_type}: {e.reason}")
    return result.ok


def profile_id(model: str, version: str | None, name: str) -> str:
    return hashlib.sha1(f"{model}|{version or ''}|{name}".encode()).hexdigest()[:24]


def store_profile(
    engine: Engine,
    profile: ReferenceProfile,
    *,
    model: str,
    version: str | None = None,
    name: str = "default",
    fields: Mapping[str, str] | None = None,
    source: str = "window",
    window: tuple[datetime | str, datetime | str] | None = None,
    namespace: str | None = None,
    now: datetime | None = None,
) -> str:
    """Index the profile in ``PROFILES_INDEX`` under a stable id (model, version, name)."""
    pid = profile_id(model, version, name)
    created = now or datetime.now(UTC)
    doc = {
        "@timestamp": iso(created),
        "profile_id": pid,
        "name": name,
        "kind": "drift_reference",
        "model": model,
        "model_version": version,
        "namespace": namespace,
        "source": source,
        "window_start": iso(window[0]) if window else None,
        "window_end": iso(window[1]) if window else None,
        "features": list(profile.features),
        "fields": dict(fields or {n: F.ML_FEATURES + '.' + n for n in profile.features}),
        "profile": profile.to_document(),
    }
    engine.index(names.PROFILES_INDEX, doc, id=pid, refresh="wait_for")
    return pid


def cost_documents(rows: Sequence[Any], *, namespace: str | None = None
                   ) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) per :class:`logsight.analysis.cost.CostRow` for
    :data:`logsight.names.COST_INDEX`; the id is (namespace, window, allocation), so a re-run
    over the same window overwrites."""
    marker = namespace_marker(namespace)
    out: list[tuple[str, dict[str, Any]]] = []
    for r in rows:
        doc = {k: v for k, v in vars(r).items()}
        doc["window_start"], doc["window_end"] = iso(r.window_start), iso(r.window_end)
        doc["@timestamp"] = doc["window_start"]
        doc["namespace"] = marker
        key = "|".join([marker, doc["window_start"], doc["window_end"], r.service, r.team,
                        r.model, r.model_version, r.stage, r.capacity, r.instance_type])
        out.append((hashlib.sha1(key.encode()).hexdigest()[:24], doc))
    return out


# -- per-trace documents of the trace-completion job ------------------------------------------
TRACE_OPERATION = "trace_operation"  # doc_kind of a per-trace, per-operation document
COVERAGE = "coverage"  # doc_kind of the job's coverage record (one per namespace marker)


def trace_operation_id(namespace: str | None, trace_id: str, service: str, operation: str) -> str:
    """Stable ``_id`` of one trace's document for one operation: recomputing a trace (late
    spans) overwrites its documents, re-running writes no duplicates."""
    key = "|".join([TRACE_OPERATION, namespace_marker(namespace), trace_id, service, operation])
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def coverage_id(namespace: str | None) -> str:
    return hashlib.sha1(f"{COVERAGE}|{namespace_marker(namespace)}".encode()).hexdigest()[:24]


def _ns_iso(ns: Any) -> list[str]:
    """Unix nanoseconds -> ISO-8601 UTC strings (microseconds), vectorized."""
    arr = np.asarray(ns, dtype=np.int64).astype("datetime64[ns]")
    return [f"{t}Z" for t in np.datetime_as_string(arr, unit="us")]


def trace_operation_documents(
    rows: pd.DataFrame, *, namespace: str | None = None, window: pd.Timedelta | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) per row of :func:`logsight.analysis.traces.trace_operations` for
    :data:`logsight.names.CRITICAL_PATH_INDEX` (``doc_kind`` ``trace_operation``):
    ``@timestamp`` is the trace's start (the time a question's window selects on),
    ``window_start`` that time floored to ``window`` (default one minute)."""
    if len(rows) == 0:
        return []
    marker = namespace_marker(namespace)
    step = int((window or pd.Timedelta(minutes=1)).value)
    start = rows["trace_start_ns"].to_numpy(dtype="int64")
    ts, win = _ns_iso(start), _ns_iso(start - start % step)
    out: list[tuple[str, dict[str, Any]]] = []
    for i, r in enumerate(rows.itertuples(index=False)):
        doc = {
            "@timestamp": ts[i],
            "window_start": win[i],
            "doc_kind": TRACE_OPERATION,
            "namespace": marker,
            "trace.id": r.trace_id,
            "root_service": r.root_service,
            "root_operation": r.root_operation,
            "root_orphan": bool(r.root_orphan),
            "service.name": r.service,
            "span.name": r.operation,
            "service.version": r.version,
            "trace_duration_ms": float(r.trace_duration_ms),
            "span_count": int(r.span_count),
            "errors": int(r.errors),
            "error": bool(r.errors),
            "on_critical_path": int(r.on_critical_path),
            "critical_path_ms": float(r.critical_path_ms),
            "self_ms": float(r.self_ms),
            "self_ms_values": r.self_ms_values,
            "duration_ms_values": r.duration_ms_values,
            "is_root_operation": bool(r.is_root_operation),
            "trace_spans": int(r.trace_spans),
            "trace_orphans": int(r.trace_orphans),
            "trace_clipped": int(r.trace_clipped),
        }
        out.append((trace_operation_id(marker, r.trace_id, r.service, r.operation), doc))
    return out


def write_trace_operations(
    engine: Engine, documents: Sequence[tuple[str, Mapping[str, Any]]], *,
    refresh: bool | str | None = None, chunk: int = 5000,
) -> int:
    """Index per-trace documents by their stable id in chunks (a recompute overwrites)."""
    written = 0
    for i in range(0, len(documents), chunk):
        part = documents[i : i + chunk]
        last = i + chunk >= len(documents)
        result = engine.bulk(
            (({"index": {"_index": names.CRITICAL_PATH_INDEX, "_id": d_id}}, d)
             for d_id, d in part),
            refresh=refresh if last else None,
        )
        if result.errors:
            e = result.errors[0]
            raise RuntimeError(f"{len(result.errors)} trace document(s) not written: "
                               f"{e.error_type}: {e.reason}")
        written += result.ok
    return written


def write_coverage(engine: Engine, *, namespace: str | None, covered_from: datetime,
                   covered_until: datetime, now: datetime) -> str:
    """Record which ingest times the trace-completion job has processed for ``namespace``
    (every span ingested in [covered_from, covered_until) is in a stored trace document)."""
    cid = coverage_id(namespace)
    engine.index(names.CRITICAL_PATH_INDEX, {
        "@timestamp": iso(now), "doc_kind": COVERAGE, "namespace": namespace_marker(namespace),
        "covered_from": iso(covered_from), "covered_until": iso(covered_until),
    }, id=cid, refresh="wait_for")
    return cid
