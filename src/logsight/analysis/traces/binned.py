"""Latency regressions from aggregated histograms (counts per log-spaced bin), not raw spans:
what the engine's ``range`` aggregation over the stored per-trace documents gives.

The test is the one-sided Mann-Whitney U (candidate > baseline) on binned data: every bin is a
group of ties (mid-ranks), normal approximation with the tie correction and a continuity
correction of 0.5. Binning only merges values that are close (bins a few percent wide), so the
test loses little against the one on raw values; quantiles interpolate linearly within a bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from logsight.analysis.drift import benjamini_hochberg


def log_edges(lo_ms: float = 0.01, hi_ms: float = 600_000.0, per_decade: int = 40
              ) -> np.ndarray:
    """Bin edges in ms: 0, then log-spaced from ``lo_ms`` to ``hi_ms`` (``per_decade`` bins a
    decade: about 6 % wide at 40)."""
    decades = np.log10(hi_ms) - np.log10(lo_ms)
    return np.concatenate([[0.0], np.logspace(np.log10(lo_ms), np.log10(hi_ms),
                                              int(round(decades * per_decade)) + 1)])


EDGES = log_edges()


def binned_mwu_greater(candidate: np.ndarray, baseline: np.ndarray, *,
                       continuity: float = 0.5) -> float:
    """One-sided p-value that the candidate's values tend to be larger, from counts per bin
    (same bins on both sides, ordered)."""
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    n1, n2 = c.sum(), b.sum()
    if n1 == 0 or n2 == 0:
        return 1.0
    below = np.cumsum(b) - b  # baseline values in lower bins
    u = float(np.sum(c * (below + 0.5 * b)))
    n = n1 + n2
    t = c + b
    tie = float(np.sum(t**3 - t)) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie)
    if var <= 0:
        return 1.0  # every value in one bin: no evidence either way
    z = (u - n1 * n2 / 2.0 - continuity) / np.sqrt(var)
    return float(stats.norm.sf(z))


def binned_quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The ``q`` quantile from counts per bin ``[edges[i], edges[i+1])`` (linear within the
    bin; NaN without values)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(counts)
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, len(counts) - 1)
    before = cum[i] - counts[i]
    frac = (target - before) / counts[i] if counts[i] > 0 else 0.0
    return float(edges[i] + (edges[i + 1] - edges[i]) * frac)


@dataclass(frozen=True)
class BinnedRegression:
    """One operation, candidate against baseline, from histograms of per-trace values
    (``metric``: ``self_ms`` or ``critical_path_ms`` per trace)."""

    service: str
    operation: str
    metric: str
    baseline_count: int
    candidate_count: int
    baseline_p95_ms: float
    candidate_p95_ms: float
    p95_ratio: float
    p_value: float  # Benjamini-Hochberg adjusted over every comparison made
    regressed: bool


def compare_histograms(
    baseline: Mapping[tuple[str, str, str], np.ndarray],
    candidate: Mapping[tuple[str, str, str], np.ndarray],
    *, edges: np.ndarray = EDGES, alpha: float = 0.01, min_ratio: float = 1.2,
    min_count: int = 20, epsilon_ms: float = 1e-3,
) -> list[BinnedRegression]:
    """Compare per (service, operation, metric) histograms present on both sides with at least
    ``min_count`` values each; regressed: adjusted p < ``alpha`` and p95 ratio >=
    ``min_ratio`` (``epsilon_ms`` keeps a zero baseline finite). Regressions first, then by
    p-value."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    keys: Sequence[tuple[str, str, str]] = sorted(
        k for k in candidate if k in baseline
        and baseline[k].sum() >= min_count and candidate[k].sum() >= min_count)
    if not keys:
        return []
    raw_p = np.array([binned_mwu_greater(candidate[k], baseline[k]) for k in keys])
    adj = np.asarray(benjamini_hochberg(raw_p), dtype=np.float64)
    out: list[BinnedRegression] = []
    for k, p in zip(keys, adj, strict=True):
        b95 = binned_quantile(baseline[k], edges, 0.95)
        c95 = binned_quantile(candidate[k], edges, 0.95)
        ratio = (c95 + epsilon_ms) / (b95 + epsilon_ms)
        out.append(BinnedRegression(
            service=k[0], operation=k[1], metric=k[2], baseline_count=int(baseline[k].sum()),
            candidate_count=int(candidate[k].sum()), baseline_p95_ms=b95,
            candidate_p95_ms=c95, p95_ratio=float(ratio), p_value=float(p),
            regressed=bool(p < alpha and ratio >= min_ratio)))
    out.sort(key=lambda r: (not r.regressed, r.p_value, r.service, r.operation, r.metric))
    return out
