"""Spans into a frame for :mod:`logsight.analysis.traces`: from NDJSON files or from the cluster,
plus the cluster-side jobs (bottlenecks, regressions) that write findings and critical-path
aggregates.

Accepted field names (first one present wins; nested objects such as ``{"service": {"name":
...}}`` or OTLP's ``{"status": {"code": 2}}`` are read as their dotted paths) are listed in
:data:`FIELD_ALIASES` and documented in docs/traces.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis.traces import (
    OrphanPolicy,
    TraceAnalysis,
    TraceRegression,
    VersionSplit,
    aggregate_operations,
    analyze_spans,
    bottleneck_findings,
    compare_operations,
    compare_versions,
    entry_points,
    rank_bottlenecks,
    regression_findings,
)
from logsight.findings import Finding, write_findings
from logsight.names import F
from logsight.sources.textfile import DecodeReport, iter_lines
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine

# canonical column -> accepted input names, in order of preference
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "trace_id": ("trace_id", "traceId", "traceID", F.TRACE_ID),
    "span_id": ("span_id", "spanId", "spanID", F.SPAN_ID),
    "parent_id": ("parent_span_id", "parentSpanId", "parentSpanID", "parent_id", F.PARENT_SPAN_ID),
    "service": (
        F.SERVICE, "service", "serviceName", "resource.service.name",
        "resource.attributes.service.name",
    ),
    "name": ("name", F.SPAN_NAME, "operation", "operationName"),
    "version": (F.SERVICE_VERSION, "version", "resource.attributes.service.version"),
    "kind": ("kind", F.SPAN_KIND),
    "status": ("status", F.SPAN_STATUS, "status.code", "status_code", "otel.status_code"),
    "follows_from": ("follows_from", "ref_type", "reference_type"),
}
START_NS_FIELDS = ("start_time_unix_nano", "startTimeUnixNano", F.SPAN_START)
START_ISO_FIELDS = ("start", "start_time", F.TIMESTAMP)
END_NS_FIELDS = ("end_time_unix_nano", "endTimeUnixNano", F.SPAN_END)
END_ISO_FIELDS = ("end", "end_time")
DURATION_FIELDS = (("duration_ms", 1e6), (F.SPAN_DURATION_MS, 1e6), ("duration_ns", 1.0))

_ERROR = {"error", "status_code_error", "2", "failure", "failed"}
_OK = {"ok", "status_code_ok", "1", "success"}
_KINDS = {"0": "internal", "1": "internal", "2": "server", "3": "client", "4": "producer",
          "5": "consumer", "unspecified": "internal"}

# The namespace critical-path aggregates record when every namespace was read.
ALL_NAMESPACES = "*"

SOURCE_FIELDS = (
    F.TRACE_ID, F.SPAN_ID, F.PARENT_SPAN_ID, F.SERVICE, F.SERVICE_VERSION, F.SPAN_NAME,
    F.SPAN_KIND, F.SPAN_START, F.SPAN_END, F.SPAN_DURATION_MS, F.SPAN_STATUS, "event.outcome",
    F.TIMESTAMP,
)


# -- records -> frame --------------------------------------------------------------------------
def _flatten(obj: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    out = {} if out is None else out
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            _flatten(v, key + ".", out)
        else:
            out[key] = v
    return out


def _text(v: Any) -> str | None:
    """A field value as text; None for missing/blank. Integral floats (an integer column with
    gaps becomes float in pandas) lose their ``.0`` so ids and status codes keep their form."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = str(v)
    return text if text != "" else None


def _coalesce(frame: pd.DataFrame, fields: Sequence[str], *, raw: bool = False) -> pd.Series:
    """First present value among ``fields``, per row, as text (or as is with ``raw``)."""
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for f in fields:
        if f in frame.columns:
            col = frame[f].astype(object)
            col = col.map(lambda v: v if raw and isinstance(v, bool) else _text(v))
            out = out.where(out.notna(), col)
    return out


