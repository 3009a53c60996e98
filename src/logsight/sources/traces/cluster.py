"""Spans from the cluster's traces streams (PIT + search_after; by window, entry point or
service version), engine-side percentiles, and the words for "nothing there" (:class:`NoSpans`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from logsight import names
from logsight.errors import BadRequest, NoData
from logsight.names import F
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine
from logsight.sources.traces.records import SOURCE_FIELDS, _flatten, spans_frame


# -- the cluster -------------------------------------------------------------------------------
def _range(start: datetime, end: datetime) -> dict[str, Any]:
    return {"range": {F.TIMESTAMP: {"gte": iso(start), "lt": iso(end)}}}


def _hits_to_records(hits: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for h in hits:
        yield h.get("_source", {})


def read_spans(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    service: str | None = None,
    operation: str | None = None,
    namespace: str | None = None,
    trace_slack: timedelta = timedelta(hours=1),
    page_size: int = 5000,
) -> pd.DataFrame:
    """Spans from the traces streams (PIT + search_after via :meth:`Engine.scan`).

    Without an entry point every span that started in [start, end) is read (traces cut by the
    window edges show up as orphans). With ``service`` and/or ``operation`` only traces whose
    root span (no ``parent.id``) matches and started in the window are read, with all their
    spans up to ``trace_slack`` around the window."""
    _check_window(start, end)
    index = names.read_target(names.TRACES, namespace)
    if service is None and operation is None:
        hits = engine.scan(
            index, {"bool": {"filter": [_range(start, end)]}}, source=SOURCE_FIELDS,
            page_size=page_size,
        )
        return spans_frame(_hits_to_records(hits))
    return _read_traces_where(
        engine, index, _root_clause(service, operation), start=start, end=end,
        trace_slack=trace_slack, page_size=page_size,
    )


class NoSpans(NoData):
    """Nothing matched what was asked (namespace, service, version, window): no data rather
    than a bad value; the message says what was searched and what there is instead."""


_BACKING = re.compile(rf"^\.ds-{names.TRACES}-{names.DATASET}-(.+)-\d+$")


def _root_clause(service: str | None, operation: str | None) -> dict[str, Any]:
    flt: list[dict[str, Any]] = []
    if service is not None:
        flt.append({"term": {F.SERVICE: service}})
    if operation is not None:
        flt.append({"term": {F.SPAN_NAME: operation}})
    return {"filter": flt, "must_not": [{"exists": {"field": F.PARENT_SPAN_ID}}]}


def _terms(engine: Engine, index: str, where: dict[str, Any], field: str, size: int,
           start: datetime, end: datetime) -> list[str]:
    body = {
        "size": 0, "track_total_hits": False,
        "query": {"bool": {**where, "filter": [_range(start, end), *where.get("filter", [])]}},
        "aggs": {"v": {"terms": {"field": field, "size": size}}},
    }
    resp = engine.search(index, body, ignore_unavailable="true", allow_no_indices="true")
    buckets = ((resp.get("aggregations") or {}).get("v") or {}).get("buckets", [])
    return [str(b["key"]) for b in buckets]


def describe_search(*, start: datetime, end: datetime, namespace: str | None = None,
                    service: str | None = None, operation: str | None = None) -> str:
    """What a span read searched, in words: index, namespace, entry point and window."""
    index = names.read_target(names.TRACES, namespace)
    where = f"{index} (namespace {namespace!r})" if namespace else f"{index} (all namespaces)"
    entry = ""
    if service is not None or operation is not None:
        parts = [f"service {service!r}" if service is not None else "",
                 f"operation {operation!r}" if operation is not None else ""]
        entry = " with a root span of " + " and ".join(p for p in parts if p)
    return f"{where}{entry} between {iso(start)} and {iso(end)}"


def has_spans(
    engine: Engine, *, start: datetime, end: datetime, namespace: str | None = None,
    service: str | None = None, operation: str | None = None,
) -> bool:
    """Whether :func:`read_spans` with these arguments would find anything (for an entry point:
    a matching root span that started in the window)."""
    where = _root_clause(service, operation) if (service, operation) != (None, None) else {}
    query = {"bool": {**where, "filter": [_range(start, end), *where.get("filter", [])]}}
    return engine.count(names.read_target(names.TRACES, namespace), query) > 0


def explain_no_spans(
    engine: Engine, *, start: datetime, end: datetime, namespace: str | None = None,
    service: str | None = None, operation: str | None = None, limit: int = 20,
) -> str:
    """Why a read found no spans: what was searched and what the window holds instead (the
    namespaces with spans, or the entry points of the namespace)."""
    searched = describe_search(start=start, end=end, namespace=namespace, service=service,
                               operation=operation)
    what = f"no traces in {searched}"
    if namespace:
        index = names.read_target(names.TRACES, namespace)
        here = _terms(engine, index, {}, F.SERVICE, 1, start, end)
        if not here:
            seen = sorted({m.group(1) for i in _terms(
                engine, names.stream_pattern(names.TRACES), {}, "_index", 1000, start, end)
                if (m := _BACKING.match(i))})
            return f"{what}; namespaces with spans in that window: {_listing(seen, limit)}"
    index = names.read_target(names.TRACES, namespace)
    services = sorted(_terms(engine, index, _root_clause(None, None), F.SERVICE, limit + 1,
                             start, end))
    if service is not None and operation is not None and has_spans(
            engine, start=start, end=end, namespace=namespace, service=service):
        ops = sorted(_terms(engine, index, _root_clause(service, None), F.SPAN_NAME,
                            limit + 1, start, end))
        return f"{what}; root operations of service {service!r} seen: {_listing(ops, limit)}"
    if not services:
        return f"{what}; the window holds no root spans at all"
    return f"{what}; entry (root span) services seen: {_listing(services, limit)}"


def _listing(values: Sequence[str], limit: int) -> str:
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{list(values[:limit])}{more}"


def _check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValueError(f"window end {end} is not after its start {start}")


def _read_traces_where(engine: Engine, index: str, where: dict[str, Any], *, start: datetime,
                       end: datetime, trace_slack: timedelta, page_size: int) -> pd.DataFrame:
    """Every span (up to ``trace_slack`` around the window) of the traces that have a span
    started in [start, end) matching the bool clauses ``where``."""
    where = {**where, "filter": [_range(start, end), *where.get("filter", [])]}
    hits = engine.scan(index, {"bool": where}, source=[F.TRACE_ID], page_size=page_size)
    trace_ids = sorted({str(_flatten(h.get("_source", {})).get(F.TRACE_ID)) for h in hits})
    return _read_traces(engine, index, trace_ids, start - trace_slack, end + trace_slack,
                        page_size)


def _read_traces(engine: Engine, index: str, trace_ids: Sequence[str], start: datetime,
                 end: datetime, page_size: int) -> pd.DataFrame:
    """Every span of these traces that started in [start, end)."""
    records: list[Mapping[str, Any]] = []
    chunk = 10_000  # well below the default max terms count (65,536)
    for i in range(0, len(trace_ids), chunk):
        query = {
            "bool": {
                "filter": [
                    _range(start, end),
                    {"terms": {F.TRACE_ID: list(trace_ids[i : i + chunk])}},
                ]
            }
        }
        records.extend(
            _hits_to_records(engine.scan(index, query, source=SOURCE_FIELDS, page_size=page_size))
        )
    return spans_frame(records)


def read_version_spans(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    service: str,
    versions: Sequence[str],
    namespace: str | None = None,
    trace_slack: timedelta = timedelta(hours=1),
    page_size: int = 5000,
) -> pd.DataFrame:
    """Every span (all services, up to ``trace_slack`` around the window) of the traces in
    which ``service`` ran one of ``versions`` with a span that started in [start, end)."""
    _check_window(start, end)
    return _read_traces_where(
        engine, names.read_target(names.TRACES, namespace),
        {"filter": [{"term": {F.SERVICE: service}},
                    {"terms": {F.SERVICE_VERSION: [str(v) for v in versions]}}]},
        start=start, end=end, trace_slack=trace_slack, page_size=page_size,
    )


def operation_stats(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    namespace: str | None = None,
    percents: Sequence[float] = (50.0, 95.0, 99.0),
    page_size: int = 500,
) -> pd.DataFrame:
    """Per (service, operation) span count, error count and duration percentiles computed by the
    engine (composite terms + ``percentiles`` on ``span.duration_ms``, paged by after_key).
    Columns: service, operation, count, errors, latency_p<P>_ms."""
    index = names.read_target(names.TRACES, namespace)
    rows: list[dict[str, Any]] = []
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {
            "size": page_size,
            "sources": [
                {"service": {"terms": {"field": F.SERVICE}}},
                {"operation": {"terms": {"field": F.SPAN_NAME}}},
            ],
        }
        if after:
            composite["after"] = after
        body = {
            "size": 0,
            "track_total_hits": False,
            "query": {"bool": {"filter": [_range(start, end)]}},
            "aggs": {
                "ops": {
                    "composite": composite,
                    "aggs": {
                        "latency": {
                            "percentiles": {"field": F.SPAN_DURATION_MS, "percents": list(percents)}
                        },
                        "errors": {"filter": {"term": {F.SPAN_STATUS: "error"}}},
                    },
                }
            },
        }
        resp = engine.search(index, body, ignore_unavailable="true")
        agg = (resp.get("aggregations") or {}).get("ops") or {}
        buckets = agg.get("buckets", [])
        for b in buckets:
            row: dict[str, Any] = {
                "service": b["key"]["service"],
                "operation": b["key"]["operation"],
                "count": int(b["doc_count"]),
                "errors": int(b["errors"]["doc_count"]),
            }
            values = b["latency"]["values"]
            for p in percents:
                v = values.get(str(float(p)), values.get(f"{p}"))
                row[f"latency_p{p:g}_ms"] = float(v) if v is not None else float("nan")
            rows.append(row)
        after = agg.get("after_key")
        if not buckets or not after or len(buckets) < page_size:
            break
    cols = ["service", "operation", "count", "errors", *[f"latency_p{p:g}_ms" for p in percents]]
    return pd.DataFrame(rows, columns=cols)


class ClusterSpans:
    """The traces streams of ``namespace`` (None: every namespace) in the cluster."""

    def __init__(self, engine: Engine, namespace: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace

    @staticmethod
    def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        if start is None or end is None:
            raise BadRequest("window", "a cluster read needs both ends of its window")
        return start, end

    def spans(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None, operation: str | None = None) -> pd.DataFrame:
        s, e = self._window(start, end)
        return read_spans(self.engine, start=s, end=e, service=service, operation=operation,
                          namespace=self.namespace)

    def version_spans(self, start: datetime | None, end: datetime | None, *, service: str,
                      versions: Sequence[str]) -> pd.DataFrame:
        s, e = self._window(start, end)
        return read_version_spans(self.engine, start=s, end=e, service=service,
                                  versions=versions, namespace=self.namespace)

    def operation_stats(self, start: datetime, end: datetime) -> pd.DataFrame | None:
        return operation_stats(self.engine, start=start, end=end, namespace=self.namespace)

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None, operation: str | None = None) -> str | None:
        s, e = self._window(start, end)
        if has_spans(self.engine, start=s, end=e, namespace=self.namespace, service=service,
                     operation=operation):
            return None
        return explain_no_spans(self.engine, start=s, end=e, namespace=self.namespace,
                                service=service, operation=operation)

    def describe(self, start: datetime | None, end: datetime | None) -> str:
        s, e = self._window(start, end)
        return describe_search(start=s, end=e, namespace=self.namespace)
