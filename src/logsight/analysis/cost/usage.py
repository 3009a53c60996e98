"""Metrics documents -> one usage row per sample: what was used and what was allocated.

A sample covers the ``metricset.period`` before its timestamp (the sampler measures the
interval that just ended); without a period, the median gap between the samples of the same
(service, host), else ``default_period_s``.

Charged quantities follow how clusters bill: the scheduler reserves the request, so a service
pays for ``max(allocated, used)`` cores and GiB, allocated being the Kubernetes request when
the pod publishes it, else the cgroup limit, else nothing (then usage is charged); a GPU is
paid for while it is attached, busy or idle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from logsight.analysis.cost.model import GIB

USAGE_COLUMNS = ("timestamp", "start", "hours", "service", "service_version", "host",
                 "cpu_used", "cpu_alloc", "cpu_limit", "mem_used_gb", "mem_alloc_gb",
                 "mem_limit_gb", "gpu_count", "gpu_model", "gpu_util_pct", "gpu_mem_pct",
                 "throttled_ratio")
# the labels that allocate cost, as the sampler writes them (labels.<tag>)
TAGS = ("team", "model", "model_version", "stage")


def _num(frame: pd.DataFrame, *cols: str) -> pd.Series:
    """The first of ``cols`` present per row (float, NaN where none is)."""
    out = pd.Series(np.nan, index=frame.index, dtype=float)
    for c in cols:
        if c in frame:
            out = out.fillna(pd.to_numeric(frame[c], errors="coerce"))
    return out


def _str(frame: pd.DataFrame, *cols: str) -> pd.Series:
    out = pd.Series("", index=frame.index, dtype=object)
    for c in reversed(cols):  # the first column wins
        if c in frame:
            v = frame[c]
            out = v.where(v.notna() & (v.astype(str) != ""), out).astype(str)
    return out


def usage_frame(metrics: pd.DataFrame, *, default_period_s: float = 15.0) -> pd.DataFrame:
    """One row per metrics document (flattened, dotted columns) with :data:`USAGE_COLUMNS`
    and ``tag.<name>`` for :data:`TAGS` (empty string: not labelled)."""
    if metrics.empty or "@timestamp" not in metrics:
        return pd.DataFrame(columns=[*USAGE_COLUMNS, *(f"tag.{t}" for t in TAGS)])
    m = metrics
    ts = pd.to_datetime(m["@timestamp"], utc=True, format="ISO8601")
    out = pd.DataFrame({"timestamp": ts, "service": _str(m, "service.name"),
                        "service_version": _str(m, "service.version"),
                        "host": _str(m, "host.name", "host.hostname")}, index=m.index)
    period_s = _num(m, "metricset.period") / 1000.0
    if period_s.isna().any():
        gaps = (out.sort_values("timestamp").groupby(["service", "host"])["timestamp"]
                .diff().dt.total_seconds())
        median = gaps.groupby([out["service"], out["host"]]).transform("median")
        period_s = period_s.fillna(median).fillna(default_period_s)
    out["hours"] = period_s / 3600.0
    out["start"] = ts - pd.to_timedelta(period_s, unit="s")
    out["cpu_used"] = _num(m, "container.cpu.pct", "process.cpu.pct") / 100.0
    out["cpu_alloc"] = _num(m, "container.cpu.request_cores", "container.cpu.limit_cores")
    out["mem_used_gb"] = _num(m, "container.memory.usage_bytes",
                              "process.memory.rss_bytes") / GIB
    out["mem_alloc_gb"] = _num(m, "container.memory.request_bytes",
                               "container.memory.limit_bytes") / GIB
    out["cpu_limit"] = _num(m, "container.cpu.limit_cores")
    out["mem_limit_gb"] = _num(m, "container.memory.limit_bytes") / GIB
    out["gpu_count"] = _num(m, "gpu.count").fillna(0.0)
    out["gpu_model"] = _str(m, "gpu.model")
    out["gpu_util_pct"] = _num(m, "gpu.utilization_pct")
    out["gpu_mem_pct"] = 100.0 * _num(m, "gpu.memory.used_bytes") / _num(
        m, "gpu.memory.total_bytes")
    out["throttled_ratio"] = _num(m, "container.cpu.throttled_ratio")
    for t in TAGS:
        out[f"tag.{t}"] = _str(m, f"labels.{t}")
    return out.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)
