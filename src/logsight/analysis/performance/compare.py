"""Comparisons: per-row losses of a candidate against a baseline (degradation, version
regression), and KPIs per version with bootstrap intervals and their correlation with accuracy."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from logsight.analysis.performance.labels import UNKNOWN_VERSION, Task, _version_col, infer_task
from logsight.analysis.performance.metrics import losses


# -- comparisons -----------------------------------------------------------------------------
@dataclass
class Comparison:
    """Mean loss of ``candidate`` minus ``baseline`` (positive = candidate worse), with a
    bootstrap percentile interval and Welch's t-test p-value."""

    baseline: str
    candidate: str
    metric: str
    baseline_value: float | None
    candidate_value: float | None
    loss_diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_baseline: int
    n_candidate: int
    worse: bool


def compare_losses(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    baseline_name: str,
    candidate_name: str,
    metric: str,
    alpha: float = 0.05,
    min_effect: float = 0.02,
    min_labels: int = 30,
    n_boot: int = 1000,
    random_state: int | None = 0,
    max_draws: int = 4_000_000,
) -> Comparison:
    """``worse`` when the candidate's mean loss is higher by at least ``min_effect``, the
    bootstrap interval excludes 0 and Welch's p < ``alpha`` (both sides need ``min_labels``).
    At most ``max_draws`` resample indices are in memory at a time; the result does not
    depend on it."""
    if max_draws < 1:
        raise ValueError(f"max_draws must be at least 1, got {max_draws}")
    nb, nc = len(baseline), len(candidate)
    bval = (1 - baseline.mean() if metric == "accuracy" else baseline.mean()) if nb else None
    cval = (1 - candidate.mean() if metric == "accuracy" else candidate.mean()) if nc else None
    if nb < min_labels or nc < min_labels:
        return Comparison(baseline_name, candidate_name, metric, _f(bval), _f(cval), None,
                          None, None, None, nb, nc, False)
    diff = float(candidate.mean() - baseline.mean())
    rng = np.random.default_rng(random_state)
    # all baseline resamples, then all candidate ones: the same draws, in the same order, as
    # one (n_boot, n) matrix per side, without holding n_boot * n indices at once
    base_means = _resample_means(baseline, n_boot, rng, max_draws)
    boots = _resample_means(candidate, n_boot, rng, max_draws) - base_means
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    if np.all(baseline == baseline[0]) and np.all(candidate == candidate[0]):
        p = 0.0 if candidate[0] != baseline[0] else 1.0
    else:
        p = float(stats.ttest_ind(candidate, baseline, equal_var=False).pvalue)
    worse = diff >= min_effect and lo > 0 and p < alpha
    return Comparison(baseline_name, candidate_name, metric, _f(bval), _f(cval), diff,
                      float(lo), float(hi), p, nb, nc, bool(worse))


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class KpiReport:
    """Mean of one KPI for one model version, with a bootstrap percentile interval
    (``1 - alpha`` coverage, ``n_boot`` resamples; ``random_state`` makes it repeatable)."""

    name: str
    version: str
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    interval: str = "bootstrap"
    n_boot: int = 0


@dataclass
class KpiChange:
    """A version's KPI against the baseline version's in the same window. ``worse`` when the
    candidate's interval lies entirely on the bad side of the baseline's (below it, or above
    it for a KPI where lower is better): two non-overlapping 95% intervals, a conservative
    test."""

    name: str
    baseline: str
    candidate: str
    baseline_mean: float | None
    candidate_mean: float | None
    baseline_ci: tuple[float | None, float | None]
    candidate_ci: tuple[float | None, float | None]
    difference: float | None  # candidate - baseline
    relative_change: float | None  # difference / |baseline mean|
    n_baseline: int
    n_candidate: int
    direction: str  # "below" (higher is better) or "above" (lower is better)
    worse: bool


