"""Per-operation aggregates of an analysis (critical-path time and share, self time and
latency percentiles, error rate), the bottleneck ranking and its ``trace_bottleneck`` findings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.traces.spans import BOTTLENECK_FIELDS, OPERATION_KEYS, TraceAnalysis
from logsight.findings import Finding


# -- aggregation -------------------------------------------------------------------------------
def group_quantiles(codes: np.ndarray, values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of ``values`` per group code ``0..G-1`` (linear interpolation, numpy's default
    method), shape (G, len(qs)); NaN for empty groups."""
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    g = int(codes.max(initial=-1)) + 1
    out = np.full((g, len(qs)), np.nan)
    if g == 0:
        return out
    # sort by value, then stably by group: small integer codes take numpy's radix sort
    by_value = np.argsort(values, kind="stable")
    small = codes.astype(np.uint16) if g <= np.iinfo(np.uint16).max else codes
    order = by_value[np.argsort(small[by_value], kind="stable")]
    v = values[order]
    counts = np.bincount(codes, minlength=g)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    for j, q in enumerate(qs):
        pos = starts[has] + q * (counts[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        out[has, j] = v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return out


def entry_points(analysis: TraceAnalysis) -> pd.DataFrame:
    """``entry_service`` / ``entry_operation`` (the trace's primary root) for every span row."""
    s = analysis.spans
    roots = s["root_index"].to_numpy()
    return pd.DataFrame(
        {
            "entry_service": s["service"].take(roots).to_numpy(dtype=object),
            "entry_operation": s["name"].take(roots).to_numpy(dtype=object),
        }
    )


def _group_codes(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense group codes (in order of first appearance) and one row of key values per group."""
    n = len(frame)
    combined = np.zeros(n, dtype=np.int64)
    for c in keys:
        codes, uniques = pd.factorize(frame[c], use_na_sentinel=False)
        combined, _ = pd.factorize(combined * len(uniques) + codes.astype(np.int64))
        combined = combined.astype(np.int64)
    g = int(combined.max(initial=-1)) + 1
    first = np.empty(g, dtype=np.int64)
    first[combined[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first occurrence
    key_frame = frame[list(keys)].iloc[first].reset_index(drop=True)
    for c in keys:
        key_frame[c] = key_frame[c].astype(object).where(key_frame[c].notna(), "")
    return combined, key_frame


def aggregate_operations(
    analysis: TraceAnalysis,
    *,
    keys: Sequence[str] = OPERATION_KEYS,
    share_within: Sequence[str] = (),
) -> pd.DataFrame:
    """Per group of ``keys`` (default (service, name); ``entry_service``/``entry_operation``
    are available too): ``count``, ``traces``, ``errors``, ``error_rate``,
    ``latency_p50/p95/p99_ms``, ``self_time_p50/p95_ms``, ``self_time_total_ms``,
    ``critical_path_ms`` (critical time contributed), ``critical_path_share`` (of all critical
    time, or of the critical time of the rows sharing ``share_within`` keys, e.g. the entry
    point), ``on_critical_path`` (spans on it), ``on_critical_path_ratio`` and
    ``critical_path_traces``; ranked by ``critical_path_ms`` (then ``self_time_total_ms``),
    best first, with a 1-based ``rank``."""
    s = analysis.spans
    keys = list(keys)
    if any(k in ("entry_service", "entry_operation") and k not in s.columns for k in keys):
        s = pd.concat([s, entry_points(analysis)], axis=1)
    unknown = [c for c in [*keys, *share_within] if c not in s.columns]
    if unknown:
        raise ValueError(f"unknown grouping column(s) {unknown}")
    if len(s) == 0:
        return pd.DataFrame(columns=["rank", *keys, "count", "critical_path_ms"])
    codes, out = _group_codes(s, keys)
    g = len(out)
    count = np.bincount(codes, minlength=g)
    errors = np.bincount(codes, weights=s["error"].to_numpy(dtype=np.float64), minlength=g)
    oncp = s["on_critical_path"].to_numpy(dtype=bool)
    cp = np.bincount(codes, weights=s["critical_path_ms"].to_numpy(), minlength=g)
    self_ms = s["self_time_ms"].to_numpy()
    lat = group_quantiles(codes, s["duration_ms"].to_numpy(), (0.5, 0.95, 0.99))
    selfq = group_quantiles(codes, self_ms, (0.5, 0.95))
    tindex = s["trace_index"].to_numpy(dtype=np.int64)
    pair = codes * (int(tindex.max()) + 1) + tindex
    width = int(tindex.max()) + 1
    traces = np.bincount(pd.unique(pair) // width, minlength=g)
    cp_traces = np.bincount(pd.unique(pair[oncp]) // width, minlength=g)
    out["count"] = count
    out["traces"] = traces
    out["errors"] = errors.astype(np.int64)
    out["error_rate"] = errors / count
    out["latency_p50_ms"] = lat[:, 0]
    out["latency_p95_ms"] = lat[:, 1]
    out["latency_p99_ms"] = lat[:, 2]
    out["self_time_p50_ms"] = selfq[:, 0]
    out["self_time_p95_ms"] = selfq[:, 1]
    out["self_time_total_ms"] = np.bincount(codes, weights=self_ms, minlength=g)
    out["critical_path_ms"] = cp
    out["on_critical_path"] = np.bincount(codes, weights=oncp, minlength=g).astype(np.int64)
    out["on_critical_path_ratio"] = out["on_critical_path"] / count
    out["critical_path_traces"] = cp_traces
    if share_within:
        denom = out.groupby(list(share_within), sort=False)["critical_path_ms"].transform("sum")
    else:
        denom = pd.Series(cp.sum(), index=out.index)
    safe = np.where(denom.to_numpy() > 0, denom.to_numpy(), 1.0)
    out["critical_path_share"] = np.where(denom.to_numpy() > 0, cp / safe, 0.0)
    out = out.sort_values(
        ["critical_path_ms", "self_time_total_ms", *keys],
        ascending=[False, False, *([True] * len(keys))],
        kind="stable",
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def rank_bottlenecks(analysis: TraceAnalysis, *, top: int | None = 10) -> list[dict[str, Any]]:
    """Operations ranked by critical-path time contributed, best first, as plain dicts with
    :data:`BOTTLENECK_FIELDS` (``operation`` is the span name)."""
    agg = aggregate_operations(analysis)
    if len(agg) == 0:
        return []
    agg = agg.rename(columns={"name": "operation"})
    if top is not None:
        agg = agg.head(top)
    rows: list[dict[str, Any]] = []
    for rec in agg[list(BOTTLENECK_FIELDS)].to_dict("records"):
        rows.append({k: _plain(v) for k, v in rec.items()})
    return rows


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def bottleneck_findings(
    rows: Sequence[Mapping[str, Any]],
    *,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    min_share: float = 0.2,
    min_count: int = 5,
    namespace: str | None = None,
) -> list[Finding]:
    """``trace_bottleneck`` findings for ranked rows holding at least ``min_share`` of the
    critical-path time (severity: >= 0.5 high, >= 0.3 medium, else low)."""
    out: list[Finding] = []
    for row in rows:
        share = float(row.get("critical_path_share") or 0.0)
        if share < min_share or int(row.get("count") or 0) < min_count:
            continue
        severity = "high" if share >= 0.5 else "medium" if share >= 0.3 else "low"
        svc, op = str(row["service"]), str(row["operation"])
        out.append(
            Finding(
                kind="trace_bottleneck",
                title=f"{svc} {op} holds {share:.0%} of the critical path",
                summary=(
                    f"{op} in {svc} contributed {float(row['critical_path_ms']):.1f} ms of "
                    f"critical-path time ({share:.1%}); self time p95 "
                    f"{_fmt(row.get('self_time_p95_ms'))} ms, latency p95 "
                    f"{_fmt(row.get('latency_p95_ms'))} ms over {int(row['count'])} spans."
                ),
                severity=severity,
                score=share,
                service=svc,
                subject=op,
                operation=op,
                window_start=window_start,
                window_end=window_end,
                evidence=dict(row),
                namespace=namespace,
            )
        )
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.1f}"