# Span times are unix nanoseconds in an int64 (the frame's and the engine's ``long``): from the
# epoch up to 2262-04-11. Anything outside is a unit mix-up or garbage, never a real span.
MIN_NS = 0
MAX_NS = int(np.iinfo(np.int64).max)
# float(MAX_NS) rounds up to 2**63; a margin keeps a float check from admitting an overflow
_MAX_NS_FLOAT = float(MAX_NS) * (1 - 1e-12)
_RANGE_TEXT = f"unix nanoseconds must be between {MIN_NS} (1970-01-01) and {MAX_NS} (2262-04-11)"


class _OutOfRange(ValueError):
    pass


def _int_ns(values: pd.Series, what: str, rows: np.ndarray) -> pd.Series:
    """Integers or integer strings (OTLP JSON encodes uint64 as a string) -> Int64, exactly."""
    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, bool):
            raise TypeError
        if isinstance(v, (int, np.integer)):
            n = int(v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise _OutOfRange
            n = int(v)
        else:
            n = int(str(v).strip())
        if not MIN_NS <= n <= MAX_NS:
            raise _OutOfRange
        return n

    try:
        return pd.Series(pd.array([conv(v) for v in values], dtype="Int64"), index=values.index)
    except (TypeError, ValueError):
        for i, v in zip(rows, values, strict=True):
            try:
                conv(v)
            except _OutOfRange:
                raise ValueError(
                    f"record {i}: {what} {v} is out of range ({_RANGE_TEXT})"
                ) from None
            except (TypeError, ValueError):
                raise ValueError(
                    f"record {i}: {what} must be integer unix nanoseconds, got {v!r}"
                ) from None
        raise


def _iso_ns(values: pd.Series, what: str, rows: np.ndarray) -> pd.Series:
    text = values.astype(object).where(values.notna(), None).map(
        lambda v: None if v is None else str(v)
    )
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = (text.notna() & parsed.isna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"record {rows[i]}: {what} must be an ISO-8601 time, got {values.iloc[i]!r}"
        )
    # pandas parses far dates at a coarser unit; they do not fit int64 nanoseconds
    lo = pd.Timestamp(MIN_NS, unit="ns", tz="UTC")
    hi = pd.Timestamp(MAX_NS, unit="ns", tz="UTC")
    out = (parsed.notna() & ((parsed < lo) | (parsed > hi))).to_numpy()
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"record {rows[i]}: {what} {values.iloc[i]!r} is out of range "
            f"(times must be between 1970-01-01 and 2262-04-11)"
        )
    ns = np.asarray(parsed.dt.as_unit("ns").array.asi8, dtype=np.int64)
    return pd.Series(pd.array(ns, dtype="Int64"), index=values.index).where(
        parsed.notna(), pd.NA
    )


def _first_ns(frame: pd.DataFrame, ns_fields: Sequence[str], iso_fields: Sequence[str],
              rows: np.ndarray) -> pd.Series:
    """Per row, the first of these fields that is set, in unix nanoseconds (NA if none)."""
    out = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    for f in ns_fields:
        if f in frame.columns:
            out = out.fillna(_int_ns(frame[f].astype(object), f, rows))
    for f in iso_fields:
        if f in frame.columns:
            out = out.fillna(_iso_ns(frame[f], f, rows))
    return out


def _times(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.Series, pd.Series]:
    start = _first_ns(frame, START_NS_FIELDS, START_ISO_FIELDS, rows)
    end = _first_ns(frame, END_NS_FIELDS, END_ISO_FIELDS, rows)
    for f, scale in DURATION_FIELDS:
        if f in frame.columns:
            dur = pd.to_numeric(frame[f], errors="coerce")
            bad = frame[f].notna() & dur.isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(
                    f"record {rows[i]}: {f} must be a number, got {frame[f].iloc[i]!r}"
                )
            # checked in float before the int64 sum, which would overflow
            reach = start.astype("Float64") + dur * scale
            wild = (dur.notna() & start.notna()
                    & ~((reach >= MIN_NS) & (reach < _MAX_NS_FLOAT)).fillna(False)).to_numpy()
            if wild.any():
                i = int(np.flatnonzero(wild)[0])
                raise ValueError(
                    f"record {rows[i]}: {f} {frame[f].iloc[i]} is out of range (the span would "
                    f"end outside 1970-01-01 .. 2262-04-11)"
                )
            ok = dur.notna() & start.notna()
            end = end.fillna(
                (start.where(ok, 0) + (dur.where(ok, 0) * scale).round().astype("Int64"))
                .where(ok, pd.NA)
            )
    return start, end