def _resample_means(v: np.ndarray, n_boot: int, rng: np.random.Generator,
                    max_draws: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``v``, drawn row by row in chunks of
    at most ``max_draws`` indices; a chunked draw consumes ``rng`` exactly as one
    ``(n_boot, len(v))`` draw would, so the result does not depend on ``max_draws``."""
    n = len(v)
    means = np.empty(n_boot)
    step = max(1, max_draws // n)
    for i in range(0, n_boot, step):
        k = min(step, n_boot - i)
        means[i:i + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return means


def bootstrap_mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    n_boot: int = 1000,
    random_state: int | None = 0,
    max_draws: int = 4_000_000,
) -> tuple[float, float]:
    """Percentile bootstrap interval (``1 - alpha``) of the mean of ``values``: ``n_boot``
    resamples with replacement drawn with ``numpy.random.default_rng(random_state)``, at most
    ``max_draws`` indices in memory at a time (the cost is ``n_boot * len(values)`` draws)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not len(v):
        raise ValueError("bootstrap needs a non-empty 1-d sample")
    if np.isnan(v).any():
        raise ValueError("bootstrap sample has NaN values")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if np.all(v == v[0]):  # every resample has the same mean
        return float(v[0]), float(v[0])
    means = _resample_means(v, n_boot, np.random.default_rng(random_state), max_draws)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def kpi_by_version(
    kpis: pd.DataFrame, *, alpha: float = 0.05, n_boot: int = 1000,
    random_state: int | None = 0,
) -> list[KpiReport]:
    """Mean KPI per (name, version) with a bootstrap percentile interval
    (:func:`bootstrap_mean_interval`); KPIs are not normal (revenue is skewed, conversion is
    0/1), so no Student-t interval."""
    out: list[KpiReport] = []
    if kpis.empty:
        return out
    k = kpis.assign(model_version=_version_col(kpis))
    for (name, version), g in k.groupby(["kpi_name", "model_version"], sort=True):
        v = g["kpi_value"].astype(float).dropna().to_numpy()
        if not len(v):
            continue
        lo, hi = bootstrap_mean_interval(v, alpha=alpha, n_boot=n_boot,
                                         random_state=random_state)
        out.append(KpiReport(str(name), str(version), len(v), float(v.mean()), lo, hi,
                             "bootstrap", n_boot))
    return out


def compare_kpis(
    reports: Sequence[KpiReport],
    *,
    baseline_version: str | None = None,
    lower_is_better: Collection[str] = (),
    min_kpi_events: int = 30,
) -> list[KpiChange]:
    """Every version's KPI against the baseline version's, per KPI name. The baseline is
    ``baseline_version`` when it has the KPI, else the version with the most KPI events
    (:func:`performance_report` passes the version seen first, so a new version that took
    most of the traffic does not become the baseline).
    Only versions with at least ``min_kpi_events`` events take part (one event has a
    zero-width bootstrap interval and would look like a certain change), and events without
    a model version (grouped as ``unknown``) are never compared: they are no version."""
    if min_kpi_events < 1:
        raise ValueError(f"min_kpi_events must be at least 1, got {min_kpi_events}")
    out: list[KpiChange] = []
    by_name: dict[str, list[KpiReport]] = {}
    for r in reports:
        by_name.setdefault(r.name, []).append(r)
    for name, rows in sorted(by_name.items()):
        rows = [r for r in rows if r.mean is not None and r.n >= min_kpi_events
                and r.version != UNKNOWN_VERSION]
        if len(rows) < 2:
            continue
        versions = {r.version: r for r in rows}
        base = versions.get(baseline_version) if baseline_version is not None else None
        if base is None:
            base = max(rows, key=lambda r: (r.n, r.version))
        lower = name in lower_is_better
        for r in rows:
            if r is base:
                continue
            diff = float(r.mean - base.mean)  # type: ignore[operator]  # filtered above
            rel = diff / abs(base.mean) if base.mean else None
            if lower:
                worse = r.ci_low is not None and base.ci_high is not None and (
                    r.ci_low > base.ci_high)
            else:
                worse = r.ci_high is not None and base.ci_low is not None and (
                    r.ci_high < base.ci_low)
            out.append(KpiChange(
                name=name, baseline=base.version, candidate=r.version,
                baseline_mean=base.mean, candidate_mean=r.mean,
                baseline_ci=(base.ci_low, base.ci_high), candidate_ci=(r.ci_low, r.ci_high),
                difference=diff, relative_change=_f(rel), n_baseline=base.n,
                n_candidate=r.n, direction="above" if lower else "below", worse=bool(worse),
            ))
    return out


def kpi_accuracy_correlation(
    joined: pd.DataFrame, kpis: pd.DataFrame, *, bucket: str = "1h", task: Task | None = None
) -> dict[str, dict[str, Any]]:
    """Spearman correlation between per-window model quality (accuracy, or -MAE, over the
    labelled predictions made in the window) and the per-window mean of each KPI: does the KPI
    move with the model? Per KPI: ``rho``, ``p_value`` (None with fewer than 3 windows or a
    constant side), ``n`` (windows with both), ``window`` and ``method``."""
    if kpis.empty or "timestamp" not in joined or not joined["labelled"].any():
        return {}
    task = task or infer_task(joined)
    lab = joined[joined["labelled"]].copy()
    lab["_q"] = -losses(lab, task)
    lab["_b"] = pd.to_datetime(lab["timestamp"], utc=True).dt.floor(bucket)
    quality = lab.groupby("_b")["_q"].mean()
    out: dict[str, dict[str, float | None]] = {}
    k = kpis.copy()
    k["_b"] = pd.to_datetime(k["timestamp"], utc=True).dt.floor(bucket)
    for name, g in k.groupby("kpi_name"):
        kpi = g.groupby("_b")["kpi_value"].mean()
        both = pd.concat([quality, kpi], axis=1, join="inner").dropna()
        base: dict[str, Any] = {"method": "spearman", "n": len(both), "window": bucket,
                                "buckets": float(len(both))}
        if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
            out[str(name)] = {**base, "rho": None, "p_value": None}
            continue
        res = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1])
        out[str(name)] = {**base, "rho": _f(res.statistic), "p_value": _f(res.pvalue)}
    return out
