"""Spans into a frame for :mod:`logsight.analysis.traces`: from NDJSON files or from the cluster,
behind one protocol (:class:`SpanSource`: :class:`ClusterSpans`, :class:`SpanFile`), so the
trace jobs (:mod:`logsight.jobs.traces`) run the same on either. Reading only: findings and
critical-path aggregates are written by :mod:`logsight.writer`.

Accepted field names (first one present wins; nested objects such as ``{"service": {"name":
...}}`` or OTLP's ``{"status": {"code": 2}}`` are read as their dotted paths) are listed in
:data:`FIELD_ALIASES` and documented in docs/traces.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from logsight import names
from logsight.errors import BadRequest, NoData
from logsight.names import F
from logsight.timeutil import as_utc, iso

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


def load_spans_file(path: str | Path) -> pd.DataFrame:
    """Read NDJSON spans (one JSON object per line; blank lines skipped) into a span frame."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"span file {str(p)!r} does not exist")
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    with p.open("rb") as fh:
        for no, line in enumerate(fh, start=1):
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


# -- the sources the trace jobs read -----------------------------------------------------------
class SpanSource(Protocol):
    """Spans for the trace jobs; ``None`` window bounds mean open (a file's own first / last
    trace; the cluster needs both)."""

    namespace: str | None

    def spans(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None, operation: str | None = None) -> pd.DataFrame:
        """The spans of the traces whose root started in [start, end) (with an entry point:
        only traces whose root span is of ``service`` / ``operation``)."""
        ...

    def version_spans(self, start: datetime | None, end: datetime | None, *, service: str,
                      versions: Sequence[str]) -> pd.DataFrame:
        """The spans of the traces in [start, end) in which ``service`` ran one of
        ``versions`` (more traces may come along: the version split sorts them)."""
        ...

    def operation_stats(self, start: datetime, end: datetime) -> pd.DataFrame | None:
        """Engine-side latency percentiles per operation, or None where there is no engine."""
        ...

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None, operation: str | None = None) -> str | None:
        """Why nothing was found there (what was searched, what there is instead); None when
        there is something."""
        ...

    def describe(self, start: datetime | None, end: datetime | None) -> str:
        """Where a read looks, in words."""
        ...


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


def _ns(ts: datetime) -> int:
    return int(pd.Timestamp(as_utc(ts)).value)


def trace_starts(spans: pd.DataFrame) -> pd.Series:
    """Each trace's start (ns): its root span's, or its first span's where the root is missing
    (a trace cut by the export), the same rule the cluster reader windows traces by."""
    first = spans.groupby("trace_id", sort=False)["start_ns"].min()
    is_root = spans["parent_id"].isna() | (spans["parent_id"] == "")
    root = spans[is_root].groupby("trace_id", sort=False)["start_ns"].min()
    # assigned, not reindex+fillna: a float64 detour would round nanoseconds near 2**60
    starts = first.copy()
    starts.loc[root.index] = root
    return starts


class SpanFile:
    """An NDJSON span file (see :func:`load_spans_file`), read once. ``parameter`` is the
    request field that named it (``input``, ``baseline_input``) and ``window_parameter`` the
    one that chose its window, for the errors."""

    namespace: str | None = None

    def __init__(self, path: str | Path, *, parameter: str = "input",
                 window_parameter: str = "window") -> None:
        self.path = Path(path)
        self.parameter = parameter
        self.window_parameter = window_parameter
        self._frame: pd.DataFrame | None = None

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            try:
                self._frame = load_spans_file(self.path)
            except ValueError as e:  # the reader's own refusals of the file, all of them
                raise BadRequest(self.parameter, str(e)) from None
        return self._frame

    def _in_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """The spans of the traces that start in [start, end); NoData saying the file's own
        time span when no trace does."""
        spans = self.frame()
        if (start is None and end is None) or spans.empty:
            return spans
        starts = trace_starts(spans)
        keep = pd.Series(True, index=starts.index)
        if start is not None:
            keep &= starts >= _ns(start)
        if end is not None:
            keep &= starts < _ns(end)
        if not keep.any():
            first, last = (iso(pd.Timestamp(int(v), tz="UTC").to_pydatetime(),
                               timespec="seconds") for v in (starts.min(), starts.max()))
            s = iso(start, timespec="seconds") if start else "its start"
            e = iso(end, timespec="seconds") if end else "its end"
            raise NoData(
                f"no traces in {self.path} start between {s} ({{{self.window_parameter}.start}})"
                f" and {e} ({{{self.window_parameter}.end}}); its {len(starts)} traces start "
                f"from {first} to {last}", parameters=(self.window_parameter,))
        return spans[spans["trace_id"].isin(set(starts.index[keep.to_numpy()]))]

    def spans(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None, operation: str | None = None) -> pd.DataFrame:
        spans = self._in_window(start, end)
        if service is None and operation is None:
            return spans
        is_root = spans["parent_id"].isna() | (spans["parent_id"] == "")
        roots = roots_of = spans[is_root]
        if service is not None:
            roots = roots[roots["service"] == service]
        if operation is not None:
            roots = roots[roots["name"] == operation]
        spans = spans[spans["trace_id"].isin(set(roots["trace_id"]))]
        if len(spans) == 0:
            asked = " and ".join(
                p for p in (f"service {service!r}" if service is not None else "",
                            f"operation {operation!r}" if operation is not None else "") if p)
            seen = sorted({f"{s} {n}" for s, n in zip(roots_of["service"], roots_of["name"],
                                                     strict=True)})
            raise NoData(f"no traces in {self.path} with a root span of {asked}; entry points "
                         f"seen: {seen[:20]}", parameters=("service", "operation"))
        return spans

    def version_spans(self, start: datetime | None, end: datetime | None, *, service: str,
                      versions: Sequence[str]) -> pd.DataFrame:
        return self._in_window(start, end)

    def operation_stats(self, start: datetime, end: datetime) -> pd.DataFrame | None:
        return None

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None, operation: str | None = None) -> str | None:
        return None if len(self.spans(start, end, service=service, operation=operation)) \
            else f"no spans in {self.path}"

    def describe(self, start: datetime | None, end: datetime | None) -> str:
        return str(self.path)