def _status(values: pd.Series, outcome: pd.Series | None) -> np.ndarray:
    s = values.astype(object).where(values.notna(), "").astype(str).str.lower().str.strip()
    status = np.where(s.isin(_ERROR), "error", np.where(s.isin(_OK), "ok", "unset")).astype(object)
    if outcome is not None:
        failed = outcome.astype(object).astype(str).str.lower().to_numpy() == "failure"
        status[(status == "unset") & failed] = "error"
    return status


def _kind(values: pd.Series) -> np.ndarray:
    s = values.astype(object).where(values.notna(), "").astype(str).str.lower().str.strip()
    s = s.str.removeprefix("span_kind_")
    return s.replace(_KINDS).where(s != "", "internal").to_numpy(dtype=object)


def spans_frame(
    records: Iterable[Mapping[str, Any]], *, line_numbers: Sequence[int] | None = None
) -> pd.DataFrame:
    """OTel/ECS-shaped span records -> the frame :func:`analyze_spans` takes
    (:data:`logsight.analysis.traces.SPAN_COLUMNS`). Raises ValueError naming the first record
    (or line, when ``line_numbers`` are given) that lacks a required field."""
    flat = [_flatten(r) for r in records]
    # object columns: an integer column with gaps must not turn into (lossy) float64
    raw = pd.DataFrame(flat, dtype=object) if flat else pd.DataFrame()
    rows = np.asarray(line_numbers if line_numbers is not None else np.arange(len(raw)))
    label = "line" if line_numbers is not None else "record"
    cols: dict[str, Any] = {}
    for canon, aliases in FIELD_ALIASES.items():
        cols[canon] = _coalesce(raw, aliases, raw=canon == "follows_from")
    try:
        start, end = _times(raw, rows)
    except ValueError as e:
        raise ValueError(str(e).replace("record", label, 1)) from None
    for canon, what in (("trace_id", "trace_id"), ("span_id", "span_id"),
                        ("service", "service.name (or service)"), ("name", "name")):
        missing = cols[canon].isna().to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{label} {rows[i]}: span has no {what}")
    for series, what in ((start, "start (start_time_unix_nano or ISO start)"),
                         (end, "end (end_time_unix_nano, ISO end or duration_ms)")):
        missing = series.isna().to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{label} {rows[i]}: span has no {what}")
    outcome = raw["event.outcome"] if "event.outcome" in raw.columns else None
    ff = cols["follows_from"].astype(object)
    follows = ff.map(lambda v: v is True or str(v).lower() in ("true", "follows_from", "1"))
    n = len(raw)
    return pd.DataFrame(
        {
            "trace_id": cols["trace_id"].astype(str).to_numpy(dtype=object),
            "span_id": cols["span_id"].astype(str).to_numpy(dtype=object),
            "parent_id": cols["parent_id"].to_numpy(dtype=object),
            "service": cols["service"].astype(str).to_numpy(dtype=object),
            "name": cols["name"].astype(str).to_numpy(dtype=object),
            "start_ns": start.to_numpy(dtype=np.int64) if n else np.zeros(0, np.int64),
            "end_ns": end.to_numpy(dtype=np.int64) if n else np.zeros(0, np.int64),
            "status": _status(cols["status"], outcome),
            "kind": _kind(cols["kind"]),
            "version": cols["version"].fillna("").to_numpy(dtype=object),
            "follows_from": follows.to_numpy(dtype=bool),
        }
    )


