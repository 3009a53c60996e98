"""Reads for the trace-completion job and for questions answered from its stored documents.

* :func:`read_completion_spans`: every span of the traces that got a span ingested in an
  ingest-time range (older spans of those traces too: a late span recomputes its trace), minus
  the traces still receiving spans after the range (not settled: a later run takes them).
* :class:`StoredTraces`: the per-trace, per-operation documents of
  ``logsight-critical-path`` (``doc_kind: trace_operation``): per-operation sums and span
  percentiles as engine aggregations, and whether a window is covered by the job.

Reading only: the job's documents are written by :mod:`logsight.writer`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.names import F
from logsight.sources.traces.records import SOURCE_FIELDS, _flatten, spans_frame
from logsight.timeutil import iso, parse_iso
from logsight.writer import COVERAGE, TRACE_OPERATION, namespace_marker

if TYPE_CHECKING:
    from logsight.engine import Engine

_CHUNK = 10_000  # trace ids per terms query, well below the default max terms count (65,536)


def _ingested(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    rng: dict[str, str] = {}
    if start is not None:
        rng["gte"] = iso(start)
    if end is not None:
        rng["lt"] = iso(end)
    return {"range": {F.EVENT_INGESTED: rng}}


def _sources(hits: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for h in hits:
        yield h.get("_source", {})


@dataclass
class CompletionSpans:
    """What a completion run reads: the spans of the settled traces, and how many traces it
    left for later (spans ingested after the range)."""

    spans: pd.DataFrame
    traces_seen: int
    deferred: int
    late_spans: int  # spans read from before the range: traces recomputed because of late spans


def read_completion_spans(
    engine: Engine, *, ingested_from: datetime, ingested_to: datetime,
    namespace: str | None = None, page_size: int = 5000,
) -> CompletionSpans:
    """Every span of the traces with a span ingested in [ingested_from, ingested_to) whose
    spans were all ingested before ``ingested_to`` (see the module docstring)."""
    index = names.read_target(names.TRACES, namespace)
    records = list(_sources(engine.scan(
        index, {"bool": {"filter": [_ingested(ingested_from, ingested_to)]}},
        sort_field=F.EVENT_INGESTED, source=SOURCE_FIELDS, page_size=page_size)))
    ids = sorted({str(_flatten(r).get(F.TRACE_ID)) for r in records})
    late: list[Mapping[str, Any]] = []
    deferred: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        terms = {"terms": {F.TRACE_ID: ids[i : i + _CHUNK]}}
        late.extend(_sources(engine.scan(
            index, {"bool": {"filter": [terms, _ingested(None, ingested_from)]}},
            sort_field=F.EVENT_INGESTED, source=SOURCE_FIELDS, page_size=page_size)))
        deferred.update(
            str(_flatten(h.get("_source", {})).get(F.TRACE_ID)) for h in engine.scan(
                index, {"bool": {"filter": [terms, _ingested(ingested_to, None)]}},
                sort_field=F.EVENT_INGESTED, source=[F.TRACE_ID], page_size=page_size))
    frame = spans_frame([*records, *late])
    if deferred and len(frame):
        frame = frame[~frame["trace_id"].isin(deferred)].reset_index(drop=True)
    return CompletionSpans(frame, len(ids), len(deferred), len(late))


@dataclass(frozen=True)
class Coverage:
    """Ingest times the completion job has processed for a namespace marker."""

    covered_from: datetime
    covered_until: datetime


@dataclass
class OperationTotals:
    """Per (service, operation) sums over stored documents (columns of
    :data:`logsight.analysis.traces.pertrace.TOTAL_COLUMNS`) and the repairs of the traces
    counted (traces, spans, orphans, clipped)."""

    totals: pd.DataFrame
    repairs: dict[str, int]


_SELF_PCT = {"self_time_p50_ms": "50.0", "self_time_p95_ms": "95.0"}
_LAT_PCT = {"latency_p50_ms": "50.0", "latency_p95_ms": "95.0", "latency_p99_ms": "99.0"}


class StoredTraces:
    """The completion job's documents for ``namespace`` (None: the job run over every
    namespace)."""

    def __init__(self, engine: Engine, namespace: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace
        self.marker = namespace_marker(namespace)

    def completion_spans(self, ingested_from: datetime, ingested_to: datetime
                         ) -> CompletionSpans:
        """See :func:`read_completion_spans`."""
        return read_completion_spans(self.engine, ingested_from=ingested_from,
                                     ingested_to=ingested_to, namespace=self.namespace)

    def coverage(self) -> Coverage | None:
        resp = self.engine.search(names.CRITICAL_PATH_INDEX, {
            "size": 1, "query": {"bool": {"filter": [
                {"term": {"doc_kind": COVERAGE}}, {"term": {"namespace": self.marker}}]}},
        }, ignore_unavailable="true")
        hits = resp.get("hits", {}).get("hits", [])
        if not hits:
            return None
        src = hits[0]["_source"]
        return Coverage(parse_iso(src["covered_from"]), parse_iso(src["covered_until"]))

    def uncovered_spans(self, start: datetime, end: datetime, coverage: Coverage
                        ) -> tuple[int, int]:
        """Spans that started in [start, end) but were not ingested within the coverage (so in
        no stored trace document yet): (ingested before it: the job never read them, ingested
        after it: not settled yet), in one request."""
        resp = self.engine.search(names.read_target(names.TRACES, self.namespace), {
            "size": 0, "track_total_hits": False,
            "query": {"bool": {"filter": [
                {"range": {F.TIMESTAMP: {"gte": iso(start), "lt": iso(end)}}}]}},
            "aggs": {"out": {"filters": {"filters": {
                "before": _ingested(None, coverage.covered_from),
                "after": _ingested(coverage.covered_until, None)}}}},
        }, ignore_unavailable="true", allow_no_indices="true")
        got = ((resp.get("aggregations") or {}).get("out") or {}).get("buckets") or {}
        return (int((got.get("before") or {}).get("doc_count", 0)),
                int((got.get("after") or {}).get("doc_count", 0)))

    def _query(self, start: datetime, end: datetime, service: str | None,
               operation: str | None) -> dict[str, Any]:
        flt: list[dict[str, Any]] = [
            {"term": {"doc_kind": TRACE_OPERATION}}, {"term": {"namespace": self.marker}},
            {"range": {F.TIMESTAMP: {"gte": iso(start), "lt": iso(end)}}},
        ]
        if service is not None:
            flt.append({"term": {"root_service": service}})
        if operation is not None:
            flt.append({"term": {"root_operation": operation}})
        if service is not None or operation is not None:
            # like the raw path's entry-point read: a real root span (no parent reference)
            flt.append({"term": {"root_orphan": False}})
        return {"bool": {"filter": flt}}

    def operation_totals(self, start: datetime, end: datetime, *, service: str | None = None,
                         operation: str | None = None, page_size: int = 1000
                         ) -> OperationTotals:
        """Sums per (service, operation) of the stored documents of the
        traces that started in [start, end) (with an entry point: whose root is it)."""
        query = self._query(start, end, service, operation)
        rows: list[dict[str, Any]] = []
        repairs = {"traces": 0, "spans": 0, "orphans": 0, "clipped": 0}
        after: dict[str, Any] | None = None
        first = True
        while True:
            composite: dict[str, Any] = {"size": page_size, "sources": [
                {"service": {"terms": {"field": F.SERVICE}}},
                {"operation": {"terms": {"field": F.SPAN_NAME}}}]}
            if after:
                composite["after"] = after
            aggs: dict[str, Any] = {"ops": {"composite": composite, "aggs": {
                "count": {"sum": {"field": "span_count"}},
                "errors": {"sum": {"field": "errors"}},
                "on_cp": {"sum": {"field": "on_critical_path"}},
                "cp": {"sum": {"field": "critical_path_ms"}},
                "self": {"sum": {"field": "self_ms"}},
            }}}
            if first:
                aggs["roots"] = {"filter": {"term": {"is_root_operation": True}}, "aggs": {
                    "spans": {"sum": {"field": "trace_spans"}},
                    "orphans": {"sum": {"field": "trace_orphans"}},
                    "clipped": {"sum": {"field": "trace_clipped"}}}}
            resp = self.engine.search(names.CRITICAL_PATH_INDEX, {
                "size": 0, "track_total_hits": False, "query": query, "aggs": aggs,
            }, ignore_unavailable="true")
            got = resp.get("aggregations") or {}
            if first and "roots" in got:
                r = got["roots"]
                repairs = {"traces": int(r["doc_count"]), "spans": int(r["spans"]["value"]),
                           "orphans": int(r["orphans"]["value"]),
                           "clipped": int(r["clipped"]["value"])}
            first = False
            agg = got.get("ops") or {}
            buckets = agg.get("buckets", [])
            for b in buckets:
                key = (str(b["key"]["service"]), str(b["key"]["operation"]))
                rows.append({
                    "service": key[0], "operation": key[1],
                    "count": int(b["count"]["value"]), "traces": int(b["doc_count"]),
                    "errors": int(b["errors"]["value"]),
                    "on_critical_path": int(b["on_cp"]["value"]),
                    "critical_path_ms": float(b["cp"]["value"]),
                    "self_time_total_ms": float(b["self"]["value"]),
                })
            after = agg.get("after_key")
            if not buckets or not after or len(buckets) < page_size:
                break
        cols = ["service", "operation", "count", "traces", "errors", "on_critical_path",
                "critical_path_ms", "self_time_total_ms"]
        return OperationTotals(pd.DataFrame(rows, columns=cols), repairs)

    def operation_percentiles(
        self, start: datetime, end: datetime, keys: Sequence[tuple[str, str]], *,
        service: str | None = None, operation: str | None = None,
    ) -> dict[tuple[str, str], dict[str, float | None]]:
        """Span self-time and latency percentiles of the (service, operation) ``keys`` only
        (the ranked top: percentiles cost the engine far more than sums)."""
        if not keys:
            return {}
        query = self._query(start, end, service, operation)
        query["bool"]["filter"].append({"bool": {"minimum_should_match": 1, "should": [
            {"bool": {"filter": [{"term": {F.SERVICE: svc}}, {"term": {F.SPAN_NAME: op}}]}}
            for svc, op in keys]}})
        resp = self.engine.search(names.CRITICAL_PATH_INDEX, {
            "size": 0, "track_total_hits": False, "query": query,
            "aggs": {"ops": {"multi_terms": {
                "terms": [{"field": F.SERVICE}, {"field": F.SPAN_NAME}], "size": len(keys)},
                "aggs": {
                    "self_pct": {"percentiles": {"field": "self_ms_values",
                                                 "percents": [50, 95]}},
                    "lat_pct": {"percentiles": {"field": "duration_ms_values",
                                                "percents": [50, 95, 99]}},
                }}},
        }, ignore_unavailable="true")
        out: dict[tuple[str, str], dict[str, float | None]] = {}
        for b in ((resp.get("aggregations") or {}).get("ops") or {}).get("buckets", []):
            key = (str(b["key"][0]), str(b["key"][1]))
            sv, lv = b["self_pct"]["values"], b["lat_pct"]["values"]
            out[key] = {**{k: sv.get(p) for k, p in _SELF_PCT.items()},
                        **{k: lv.get(p) for k, p in _LAT_PCT.items()}}
        return out

    def version_histograms(
        self, start: datetime, end: datetime, *, service: str, versions: Sequence[str],
        edges: Sequence[float], metrics: Sequence[str] = ("self_ms", "critical_path_ms"),
        page_size: int = 200,
    ) -> dict[str, dict[tuple[str, str, str], np.ndarray]]:
        """Per version of ``service``: counts per bin of ``edges`` (the last bin open-ended)
        of each per-trace metric, per (service, operation, metric), over the stored documents
        of the traces that started in [start, end)."""
        ranges = [{"from": float(edges[i]), "to": float(edges[i + 1])}
                  for i in range(len(edges) - 2)] + [{"from": float(edges[-2])}]
        query = {"bool": {"filter": [
            {"term": {"doc_kind": TRACE_OPERATION}}, {"term": {"namespace": self.marker}},
            {"range": {F.TIMESTAMP: {"gte": iso(start), "lt": iso(end)}}},
            {"term": {F.SERVICE: service}},
            {"terms": {F.SERVICE_VERSION: [str(v) for v in versions]}}]}}
        out: dict[str, dict[tuple[str, str, str], np.ndarray]] = {str(v): {} for v in versions}
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": page_size, "sources": [
                {"operation": {"terms": {"field": F.SPAN_NAME}}},
                {"version": {"terms": {"field": F.SERVICE_VERSION}}}]}
            if after:
                composite["after"] = after
            resp = self.engine.search(names.CRITICAL_PATH_INDEX, {
                "size": 0, "track_total_hits": False, "query": query,
                "aggs": {"ops": {"composite": composite, "aggs": {
                    m: {"range": {"field": m, "ranges": ranges}} for m in metrics}}},
            }, ignore_unavailable="true")
            agg = (resp.get("aggregations") or {}).get("ops") or {}
            buckets = agg.get("buckets", [])
            for b in buckets:
                op, version = str(b["key"]["operation"]), str(b["key"]["version"])
                for m in metrics:
                    counts = np.array([r["doc_count"] for r in b[m]["buckets"]], dtype=np.int64)
                    out.setdefault(version, {})[(service, op, m)] = counts
            after = agg.get("after_key")
            if not buckets or not after or len(buckets) < page_size:
                break
        return out

    def documents(self, trace_id: str) -> list[dict[str, Any]]:
        """The stored documents of one trace (for inspection and tests)."""
        resp = self.engine.search(names.CRITICAL_PATH_INDEX, {
            "size": 10_000, "query": {"bool": {"filter": [
                {"term": {"doc_kind": TRACE_OPERATION}}, {"term": {"namespace": self.marker}},
                {"term": {F.TRACE_ID: trace_id}}]}},
        }, ignore_unavailable="true")
        return [h["_source"] for h in resp.get("hits", {}).get("hits", [])]

    def count(self) -> int:
        """Stored trace documents of this namespace marker."""
        return self.engine.count(names.CRITICAL_PATH_INDEX, {"bool": {"filter": [
            {"term": {"doc_kind": TRACE_OPERATION}}, {"term": {"namespace": self.marker}}]}})

