"""Anomalies in the resource metrics (the usage rows of
:func:`logsight.analysis.cost.usage_frame`): a memory leak trend, CPU saturation, GPU memory
near its limit. Each test is a registered pure function of one group's rows returning a
result dataclass (score, threshold, direction), like the drift tests; the findings are made
from the results that cross their threshold.

* ``memory_leak``: least-squares slope of memory in use against time per (service, host);
  a leak when the line explains the series (``r2 >= min_r2``), memory grew by at least
  ``min_growth`` of where it started, and the slope is positive; the score is the growth in
  GiB per hour, with the hours left until the limit where there is one.
* ``cpu_saturation``: the share of samples throttled in more than ``throttled_ratio`` of their
  CFS periods, or using ``busy_share`` of their CPU limit; saturated when that share of the
  window is at least ``min_share``. ``onset`` is the first sample of the first run of
  ``run`` saturated samples: the job lines latency up against it.
* ``gpu_memory_pressure``: p95 of GPU memory in use as a share of the device memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from logsight.findings import Finding


@dataclass
class ResourceTest:
    """One test's verdict on one group's rows."""

    test: str
    service: str
    host: str
    score: float
    threshold: float
    direction: Literal["above", "below"]
    anomalous: bool
    details: dict[str, Any] = field(default_factory=dict)
    onset: datetime | None = None


RESOURCE_TESTS: dict[str, Callable[..., ResourceTest | None]] = {}


def register(name: str) -> Callable[[Callable[..., ResourceTest | None]],
                                    Callable[..., ResourceTest | None]]:
    def deco(fn: Callable[..., ResourceTest | None]) -> Callable[..., ResourceTest | None]:
        RESOURCE_TESTS[name] = fn
        return fn
    return deco


def _hours(rows: pd.DataFrame) -> np.ndarray:
    t = rows["timestamp"]
    return np.asarray((t - t.iloc[0]).dt.total_seconds(), dtype=float) / 3600.0


@register("memory_leak")
def memory_leak(rows: pd.DataFrame, *, min_samples: int = 20, min_hours: float = 1.0,
                min_r2: float = 0.8, min_growth: float = 0.25) -> ResourceTest | None:
    """Least-squares memory trend of one (service, host), rows in time order."""
    r = rows[rows["mem_used_gb"].notna()]
    if len(r) < min_samples:
        return None
    x, y = _hours(r), r["mem_used_gb"].to_numpy(dtype=float)
    if x[-1] < min_hours:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    fit = slope * x + intercept
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - fit) ** 2)) / ss_tot if ss_tot > 0 else 0.0
    start, end = float(fit[0]), float(fit[-1])
    growth = (end - start) / start if start > 0 else 0.0
    limit = r["mem_limit_gb"].dropna()
    to_limit = None
    if len(limit) and slope > 0:
        to_limit = max(0.0, (float(limit.iloc[-1]) - float(y[-1])) / slope)
    return ResourceTest(
        "memory_leak", str(r["service"].iloc[0]), str(r["host"].iloc[0]), float(slope),
        0.0, "above", bool(slope > 0 and r2 >= min_r2 and growth >= min_growth),
        {"gb_per_hour": float(slope), "r2": r2, "growth": growth, "start_gb": float(y[0]),
         "end_gb": float(y[-1]), "hours": float(x[-1]), "hours_to_limit": to_limit,
         "limit_gb": float(limit.iloc[-1]) if len(limit) else None})


@register("cpu_saturation")
def cpu_saturation(rows: pd.DataFrame, *, throttled_ratio: float = 0.25,
                   busy_share: float = 0.9, min_share: float = 0.2, min_samples: int = 10,
                   run: int = 3) -> ResourceTest | None:
    """Throttled or at-the-limit samples of one (service, host)."""
    if len(rows) < min_samples:
        return None
    throttled = rows["throttled_ratio"].fillna(0.0) > throttled_ratio
    busy = (rows["cpu_used"] >= busy_share * rows["cpu_limit"]).fillna(False)
    sat = (throttled | busy).to_numpy()
    share = float(sat.mean())
    onset = None
    # the first run of `run` saturated samples: a rolling sum over the boolean series
    runs = np.convolve(sat.astype(int), np.ones(run, dtype=int), mode="valid")
    first = np.flatnonzero(runs == run)
    if len(first):
        onset = pd.Timestamp(rows["timestamp"].iloc[int(first[0])]).to_pydatetime()
    return ResourceTest(
        "cpu_saturation", str(rows["service"].iloc[0]), str(rows["host"].iloc[0]), share,
        min_share, "above", bool(share >= min_share and onset is not None),
        {"saturated_share": share, "throttled_samples": int(throttled.sum()),
         "busy_samples": int(busy.sum()), "samples": len(rows),
         "mean_throttled_ratio": float(rows["throttled_ratio"].fillna(0.0).mean())},
        onset=onset)


@register("gpu_memory_pressure")
def gpu_memory_pressure(rows: pd.DataFrame, *, max_pct: float = 90.0, quantile: float = 0.95,
                        min_samples: int = 10) -> ResourceTest | None:
    r = rows[rows["gpu_mem_pct"].notna()]
    if len(r) < min_samples:
        return None
    p = float(np.quantile(r["gpu_mem_pct"], quantile))
    return ResourceTest("gpu_memory_pressure", str(r["service"].iloc[0]), str(r["host"].iloc[0]),
                        p, max_pct, "above", p >= max_pct,
                        {"p95_pct": p, "samples": len(r)})


def run_tests(usage: pd.DataFrame, *, tests: tuple[str, ...] = tuple(RESOURCE_TESTS),
              options: dict[str, dict[str, Any]] | None = None) -> list[ResourceTest]:
    """Every test on every (service, host) of the usage rows."""
    out: list[ResourceTest] = []
    if usage.empty:
        return out
    for _, rows in usage.sort_values("timestamp").groupby(["service", "host"], sort=True):
        rows = rows.reset_index(drop=True)
        for name in tests:
            result = RESOURCE_TESTS[name](rows, **(options or {}).get(name, {}))
            if result is not None:
                out.append(result)
    return out


def resource_findings(results: list[ResourceTest], *, window_start: datetime,
                      window_end: datetime, namespace: str | None = None,
                      latency: dict[tuple[str, str], dict[str, float]] | None = None
                      ) -> list[Finding]:
    """Findings of the anomalous results; ``latency`` (keyed by (service, host)) adds what
    the service's p95 did around a saturation's onset."""
    out: list[Finding] = []
    for r in results:
        if not r.anomalous:
            continue
        d, where = r.details, f"{r.service!r} on {r.host}" if r.host else repr(r.service)
        ev: dict[str, Any] = {**d, "test": r.test, "score": r.score, "threshold": r.threshold,
                              "direction": r.direction, "host": r.host, "onset": r.onset}
        if r.test == "memory_leak":
            left = d["hours_to_limit"]
            title = f"{r.service}: memory grows {d['gb_per_hour']:.2f} GiB/h"
            summary = (f"Memory of {where} grew from {d['start_gb']:.2f} to {d['end_gb']:.2f} "
                       f"GiB over {d['hours']:.1f} h, a steady {d['gb_per_hour']:.3f} GiB/h "
                       f"(r2 {d['r2']:.2f}): a leak" + (
                           f"; at this rate it reaches its {d['limit_gb']:g} GiB limit in "
                           f"{left:.1f} h" if left is not None else "") + ".")
            sev = "high" if left is not None and left < 24 else "medium"
        elif r.test == "cpu_saturation":
            title = f"{r.service}: CPU saturated ({100 * r.score:.0f}% of samples)"
            summary = (f"{where} was CPU-throttled or at its CPU limit in "
                       f"{100 * r.score:.0f}% of {d['samples']} samples (mean throttled ratio "
                       f"{d['mean_throttled_ratio']:.2f}), from {r.onset:%Y-%m-%d %H:%M}")
            lat = (latency or {}).get((r.service, r.host)) or (latency or {}).get(
                (r.service, ""))
            if lat and lat.get("before_ms") and lat.get("after_ms"):
                ev["latency_p95_before_ms"] = lat["before_ms"]
                ev["latency_p95_after_ms"] = lat["after_ms"]
                summary += (f"; p95 latency rose from {lat['before_ms']:.0f} ms to "
                            f"{lat['after_ms']:.0f} ms when CPU throttling began"
                            if lat["after_ms"] > lat["before_ms"] else
                            f"; p95 latency stayed at {lat['after_ms']:.0f} ms")
            summary += "."
            sev = "high" if lat and lat.get("after_ms", 0) > 1.2 * lat.get("before_ms", 1e18) \
                else "medium"
        else:
            title = f"{r.service}: GPU memory at {r.score:.0f}% (p95)"
            summary = (f"GPU memory of {where} was at {r.score:.1f}% of the device's at p95 "
                       f"(>= {r.threshold:g}%): the next larger batch or model runs out of "
                       "memory.")
            sev = "medium"
        out.append(Finding(
            kind=r.test, title=title, summary=summary, severity=sev, score=r.score,
            service=r.service, subject=r.host or r.test,
            window_start=window_start,  # the window, not the onset: re-runs keep the id
            window_end=window_end, namespace=namespace, evidence=ev))
    return out