def load_spans_file(path: str | Path, *, decode: DecodeReport | None = None) -> pd.DataFrame:
    """Read NDJSON spans (one JSON object per line; blank lines skipped) into a span frame.
    Lines that are not valid UTF-8 are read with U+FFFD and listed in ``decode``
    (:mod:`logsight.sources.textfile`)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"span file {str(p)!r} does not exist")
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for no, line in iter_lines(p, decode):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: line {no} is not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{p}: line {no} is not a JSON object")
        records.append(obj)
        lines.append(no)
    try:
        return spans_frame(records, line_numbers=lines)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


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


class NoSpans(ValueError):
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


def run_bottlenecks(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    service: str | None = None,
    operation: str | None = None,
    namespace: str | None = None,
    top: int = 10,
    write: bool = True,
    min_share: float = 0.2,
    orphans: OrphanPolicy = "attach",
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Read the window's spans, rank bottlenecks, and (``write``) store ``trace_bottleneck``
    findings and the critical-path aggregates. Without an entry point the latency percentiles
    come from the engine's aggregations over the same spans (``latency_source="engine"``)."""
    spans = read_spans(
        engine, start=start, end=end, service=service, operation=operation, namespace=namespace
    )
    analysis = analyze_spans(spans, orphans=orphans)
    rows = rank_bottlenecks(analysis, top=top)
    for r in rows:
        r["latency_source"] = "spans"
    if rows and service is None and operation is None:
        pushed = operation_stats(engine, start=start, end=end, namespace=namespace)
        by_key = {(r["service"], r["operation"]): r for r in pushed.to_dict("records")}
        for r in rows:
            agg = by_key.get((r["service"], r["operation"]))
            if agg is None:
                continue
            for col in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
                if agg[col] == agg[col]:  # NaN when the engine had no durations
                    r[col] = float(agg[col])
            r["latency_source"] = "engine"
    findings = bottleneck_findings(
        rows, window_start=start, window_end=end, min_share=min_share, namespace=namespace
    )
    if write:
        write_findings(engine, findings)
        write_critical_path(
            engine, critical_path_documents(analysis, window_start=start, window_end=end,
                                            namespace=namespace),
        )
    return rows, findings


def run_trace_regressions(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    baseline_start: datetime,
    baseline_end: datetime,
    service: str | None = None,
    operation: str | None = None,
    namespace: str | None = None,
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_count: int = 20,
    write: bool = True,
) -> tuple[list[TraceRegression], list[Finding]]:
    """Compare the current window with a baseline window per (service, operation) and (``write``)
    store ``trace_regression`` findings for the significant regressions."""
    kw: dict[str, Any] = {"service": service, "operation": operation, "namespace": namespace}
    base = analyze_spans(read_spans(engine, start=baseline_start, end=baseline_end, **kw))
    cur = analyze_spans(read_spans(engine, start=start, end=end, **kw))
    results = compare_operations(
        base, cur, alpha=alpha, min_ratio=min_ratio, min_count=min_count
    )
    findings = regression_findings(
        results, window_start=start, window_end=end, baseline_start=baseline_start,
        baseline_end=baseline_end, namespace=namespace,
    )
    if write:
        write_findings(engine, findings)
    return results, findings


def run_version_regressions(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    service: str,
    baseline_version: str,
    candidate_version: str,
    namespace: str | None = None,
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_count: int = 20,
    orphans: OrphanPolicy = "attach",
    write: bool = True,
) -> tuple[list[TraceRegression], list[Finding], VersionSplit]:
    """Compare two versions of ``service`` within one window per (service, operation): the
    traces through ``candidate_version`` against those through ``baseline_version`` (read with
    :func:`read_version_spans`), and (``write``) store ``trace_regression`` findings whose
    subject and evidence carry both versions (:func:`regression_findings`)."""
    spans = read_version_spans(
        engine, start=start, end=end, service=service,
        versions=[baseline_version, candidate_version], namespace=namespace,
    )
    if len(spans) == 0:
        where = describe_search(start=start, end=end, namespace=namespace)
        raise NoSpans(
            f"no spans of service {service!r} with version {baseline_version!r} or "
            f"{candidate_version!r} in {where}"
        )
    results, split = compare_versions(
        spans, service=service, baseline_version=baseline_version,
        candidate_version=candidate_version, orphans=orphans, alpha=alpha,
        min_ratio=min_ratio, min_count=min_count,
    )
    findings = regression_findings(
        results, window_start=start, window_end=end, namespace=namespace, versions=split,
    )
    if write:
        write_findings(engine, findings)
    return results, findings, split
