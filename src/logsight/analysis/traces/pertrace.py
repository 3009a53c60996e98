"""Per-trace, per-operation summaries of an analysis (what the trace-completion job stores, so a
bottleneck question is an aggregation over stored rows instead of a recompute over raw spans),
and the bottleneck ranking rebuilt from summed rows.

Pure: a :class:`TraceAnalysis` in, frames and plain dicts out. The ranking of
:func:`rank_operation_totals` follows :func:`~logsight.analysis.traces.aggregate_operations`
exactly (critical-path ms, then total self time, then service and operation ascending), so an
answer from stored rows ranks like the raw recompute over the same traces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.traces.aggregate import _group_codes, _plain
from logsight.analysis.traces.spans import BOTTLENECK_FIELDS, TraceAnalysis

# Columns of :func:`trace_operations`, one row per (trace, service, operation).
TRACE_OPERATION_COLUMNS = (
    "trace_id", "root_service", "root_operation", "root_orphan", "service", "operation",
    "version", "trace_start_ns", "trace_duration_ms", "span_count", "errors", "on_critical_path",
    "critical_path_ms", "self_ms", "self_ms_values", "duration_ms_values", "is_root_operation",
    "trace_spans", "trace_orphans", "trace_clipped",
)

# Sums per (service, operation) that :func:`rank_operation_totals` takes.
TOTAL_COLUMNS = ("service", "operation", "count", "traces", "errors", "on_critical_path",
                 "critical_path_ms", "self_time_total_ms")


def _split(codes: np.ndarray, values: np.ndarray, g: int) -> list[list[float]]:
    """``values`` grouped by code ``0..g-1`` (each group's values in row order)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=g))[:-1]
    return [part.tolist() for part in np.split(values[order], bounds)]


def trace_operations(analysis: TraceAnalysis) -> pd.DataFrame:
    """One row per (trace, service, span name) of the analysis (:data:`TRACE_OPERATION_COLUMNS`):
    the trace's primary root (``root_orphan``: the root is a repaired orphan, not a span without
    a parent), the spans' version (the first one seen when a trace mixes them), span count,
    errors, spans on the critical path, critical-path ms and self ms contributed, and every
    span's self time and reported duration (percentiles over stored rows are over spans, as in
    the raw path). The trace's repair counts ride on its root operation's row only
    (``is_root_operation``) so that summing them over rows counts each trace once."""
    s = analysis.spans
    if len(s) == 0:
        return pd.DataFrame(columns=list(TRACE_OPERATION_COLUMNS))
    frame = pd.DataFrame({
        "trace_index": s["trace_index"].to_numpy(),
        "service": s["service"].to_numpy(dtype=object),
        "name": s["name"].to_numpy(dtype=object),
    })
    codes, out = _group_codes(frame, ("trace_index", "service", "name"))
    g = len(out)
    first = np.full(g, len(s), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(s)))
    version = (s["version"].astype(object).where(s["version"].notna(), "").to_numpy(dtype=object)
               if "version" in s.columns else np.full(len(s), "", dtype=object))
    t = analysis.traces.set_index("trace_index")
    tidx = out["trace_index"].to_numpy(dtype=np.int64)
    root_rows = t["root_index"].reindex(tidx).to_numpy(dtype=np.int64)
    root_code = codes[root_rows]
    is_root_op = root_code == np.arange(g)
    orphan = s["orphan"].to_numpy(dtype=bool)

    def wsum(col: str) -> np.ndarray:
        return np.bincount(codes, weights=s[col].to_numpy(dtype=np.float64), minlength=g)

    def trace_col(col: str) -> np.ndarray:
        return t[col].reindex(tidx).to_numpy()

    return pd.DataFrame({
        "trace_id": trace_col("trace_id").astype(object).astype(str),
        "root_service": trace_col("entry_service"),
        "root_operation": trace_col("entry_operation"),
        "root_orphan": orphan[root_rows],
        "service": out["service"].astype(str).to_numpy(dtype=object),
        "operation": out["name"].astype(str).to_numpy(dtype=object),
        "version": version[first].astype(str),
        "trace_start_ns": trace_col("start_ns").astype(np.int64),
        "trace_duration_ms": trace_col("duration_ms").astype(np.float64),
        "span_count": np.bincount(codes, minlength=g).astype(np.int64),
        "errors": wsum("error").round().astype(np.int64),
        "on_critical_path": wsum("on_critical_path").round().astype(np.int64),
        "critical_path_ms": wsum("critical_path_ms"),
        "self_ms": wsum("self_time_ms"),
        "self_ms_values": _split(codes, s["self_time_ms"].to_numpy(dtype=np.float64), g),
        "duration_ms_values": _split(codes, s["duration_ms"].to_numpy(dtype=np.float64), g),
        "is_root_operation": is_root_op,
        "trace_spans": np.where(is_root_op, trace_col("spans"), 0).astype(np.int64),
        "trace_orphans": np.where(is_root_op, trace_col("orphans"), 0).astype(np.int64),
        "trace_clipped": np.where(is_root_op, trace_col("clipped"), 0).astype(np.int64),
    })


def rank_operation_totals(
    totals: pd.DataFrame, *, top: int | None = 10,
    percentiles: Mapping[tuple[str, str], Mapping[str, float | None]] | None = None,
) -> list[dict[str, Any]]:
    """Bottleneck rows (:data:`BOTTLENECK_FIELDS`) from per-(service, operation) sums
    (:data:`TOTAL_COLUMNS`, e.g. an aggregation over :func:`trace_operations` rows): shares of
    the total critical-path time, ranked like the raw path. ``percentiles`` adds
    ``self_time_p50/p95_ms`` and ``latency_p50/p95/p99_ms`` per (service, operation)."""
    missing = [c for c in TOTAL_COLUMNS if c not in totals.columns]
    if missing:
        raise ValueError(f"operation totals lack column(s) {missing}")
    if len(totals) == 0:
        return []
    df = totals.sort_values(
        ["critical_path_ms", "self_time_total_ms", "service", "operation"],
        ascending=[False, False, True, True], kind="stable",
    ).reset_index(drop=True)
    total_cp = float(df["critical_path_ms"].sum())
    count = df["count"].to_numpy(dtype=np.float64)
    df["critical_path_share"] = (df["critical_path_ms"] / total_cp) if total_cp > 0 else 0.0
    df["on_critical_path_ratio"] = df["on_critical_path"].to_numpy(dtype=np.float64) / count
    df["error_rate"] = df["errors"].to_numpy(dtype=np.float64) / count
    df["rank"] = np.arange(1, len(df) + 1)
    if top is not None:
        df = df.head(top)
    rows: list[dict[str, Any]] = []
    for rec in df.to_dict("records"):
        pct = (percentiles or {}).get((str(rec["service"]), str(rec["operation"])), {})
        row = {k: _plain(rec[k]) if k in rec else _plain(pct.get(k, float("nan")))
               for k in BOTTLENECK_FIELDS}
        for k in ("count", "traces", "rank"):
            row[k] = int(row[k])
        rows.append(row)
    return rows

