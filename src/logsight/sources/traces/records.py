"""OTel/ECS-shaped span records (any of the accepted field names, see
:data:`FIELD_ALIASES`) into the span frame of :mod:`logsight.analysis.traces`; NDJSON files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight.names import F
from logsight.sources.textfile import DecodeReport, iter_lines

if TYPE_CHECKING:
    pass



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
    # the service a client span calls (OTel's peer.service): dependency edges to callees that
    # send no spans of their own (a database, a third-party API)
    "peer": ("attributes.peer.service", "peer.service", "peer_service"),
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
    F.TIMESTAMP, "attributes.peer.service",
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
            "peer": cols["peer"].fillna("").astype(str).to_numpy(dtype=object),
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
