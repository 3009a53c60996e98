"""Data drift between a reference and a current sample (pure: arrays/frames in, dataclasses out).

Two ways to compare, with the same statistics and the same presets (see docs/drift.md):

* :func:`compare` works on raw rows (files, small windows). KS, chi-square, Jensen-Shannon and
  Wasserstein equal scipy's values on the same data; PSI is the textbook formula on bins cut at
  the reference quantiles.
* :func:`build_profile` summarises the reference once (fine quantile histogram per numeric
  feature, category counts per categorical feature); :func:`compare_profile` compares it with a
  current window given only as counts on the profile's bin edges (what a ``range`` / ``terms``
  aggregation returns). PSI and JS are then exact (their bins are a subset of the profile's
  edges); KS and Wasserstein are approximations whose error is documented and bounded.

Every test is a registered pure function (``DRIFT_TESTS``) returning a :class:`TestResult`
with score, threshold and direction, as in Evidently.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from logsight.findings import Finding

NUMERIC = "numeric"
CATEGORICAL = "categorical"
FeatureType = Literal["numeric", "categorical"]

DEFAULT_BINS = 10
# PSI is undefined for an empty bin (log 0); Evidently and most PSI write-ups replace the
# empty-bin frequency by a small constant. 1e-4 keeps one empty bin's contribution bounded
# (at most ~0.92 for a bin holding 10% on the other side) while staying far below any real bin.
PSI_EPSILON = 1e-4
# Profiles keep this many reference-quantile bins for KS/Wasserstein: the binned KS error is
# bounded by the largest bin mass, i.e. about 1/FINE_BINS for the reference.
FINE_BINS = 100
# The scipy ks_2samp "auto" mode computes exact p-values up to this size, asymptotic above.
_SCIPY_KS_EXACT_MAX_N = 10_000
_SCIPY_KS_FALLBACK = r"ks_2samp: Exact calculation unsuccessful"
_KS_LIMIT_EN = 100_000
OTHER_CATEGORY = "__other__"


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftThresholds:
    """Drift thresholds; p-value tests drift *below*, distance tests drift *above*."""

    ks_p_value: float = 0.05
    chisquare_p_value: float = 0.05
    psi: float = 0.2
    psi_warning: float = 0.1
    jensenshannon: float = 0.1
    wasserstein: float = 0.1

    def __post_init__(self) -> None:
        # a p-value threshold outside (0, 1) or a non-positive distance threshold makes every
        # feature drift (or none): always a mistake, so it is refused rather than obeyed
        for name in ("ks_p_value", "chisquare_p_value"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} threshold must be in (0, 1), got {v}")
        if not 0.0 < self.jensenshannon <= 1.0:
            raise ValueError(f"jensenshannon threshold must be in (0, 1], got "
                             f"{self.jensenshannon}")
        for name in ("psi", "wasserstein"):
            v = getattr(self, name)
            if not v > 0.0:
                raise ValueError(f"{name} threshold must be > 0, got {v}")
        if not self.psi_warning >= 0.0:
            raise ValueError(f"psi_warning threshold must be >= 0, got {self.psi_warning}")

    def for_test(self, test: str) -> float:
        """The threshold of ``test``: a field here for the built-in tests, else the default
        the test was registered with."""
        known = {
            "ks": self.ks_p_value,
            "chisquare": self.chisquare_p_value,
            "psi": self.psi,
            "jensenshannon": self.jensenshannon,
            "wasserstein": self.wasserstein,
        }
        return known[test] if test in known else DRIFT_TESTS[test].threshold


@dataclass(frozen=True)
class DriftConfig:
    """How features are compared. ``tests`` overrides the preset per column
    (``{"age": "wasserstein"}``); ``correction="bh"`` applies Benjamini-Hochberg to the
    p-values of the p-value tests across features before they are compared with the threshold.
    """

    bins: int = DEFAULT_BINS
    psi_epsilon: float = PSI_EPSILON
    fine_bins: int = FINE_BINS
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    small_sample: int = 1000
    categorical_max_unique: int = 5
    tests: Mapping[str, str] = field(default_factory=dict)
    correction: Literal["none", "bh"] = "none"
    max_categories: int = 1000

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.fine_bins < self.bins:
            raise ValueError(f"fine_bins ({self.fine_bins}) must be >= bins ({self.bins})")
        if not self.psi_epsilon > 0:
            raise ValueError(f"psi_epsilon must be > 0, got {self.psi_epsilon}")
        if self.correction not in ("none", "bh"):
            raise ValueError(f"correction must be 'none' or 'bh', got {self.correction!r}")
        for col, test in self.tests.items():
            if test not in DRIFT_TESTS:
                raise ValueError(
                    f"unknown drift test {test!r} for column {col!r}; "
                    f"expected one of {sorted(DRIFT_TESTS)}"
                )


class UnknownColumnError(ValueError):
    """A per-column test override names a column that is not compared."""

    def __init__(self, columns: Sequence[str], compared: Sequence[str]) -> None:
        self.columns = list(columns)
        self.compared = list(compared)
        super().__init__(f"test override for column(s) {self.columns} that are not compared; "
                         f"compared columns: {self.compared}")


class ColumnTypeError(ValueError):
    """A column compared as numeric holds a value that is not a number on one side."""

    def __init__(self, column: str, side: Literal["reference", "current"], detail: str) -> None:
        self.column, self.side, self.detail = column, side, detail
        super().__init__(f"column {column!r} is compared as numeric but the {side} data has "
                         f"non-numeric values ({detail})")


def _check_overrides(config: DriftConfig, compared: Sequence[str]) -> None:
    unknown = [c for c in config.tests if c not in compared]
    if unknown:
        raise UnknownColumnError(unknown, compared)


def _numeric_values(values: Any, column: str, side: Literal["reference", "current"]) -> Any:
    """``values`` as something numpy turns into floats; only an object column (strings from a
    CSV, say) is converted here, so numeric columns cost nothing extra."""
    if isinstance(values, pd.Series) and not pd.api.types.is_numeric_dtype(values):
        try:
            return np.asarray(values, dtype=float)
        except (TypeError, ValueError) as e:
            raise ColumnTypeError(column, side, str(e)) from None
    return values


def default_test(kind: str, n_reference: int, n_current: int, *, small_sample: int = 1000) -> str:
    """The preset: a p-value test for small samples, a distance for large ones (where every
    tiny difference becomes "significant"). See docs/drift.md."""
    small = min(n_reference, n_current) <= small_sample
    if kind == NUMERIC:
        return "ks" if small else "psi"
    return "chisquare" if small else "jensenshannon"


# -- statistics ------------------------------------------------------------------------------
def _clean_numeric(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def _sorted_clean(values: Any) -> tuple[np.ndarray, int]:
    """(sorted non-NaN values as float64, number of NaN). NaN sorts last, so one sort and a
    binary search replace a mask pass and its copy. float32 input is sorted as float32 (half
    the bytes) and widened afterwards: widening is exact, so the order and values are those of
    sorting the float64 copy."""
    arr = np.asarray(values).ravel()
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    srt = np.sort(arr)
    n_valid = len(srt)
    if n_valid and np.isnan(srt[-1]):
        n_valid = int(np.searchsorted(srt, np.nan, side="left"))
    return srt[:n_valid].astype(np.float64, copy=False), len(srt) - n_valid


# n * m above this would overflow the int64 arithmetic of the sorted-array statistics
_INT_EXACT_LIMIT = 2**62
# keys per block in _searchsorted_sorted_keys: a block's slice of the haystack stays in cache
_SEARCH_BLOCK = 4096


def _searchsorted_sorted_keys(a: np.ndarray, v: np.ndarray, side: Literal["left", "right"]
                              ) -> np.ndarray:
    """``np.searchsorted(a, v, side)`` for *sorted* keys ``v``: each block of keys can only
    land between the positions of its first and last key, so it is searched in that slice
    of ``a`` alone (cache-resident) instead of the whole array; same result, ~25% faster at
    a million keys."""
    out = np.empty(len(v), dtype=np.int64)
    for i in range(0, len(v), _SEARCH_BLOCK):
        block = v[i:i + _SEARCH_BLOCK]
        lo = int(np.searchsorted(a, block[0], side))
        hi = int(np.searchsorted(a, block[-1], side))
        np.add(np.searchsorted(a[lo:hi], block, side), lo, out=out[i:i + _SEARCH_BLOCK])
    return out


def ks_statistic_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample KS statistic D of two *sorted*, non-empty arrays (scipy's ``ks_2samp``
    statistic), from one binary search of the current values in the reference.

    With s_j = #{reference <= c_j} (right-continuous CDFs, c sorted):
    D- = sup(F_cur - F_ref) = max_j ((j+1)/m - s_j/n) (within a run of ties the last j gives
    the true value, the others less), and D+ = sup(F_ref - F_cur) = max_j (l_j/n - j/m) with
    l_j = #{reference < c_j} (the value just before each current point; the first j of a run
    counts). l = s unless a current value equals a reference value, checked in one pass; only
    then is the second search made. Both are evaluated on integers (numerators over n*m), so
    D is the exact rational rounded once."""
    n, m = len(reference), len(current)
    s = _searchsorted_sorted_keys(reference, current, "right")
    # the largest reference value <= c_j equals c_j iff c_j is tied with the reference; where
    # s_j = 0, index -1 picks the largest reference value, which is > c_j: never a false tie
    tied = bool(np.any(reference[s - 1] == current))
    left = _searchsorted_sorted_keys(reference, current, "left") if tied else s
    if n * m < _INT_EXACT_LIMIT:
        jn = np.arange(0, m * n, n, dtype=np.int64)
        k = s * m
        np.subtract(jn, k, out=k)
        d_minus = int(k.max()) + n
        if tied:
            k = left * m
            np.subtract(jn, k, out=k)
        d_plus = -int(k.min())
        return max(d_minus, d_plus, 0) / (n * m)
    j = np.arange(m, dtype=np.float64)
    return float(max(((j + 1) / m - s / n).max(), (left / n - j / m).max(), 0.0))


def wasserstein_sorted_quantiles(reference: np.ndarray, current: np.ndarray) -> float:
    """1-Wasserstein distance of two *sorted*, non-empty arrays as the integral of
    |Q_ref(u) - Q_cur(u)| over u in (0, 1), equal to scipy's integral of |F_ref - F_cur| dx.

    The quantile functions are step functions with steps at i/n and j/m, so no merge of the
    values is needed: in units of 1/lcm(n, m) a reference piece starts at i*a and a current
    piece at j*b (a = lcm/n, b = lcm/m); each piece runs to the next start of either kind, and
    a current start that coincides with a reference start is counted once. Equal sizes reduce
    to the mean of |r_i - c_i|."""
    n, m = len(reference), len(current)
    if n == m:
        return float(np.abs(reference - current).mean())
    g = math.gcd(n, m)
    a, b = m // g, n // g
    lcm = n * a
    if lcm >= _INT_EXACT_LIMIT:
        return _merged_ks_wasserstein(reference, current)[1]
    u = np.arange(n, dtype=np.int64) * a  # reference pieces
    ci = u // b
    end = np.minimum(u + a, (ci + 1) * b)
    total = float(np.dot(np.abs(reference - current[ci]), (end - u).astype(np.float64)))
    v = np.arange(m, dtype=np.int64) * b  # current pieces
    ri = v // a
    own = v != ri * a  # not also a reference start
    v, ri = v[own], ri[own]
    end = np.minimum(v + b, (ri + 1) * a)
    total += float(np.dot(np.abs(reference[ri] - current[own]), (end - v).astype(np.float64)))
    return total / lcm


def ks_2samp_sorted(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample KS on *sorted*, non-empty arrays: same statistic and p-value as
    ``scipy.stats.ks_2samp(method="auto")``, without sorting again."""
    n, m = len(reference), len(current)
    if max(n, m) <= _SCIPY_KS_EXACT_MAX_N:
        with warnings.catch_warnings():
            # For some samples (p close to 1) scipy's exact series lands a rounding error
            # outside [0, 1]; scipy then returns the asymptotic p-value, as this function
            # documents, and says so with this RuntimeWarning. Only that note is silenced
            # (catch_warnings is process-wide: racing threads can at worst leave this same
            # filter installed, which silences nothing else).
            warnings.filterwarnings("ignore", message=_SCIPY_KS_FALLBACK,
                                    category=RuntimeWarning)
            res = stats.ks_2samp(reference, current)
        return float(res.statistic), float(res.pvalue)
    d = ks_statistic_sorted(reference, current)
    return d, ks_pvalue(d, n, m)


def _merged_ks_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS statistic and 1-Wasserstein distance of two sorted arrays in one linear merge.

    Both are functionals of F_ref - F_cur on the pooled sorted sample (what scipy evaluates
    with two ``searchsorted`` calls per array); a stable argsort of two sorted runs is a
    linear-time merge. Kept as the independent reference the faster
    :func:`ks_statistic_sorted` / :func:`wasserstein_sorted_quantiles` are tested against,
    and for sizes whose n*m would overflow their integer arithmetic."""
    n, m = len(reference), len(current)
    pooled = np.concatenate([reference, current])
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    ref_seen = np.cumsum(order < n)
    cur_seen = np.arange(1, n + m + 1) - ref_seen
    diff = np.abs(ref_seen / n - cur_seen / m)
    # CDFs are right-continuous: within a run of ties only its last position is a real value
    last = np.empty(len(values), dtype=bool)
    np.not_equal(values[:-1], values[1:], out=last[:-1])
    last[-1] = True
    d = float(diff[last].max())
    w = float(np.dot(diff[:-1], np.diff(values)))
    return d, w


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value: scipy's ``kstwo.sf(d, round(nm/(n+m)))`` up to an
    effective size of ``_KS_LIMIT_EN``; above it the limiting Kolmogorov distribution
    ``kstwobign.sf(sqrt(en) d)``, because scipy's exact Smirnov series takes ~0.4 s per call
    there while the two differ by under 1% relative (documented in docs/drift.md)."""
    big, small = sorted([float(n), float(m)], reverse=True)
    en = float(np.round(big * small / (big + small)))
    if en > _KS_LIMIT_EN:
        return float(np.clip(stats.kstwobign.sf(math.sqrt(en) * d), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))


def ks_2samp(reference: Any, current: Any) -> tuple[float, float]:
    """KS statistic and p-value (NaN dropped); equals ``scipy.stats.ks_2samp``."""
    r, c = np.sort(_clean_numeric(reference)), np.sort(_clean_numeric(current))
    if not len(r) or not len(c):
        raise ValueError("ks_2samp needs at least one non-missing value on each side")
    return ks_2samp_sorted(r, c)


def wasserstein_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """1-Wasserstein distance of sorted arrays (scipy's ``_cdf_distance`` with p=1)."""
    return wasserstein_sorted_quantiles(reference, current)


def _norm_scale(std: float, mean: float) -> float:
    # A constant reference has std 0; fall back to |mean| (a relative distance) or 1, so a
    # constant column that stays constant scores 0 and one that moves scores finitely.
    if std > 0:
        return std
    return abs(mean) if mean != 0 else 1.0


def wasserstein_normed(reference: Any, current: Any) -> float:
    """Wasserstein distance divided by the reference's standard deviation (ddof=0), as in
    Evidently's ``wasserstein`` test."""
    r, c = np.sort(_clean_numeric(reference)), np.sort(_clean_numeric(current))
    if not len(r) or not len(c):
        raise ValueError("wasserstein needs at least one non-missing value on each side")
    return wasserstein_sorted(r, c) / _norm_scale(float(r.std()), float(r.mean()))


def quantile_edges(sorted_reference: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner bin edges at the reference's k/bins quantiles (numpy's linear interpolation),
    de-duplicated. Bins are left-closed: (-inf, e0), [e0, e1), ..., [e_last, inf). A constant
    reference c gets edges [c, nextafter(c)] so values below, at and above c are told apart."""
    r = sorted_reference
    if not len(r):
        raise ValueError("cannot cut bins on an empty reference")
    qs = np.arange(1, bins) / bins
    edges = np.unique(_sorted_quantiles(r, qs))
    if r[0] == r[-1]:
        edges = np.array([r[0], np.nextafter(r[0], np.inf)])
    return edges


def _sorted_quantiles(r: np.ndarray, qs: np.ndarray) -> np.ndarray:
    # np.quantile(method="linear") on already-sorted data, without re-partitioning
    pos = qs * (len(r) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(r) - 1)
    frac = pos - lo
    return np.asarray(r[lo] + (r[hi] - r[lo]) * frac, dtype=float)


def bin_counts_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values in the left-closed bins defined by inner ``edges``."""
    cum = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate([[0], cum, [len(sorted_values)]])).astype(np.int64)


def bin_sums_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum of the sorted values in each left-closed bin of inner ``edges``."""
    cum = np.searchsorted(sorted_values, edges, side="left")
    csum = np.concatenate([[0.0], np.cumsum(sorted_values)])
    return np.diff(csum[np.concatenate([[0], cum, [len(sorted_values)]])])


def bin_counts(values: Any, edges: np.ndarray) -> np.ndarray:
    """Counts of (unsorted) values in the left-closed bins of inner ``edges``; NaN dropped."""
    v = _clean_numeric(values)
    idx = np.searchsorted(edges, v, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def psi_from_counts(
    reference_counts: Any, current_counts: Any, *, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bin frequencies, empty bins replaced by ``epsilon``."""
    r = np.asarray(reference_counts, dtype=float)
    c = np.asarray(current_counts, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")
    p = np.maximum(r / r.sum(), epsilon)
    q = np.maximum(c / c.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance_from_counts(reference_counts: Any, current_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two histograms on shared bins."""
    r = np.asarray(reference_counts, dtype=float)
    c = np.asarray(current_counts, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("Jensen-Shannon needs at least one observation on each side")
    d = float(distance.jensenshannon(r / r.sum(), c / c.sum(), base=2))
    # rounding can make identical histograms give sqrt(-tiny) = nan
    return 0.0 if math.isnan(d) else min(max(d, 0.0), 1.0)


def psi(
    reference: Any, current: Any, *, bins: int = DEFAULT_BINS, epsilon: float = PSI_EPSILON
) -> float:
    """Population Stability Index of numeric samples on ``bins`` reference-quantile bins."""
    r = np.sort(_clean_numeric(reference))
    edges = quantile_edges(r, bins)
    return psi_from_counts(bin_counts_sorted(r, edges), bin_counts(current, edges), epsilon=epsilon)


def js_distance(reference: Any, current: Any, *, bins: int = DEFAULT_BINS) -> float:
    """Jensen-Shannon distance of numeric samples on the PSI bins."""
    r = np.sort(_clean_numeric(reference))
    edges = quantile_edges(r, bins)
    return js_distance_from_counts(bin_counts_sorted(r, edges), bin_counts(current, edges))


def category_key(value: Any) -> str:
    """One string per category, the same for 1, 1.0 and "1" coming back from a terms agg."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


def category_counts(values: Any) -> dict[str, int]:
    s = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    s = s.dropna()
    counts = s.map(category_key).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def align_categories(
    reference: Mapping[str, int], current: Mapping[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Union of categories (reference order first, then unseen ones) and aligned counts."""
    cats = list(reference) + [k for k in current if k not in reference]
    r = np.array([reference.get(k, 0) for k in cats], dtype=np.int64)
    c = np.array([current.get(k, 0) for k in cats], dtype=np.int64)
    return cats, r, c


def chisquare_from_counts(reference_counts: Any, current_counts: Any) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x k table (reference, current), without Yates'
    correction: ``scipy.stats.chi2_contingency(table, correction=False)``. Categories seen on
    one side only are fine (their expected count comes from the pooled frequency)."""
    r = np.asarray(reference_counts, dtype=float)
    c = np.asarray(current_counts, dtype=float)
    keep = (r + c) > 0
    table = np.vstack([r[keep], c[keep]])
    if table.shape[1] < 2:  # a single category: the distributions are identical
        return 0.0, 1.0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN), like
    ``scipy.stats.false_discovery_control(method="bh")``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


# -- registered tests ------------------------------------------------------------------------
@dataclass(frozen=True)
class TestResult:
    """One drift test on one column: ``drifted`` = ``score`` beyond ``threshold`` in
    ``direction`` ("below": p-value tests, "above": distances). ``statistic`` is what a report
    shows next to the score (the KS D or chi-square statistic of a p-value test, the distance
    itself otherwise); ``error_bound`` is set by approximations (binned KS)."""

    __test__ = False  # not a pytest class despite the name

    test: str
    score: float
    threshold: float
    direction: Literal["below", "above"]
    drifted: bool
    p_value: float | None = None
    statistic: float | None = None
    error_bound: float | None = None

    @classmethod
    def decide(
        cls, test: str, score: float, threshold: float, direction: Literal["below", "above"],
        *, p_value: float | None = None, statistic: float | None = None,
        error_bound: float | None = None,
    ) -> TestResult:
        """The result with ``drifted`` decided (a NaN score never drifts)."""
        return cls(test, score, threshold, direction, exceeds(score, threshold, direction),
                   p_value, statistic, error_bound)


def exceeds(score: float, threshold: float, direction: Literal["below", "above"]) -> bool:
    """Whether ``score`` is beyond ``threshold`` in ``direction``; NaN is never beyond."""
    if math.isnan(score):
        return False
    return bool(score < threshold if direction == "below" else score > threshold)


@dataclass(frozen=True)
class NumericBins:
    """A numeric feature on both sides as histograms on shared left-closed bins (inner
    ``edges``; counts and sums have ``len(edges) + 1`` entries), what a reference profile and
    a ``range`` aggregation give. ``hi`` is the largest value of both samples, ``scale`` the
    reference's Wasserstein normaliser (its std, see :func:`_norm_scale`)."""

    edges: np.ndarray
    reference_counts: np.ndarray
    reference_sums: np.ndarray
    current_counts: np.ndarray
    current_sums: np.ndarray
    hi: float
    scale: float


TestInputs = Literal["sorted", "counts"]


@dataclass(frozen=True)
class DriftTest:
    """A registered drift test.

    ``fn(reference, current, *, threshold, **params) -> TestResult`` is pure and receives what
    :func:`compare` prepares once per column, according to ``inputs``:

    * ``"counts"``: two aligned count vectors over the same bins (numeric: the ``bins``
      reference-quantile bins; categorical: the union of categories, reference order first,
      as :func:`align_categories` returns them);
    * ``"sorted"``: the sorted, NaN-free float64 values of each side (numeric only; never
      empty).

    ``binned(bins: NumericBins, *, threshold, **params)`` is the optional implementation for
    :func:`compare_profile`, where a numeric feature exists only as histograms (``"counts"``
    tests need none: they get the PSI-bin counts there too). ``config_params`` maps a keyword
    of ``fn`` to the :class:`DriftConfig` attribute that supplies it (``{"epsilon":
    "psi_epsilon"}``); ``threshold`` is the default used when :class:`DriftThresholds` has no
    field for the test."""

    name: str
    kinds: tuple[str, ...]
    direction: Literal["below", "above"]
    fn: Callable[..., TestResult]
    inputs: TestInputs = "counts"
    threshold: float = 0.1
    binned: Callable[..., TestResult] | None = None
    config_params: Mapping[str, str] = field(default_factory=dict)


DRIFT_TESTS: dict[str, DriftTest] = {}


def register_test(
    name: str,
    kinds: tuple[str, ...],
    direction: Literal["below", "above"],
    *,
    inputs: TestInputs = "counts",
    threshold: float = 0.1,
    config_params: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., TestResult]], Callable[..., TestResult]]:
    """Register ``fn`` as drift test ``name`` (see :class:`DriftTest` for the contract); it can
    then be selected per column with ``DriftConfig(tests={"col": name})`` or the CLI's
    ``--test col=name``. Registering an existing name replaces it."""
    if inputs not in ("sorted", "counts"):
        raise ValueError(f"inputs must be 'sorted' or 'counts', got {inputs!r}")
    if inputs == "sorted" and CATEGORICAL in kinds:
        raise ValueError(f"test {name!r}: categorical columns only come as counts")
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")

    def deco(fn: Callable[..., TestResult]) -> Callable[..., TestResult]:
        DRIFT_TESTS[name] = DriftTest(name, tuple(kinds), direction, fn, inputs, threshold,
                                      None, dict(config_params or {}))
        return fn

    return deco


def register_binned(name: str) -> Callable[[Callable[..., TestResult]], Callable[..., TestResult]]:
    """Attach the :func:`compare_profile` implementation of a registered ``"sorted"`` test."""

    def deco(fn: Callable[..., TestResult]) -> Callable[..., TestResult]:
        DRIFT_TESTS[name] = replace(DRIFT_TESTS[name], binned=fn)
        return fn

    return deco


@register_test("ks", (NUMERIC,), "below", inputs="sorted", threshold=0.05)
def ks_test(reference: np.ndarray, current: np.ndarray, *, threshold: float = 0.05
            ) -> TestResult:
    """Two-sample Kolmogorov-Smirnov on *sorted* non-empty arrays (scipy's ``ks_2samp``);
    the score is the p-value, the statistic D."""
    d, p = ks_2samp_sorted(reference, current)
    return TestResult.decide("ks", p, threshold, "below", p_value=p, statistic=d)


@register_binned("ks")
def ks_binned_test(bins: NumericBins, *, threshold: float = 0.05) -> TestResult:
    """KS from histograms: D_binned <= D <= D_binned + ``error_bound``; p-value of D_binned."""
    rc, cc = bins.reference_counts, bins.current_counts
    d, bound = binned_ks(rc, cc)
    p = ks_pvalue(d, int(rc.sum()), int(cc.sum()))
    return TestResult.decide("ks", p, threshold, "below", p_value=p, statistic=d,
                             error_bound=bound)


@register_test("psi", (NUMERIC, CATEGORICAL), "above", threshold=0.2,
               config_params={"epsilon": "psi_epsilon"})
def psi_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.2,
    epsilon: float = PSI_EPSILON,
) -> TestResult:
    """PSI of two aligned count vectors (numeric: reference-quantile bins; categorical:
    categories), empty bins at frequency ``epsilon``. Reusable on any category counts, e.g.
    log templates before / after a deploy::

        DRIFT_TESTS["psi"].fn(before_counts, after_counts, threshold=0.2, epsilon=1e-4)

    Both vectors must list the same categories in the same order and each sum to > 0."""
    score = psi_from_counts(reference_counts, current_counts, epsilon=epsilon)
    return TestResult.decide("psi", score, threshold, "above", statistic=score)


@register_test("jensenshannon", (NUMERIC, CATEGORICAL), "above", threshold=0.1)
def jensenshannon_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.1
) -> TestResult:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two aligned count vectors; as for
    :func:`psi_test`, any category counts work::

        DRIFT_TESTS["jensenshannon"].fn(before_counts, after_counts, threshold=0.1)

    No smoothing is needed: JS is finite with empty bins."""
    score = js_distance_from_counts(reference_counts, current_counts)
    return TestResult.decide("jensenshannon", score, threshold, "above", statistic=score)


@register_test("wasserstein", (NUMERIC,), "above", inputs="sorted", threshold=0.1)
def wasserstein_test(
    reference: np.ndarray, current: np.ndarray, *, threshold: float = 0.1,
    scale: float | None = None,
) -> TestResult:
    """1-Wasserstein distance of *sorted* non-empty arrays divided by ``scale`` (default: the
    reference std, as Evidently; see :func:`_norm_scale` for a constant reference)."""
    if scale is None:
        std = float(reference.std())
        # the mean is only needed for a constant reference: skip a pass over the data otherwise
        scale = _norm_scale(std, float(reference.mean()) if std == 0 else 0.0)
    score = wasserstein_sorted_quantiles(reference, current) / scale
    return TestResult.decide("wasserstein", score, threshold, "above", statistic=score)


@register_binned("wasserstein")
def wasserstein_binned_test(bins: NumericBins, *, threshold: float = 0.1) -> TestResult:
    """Wasserstein from per-bin counts and sums (see :func:`binned_wasserstein`)."""
    score = binned_wasserstein(bins.edges, bins.reference_counts, bins.reference_sums,
                               bins.current_counts, bins.current_sums, bins.hi) / bins.scale
    return TestResult.decide("wasserstein", score, threshold, "above", statistic=score)


@register_test("chisquare", (CATEGORICAL,), "below", threshold=0.05)
def chisquare_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.05
) -> TestResult:
    """Chi-square test of homogeneity of two aligned category count vectors; the score is the
    p-value, the statistic chi-square."""
    stat, p = chisquare_from_counts(reference_counts, current_counts)
    return TestResult.decide("chisquare", p, threshold, "below", p_value=p, statistic=stat)


# every result carries these statistics, whatever test decides
_ALL_STATISTICS: dict[str, tuple[str, ...]] = {
    NUMERIC: ("ks", "psi", "jensenshannon", "wasserstein"),
    CATEGORICAL: ("chisquare", "psi", "jensenshannon"),
}


@dataclass(frozen=True)
class _Prepared:
    """One column, prepared once for every test: aligned counts always; sorted values (raw
    numeric) or histograms (profile numeric)."""

    reference_counts: np.ndarray
    current_counts: np.ndarray
    reference: np.ndarray | None = None
    current: np.ndarray | None = None
    bins: NumericBins | None = None


def _run(name: str, prep: _Prepared, config: DriftConfig) -> TestResult:
    t = DRIFT_TESTS[name]
    kw: dict[str, Any] = {"threshold": config.thresholds.for_test(name)}
    for param, attr in t.config_params.items():
        kw[param] = getattr(config, attr)
    if t.inputs == "counts":
        return t.fn(prep.reference_counts, prep.current_counts, **kw)
    if prep.reference is not None and prep.current is not None:
        return t.fn(prep.reference, prep.current, **kw)
    if t.binned is None or prep.bins is None:
        raise ValueError(f"drift test {name!r} needs raw rows (it has no binned implementation)"
                         f" and cannot be used with a reference profile")
    return t.binned(prep.bins, **kw)


def _prepare_numeric(r: np.ndarray, c: np.ndarray, bins: int) -> _Prepared:
    edges = quantile_edges(r, bins)
    return _Prepared(bin_counts_sorted(r, edges), bin_counts_sorted(c, edges), r, c)


def run_test(
    name: str,
    reference: Any,
    current: Any,
    *,
    kind: FeatureType | None = None,
    config: DriftConfig | None = None,
) -> TestResult:
    """Run registered test ``name`` on raw values (NaN dropped), preparing them as
    :func:`compare` does; ``kind`` defaults to what :func:`feature_kind` says (categorical
    for a categorical-only test). For one-off use: :func:`compare` prepares each column once
    for all tests."""
    if name not in DRIFT_TESTS:
        raise ValueError(f"unknown drift test {name!r}; expected one of {sorted(DRIFT_TESTS)}")
    t = DRIFT_TESTS[name]
    config = config or DriftConfig()
    if kind is None:
        kind = t.kinds[0] if len(t.kinds) == 1 else feature_kind(  # type: ignore[assignment]  # both are one of the two kinds
            pd.Series(reference), categorical_max_unique=config.categorical_max_unique)
    if kind not in t.kinds:
        raise ValueError(f"test {name!r} does not apply to {kind} data")
    if kind == NUMERIC:
        r, _ = _sorted_clean(reference)
        c, _ = _sorted_clean(current)
        if not len(r) or not len(c):
            raise ValueError(f"{name} needs at least one non-missing value on each side")
        return _run(name, _prepare_numeric(r, c, config.bins), config)
    _, rc, cc = align_categories(category_counts(reference), category_counts(current))
    return _run(name, _Prepared(rc, cc), config)


# -- per-feature result ----------------------------------------------------------------------
@dataclass
class FeatureDrift:
    """Every statistic for one feature, plus the preset (or configured) test's verdict."""

    feature: str
    type: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    warning: bool = False
    psi: float | None = None
    js_distance: float | None = None
    wasserstein: float | None = None  # normalised by the reference std
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    chisquare: float | None = None
    chisquare_p_value: float | None = None
    p_value_adjusted: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0
    unseen_categories: list[str] = field(default_factory=list)
    method: str = "raw"  # raw | binned
    ks_error_bound: float | None = None  # binned KS: |D_binned - D_raw| <= this
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def _select_test(fd: FeatureDrift, config: DriftConfig) -> str:
    test = config.tests.get(fd.feature) or default_test(
        fd.type, fd.n_reference, fd.n_current, small_sample=config.small_sample
    )
    if fd.type not in DRIFT_TESTS[test].kinds:
        raise ValueError(f"test {test!r} does not apply to {fd.type} feature {fd.feature!r}")
    fd.test, fd.threshold = test, config.thresholds.for_test(test)
    return test


def _evaluate(fd: FeatureDrift, prepare: Callable[[], _Prepared], config: DriftConfig
              ) -> TestResult | None:
    """Run every statistic of the column's type and its selected test, all through
    ``DRIFT_TESTS``, on inputs prepared once; ``None`` for an empty side."""
    test = _select_test(fd, config)
    if not fd.n_reference or not fd.n_current:
        fd.note = "empty reference" if not fd.n_reference else "empty current window"
        return None
    prep = prepare()
    res = {name: _run(name, prep, config) for name in _ALL_STATISTICS[fd.type]}
    if "ks" in res:
        ks = res["ks"]
        fd.ks_statistic, fd.ks_p_value, fd.ks_error_bound = ks.statistic, ks.p_value, \
            ks.error_bound
    if "chisquare" in res:
        fd.chisquare, fd.chisquare_p_value = res["chisquare"].statistic, res["chisquare"].p_value
    fd.psi = res["psi"].score
    fd.js_distance = res["jensenshannon"].score
    if "wasserstein" in res:
        fd.wasserstein = res["wasserstein"].score
    return res[test] if test in res else _run(test, prep, config)


def _finalise(evaluated: list[tuple[FeatureDrift, TestResult | None]], config: DriftConfig
              ) -> list[FeatureDrift]:
    """Copy each selected test's result, apply the optional BH correction, decide drift."""
    for fd, res in evaluated:
        if res is not None:
            fd.threshold = res.threshold
            fd.statistic = res.statistic if res.statistic is not None else res.score
            fd.p_value = res.p_value
    results = [fd for fd, _ in evaluated]
    if config.correction == "bh":
        idx = [i for i, fd in enumerate(results) if fd.p_value is not None]
        adj = benjamini_hochberg([results[i].p_value for i in idx])  # type: ignore[misc]  # filtered
        for i, a in zip(idx, adj, strict=True):
            results[i].p_value_adjusted = float(a)
    for fd, res in evaluated:
        if res is None:
            fd.drifted = False
            continue
        if fd.p_value_adjusted is not None and res.direction == "below":
            fd.drifted = exceeds(fd.p_value_adjusted, res.threshold, "below")
        else:
            fd.drifted = res.drifted
        fd.warning = bool(
            fd.psi is not None and not fd.drifted and fd.psi > config.thresholds.psi_warning
        )
    return results


# -- raw-row comparison ----------------------------------------------------------------------
def feature_kind(series: pd.Series, *, categorical_max_unique: int = 5) -> str:
    """numeric unless the column is non-numeric, boolean, or has at most
    ``categorical_max_unique`` distinct values (Evidently's rule)."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return CATEGORICAL
    # hashing a million floats costs more than the whole drift test: count on a sample first
    head = series.iloc[:10_000]
    if head.nunique(dropna=True) > categorical_max_unique:
        return NUMERIC
    if series.nunique(dropna=True) <= categorical_max_unique:
        return CATEGORICAL
    return NUMERIC


def _numeric_raw(name: str, ref: Any, cur: Any, config: DriftConfig
                 ) -> tuple[FeatureDrift, TestResult | None]:
    # one sort per side, shared by KS (binary search), PSI/JS (edges and counts by binary
    # search) and Wasserstein (quantile functions)
    r, missing_r = _sorted_clean(ref)
    c, missing_c = _sorted_clean(cur)
    fd = FeatureDrift(
        feature=name, type=NUMERIC, test="", statistic=None, p_value=None, threshold=0.0,
        drifted=False, n_reference=len(r), n_current=len(c),
        missing_reference=missing_r, missing_current=missing_c,
    )
    return fd, _evaluate(fd, lambda: _prepare_numeric(r, c, config.bins), config)


def _categorical_from_counts(
    name: str, ref: Mapping[str, int], cur: Mapping[str, int], config: DriftConfig,
    missing_reference: int = 0, missing_current: int = 0, method: str = "raw",
) -> tuple[FeatureDrift, TestResult | None]:
    cats, r, c = align_categories(ref, cur)
    fd = FeatureDrift(
        feature=name, type=CATEGORICAL, test="", statistic=None, p_value=None, threshold=0.0,
        drifted=False, n_reference=int(r.sum()), n_current=int(c.sum()),
        missing_reference=missing_reference, missing_current=missing_current, method=method,
        unseen_categories=[k for k in cats if k not in ref and k != OTHER_CATEGORY],
    )
    return fd, _evaluate(fd, lambda: _Prepared(r, c), config)


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig | None = None,
    kinds: Mapping[str, str] | None = None,
    unmatched: Literal["skip", "report"] = "skip",
) -> list[FeatureDrift]:
    """Drift of every shared column (or ``columns``) from raw rows. With
    ``unmatched="report"`` (and no ``columns``) a column present on one side only is listed
    too, as a row with ``drifted=False`` and a ``note`` saying which side lacks it, so it is
    not dropped silently. Raises :class:`UnknownColumnError` for a ``config.tests`` override
    of a column that is not compared and :class:`ColumnTypeError` for a numeric column with
    non-numeric values."""
    config = config or DriftConfig()
    cols = list(columns) if columns is not None else [c for c in reference if c in current]
    missing = [c for c in cols if c not in reference or c not in current]
    if missing:
        raise ValueError(f"columns missing from reference or current data: {missing}")
    if not cols:
        raise ValueError("reference and current data share no columns")
    _check_overrides(config, cols)
    evaluated: list[tuple[FeatureDrift, TestResult | None]] = []
    for col in cols:
        kind = (kinds or {}).get(col) or feature_kind(
            reference[col], categorical_max_unique=config.categorical_max_unique
        )
        if kind == NUMERIC:
            evaluated.append(_numeric_raw(
                col, _numeric_values(reference[col], col, "reference"),
                _numeric_values(current[col], col, "current"), config,
            ))
        else:
            rs, cs = reference[col], current[col]
            evaluated.append(_categorical_from_counts(
                col, category_counts(rs), category_counts(cs), config,
                int(rs.isna().sum()), int(cs.isna().sum()),
            ))
    results = _finalise(evaluated, config)
    if unmatched == "report" and columns is None:
        results = _with_unmatched(results, reference, current, config)
    return results


def _with_unmatched(results: list[FeatureDrift], reference: pd.DataFrame,
                    current: pd.DataFrame, config: DriftConfig) -> list[FeatureDrift]:
    """``results`` plus a noted row per column found on one side only: reference columns in
    their order, then the current data's extra ones."""
    by_name = {r.feature: r for r in results}
    out: list[FeatureDrift] = []
    for col, side, other in ([(c, reference, "current") for c in reference]
                             + [(c, current, "reference") for c in current
                                if c not in reference]):
        if col in by_name:
            out.append(by_name[col])
            continue
        s = side[col]
        fd = FeatureDrift(
            feature=str(col),
            type=feature_kind(s, categorical_max_unique=config.categorical_max_unique),
            test="", statistic=None, p_value=None, threshold=0.0, drifted=False,
            note=f"not in the {other} data",
        )
        n, miss = int(s.notna().sum()), int(s.isna().sum())
        if other == "current":
            fd.n_reference, fd.missing_reference = n, miss
        else:
            fd.n_current, fd.missing_current = n, miss
        out.append(fd)
    return out


# -- profiles (binned comparison) ------------------------------------------------------------
@dataclass
class NumericProfile:
    """Fine histogram of one numeric reference feature on left-closed bins of ``edges``
    (``counts`` and ``sums`` have len(edges) + 1 entries: below edges[0] ... at/above
    edges[-1]); the per-bin sums make the binned Wasserstein exact wherever the two CDFs do
    not cross inside a bin."""

    name: str
    n: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    edges: list[float]
    counts: list[int]
    sums: list[float]
    psi_edges: list[float]
    type: str = NUMERIC


@dataclass
class CategoricalProfile:
    name: str
    n: int
    missing: int
    counts: dict[str, int]
    type: str = CATEGORICAL


@dataclass
class ReferenceProfile:
    """What drift needs to know about a reference sample; stored in ``PROFILES_INDEX``."""

    features: dict[str, NumericProfile | CategoricalProfile]
    bins: int = DEFAULT_BINS
    fine_bins: int = FINE_BINS

    def to_document(self) -> dict[str, Any]:
        return {
            "bins": self.bins,
            "fine_bins": self.fine_bins,
            "features": [asdict(f) for f in self.features.values()],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ReferenceProfile:
        feats: dict[str, NumericProfile | CategoricalProfile] = {}
        for f in doc["features"]:
            f = dict(f)
            if f.get("type") == NUMERIC:
                feats[f["name"]] = NumericProfile(**f)
            else:
                f["counts"] = {str(k): int(v) for k, v in dict(f["counts"]).items()}
                feats[f["name"]] = CategoricalProfile(**f)
        return cls(features=feats, bins=int(doc.get("bins", DEFAULT_BINS)),
                   fine_bins=int(doc.get("fine_bins", FINE_BINS)))


def profile_edges(sorted_reference: np.ndarray, *, bins: int, fine_bins: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """(all edges, PSI edges): the PSI edges plus the fine quantiles, the min and just above
    the max, so the PSI bins are unions of profile bins."""
    r = sorted_reference
    psi_edges = quantile_edges(r, bins)
    fine = _sorted_quantiles(r, np.arange(0, fine_bins + 1) / fine_bins)
    top = np.nextafter(r[-1], np.inf)
    return np.unique(np.concatenate([psi_edges, fine, [top]])), psi_edges


def numeric_profile_from_quantiles(
    name: str, *, quantiles: Sequence[float], psi_quantiles: Sequence[float], n: int,
    missing: int, mean: float, std: float, vmin: float, vmax: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Edges for a profile whose quantiles come from elsewhere (e.g. a percentiles agg);
    returns (edges, psi_edges); the counts are then filled from a range agg."""
    psi_edges = np.unique(np.asarray(psi_quantiles, dtype=float))
    if vmin == vmax:
        psi_edges = np.array([vmin, np.nextafter(vmin, np.inf)])
    top = np.nextafter(vmax, np.inf)
    edges = np.unique(np.concatenate([psi_edges, np.asarray(quantiles, float), [vmin, top]]))
    return edges, psi_edges


def build_profile(
    reference: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig | None = None,
    kinds: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Summarise a reference frame once: fine quantile histograms and category counts."""
    config = config or DriftConfig()
    cols = list(columns) if columns is not None else list(reference.columns)
    feats: dict[str, NumericProfile | CategoricalProfile] = {}
    for col in cols:
        if col not in reference:
            raise ValueError(f"column {col!r} not in the reference data")
        s = reference[col]
        kind = (kinds or {}).get(col) or feature_kind(
            s, categorical_max_unique=config.categorical_max_unique
        )
        if kind == NUMERIC:
            a = np.asarray(s, dtype=float)
            r = np.sort(a[~np.isnan(a)])
            if not len(r):
                raise ValueError(f"reference column {col!r} has no values")
            edges, psi_edges = profile_edges(r, bins=config.bins, fine_bins=config.fine_bins)
            feats[col] = NumericProfile(
                name=col, n=len(r), missing=len(a) - len(r), mean=float(r.mean()),
                std=float(r.std()), min=float(r[0]), max=float(r[-1]),
                edges=edges.tolist(), counts=bin_counts_sorted(r, edges).tolist(),
                sums=bin_sums_sorted(r, edges).tolist(), psi_edges=psi_edges.tolist(),
            )
        else:
            feats[col] = CategoricalProfile(
                name=col, n=int(s.notna().sum()), missing=int(s.isna().sum()),
                counts=category_counts(s),
            )
    return ReferenceProfile(features=feats, bins=config.bins, fine_bins=config.fine_bins)


@dataclass
class NumericSummary:
    """A current window as counts on a profile's edges (what a ``range`` agg returns)."""

    counts: list[int]
    sums: list[float]
    missing: int = 0
    min: float | None = None
    max: float | None = None


@dataclass
class CategoricalSummary:
    counts: dict[str, int]
    missing: int = 0


CurrentSummary = dict[str, NumericSummary | CategoricalSummary]


def summarize_current(profile: ReferenceProfile, current: pd.DataFrame) -> CurrentSummary:
    """The current frame reduced to what :func:`compare_profile` needs (the file-side twin of
    the cluster aggregations in ``logsight.sources.mlevents``)."""
    out: CurrentSummary = {}
    for name, fp in profile.features.items():
        if name not in current:
            raise ValueError(f"feature {name!r} of the profile is not in the current data")
        s = current[name]
        if isinstance(fp, NumericProfile):
            a = np.asarray(_numeric_values(s, name, "current"), dtype=float)
            v = np.sort(a[~np.isnan(a)])
            edges = np.asarray(fp.edges, dtype=float)
            out[name] = NumericSummary(
                counts=bin_counts_sorted(v, edges).tolist(),
                sums=bin_sums_sorted(v, edges).tolist(),
                missing=len(a) - len(v),
                min=float(v.min()) if len(v) else None,
                max=float(v.max()) if len(v) else None,
            )
        else:
            out[name] = CategoricalSummary(counts=category_counts(s), missing=int(s.isna().sum()))
    return out


def _merge_to(edges: np.ndarray, counts: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Sum fine left-closed bins into the coarse bins (coarse edges are a subset of edges)."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    # bins 0..pos (the open bottom bin, then one per fine edge below) lie below coarse edge
    pos = np.searchsorted(edges, coarse, side="left")
    at = cum[pos + 1]
    return np.diff(np.concatenate([[0], at, [cum[-1]]]))


def binned_ks(
    ref_counts: np.ndarray, cur_counts: np.ndarray
) -> tuple[float, float]:
    """KS statistic from two histograms on the same bins, and its error bound: the true D is
    in [D_binned, D_binned + max over bins of max(ref bin mass, cur bin mass)]."""
    fr = np.cumsum(ref_counts) / ref_counts.sum()
    fc = np.cumsum(cur_counts) / cur_counts.sum()
    d = float(np.abs(fr - fc).max())
    bound = float(max((ref_counts / ref_counts.sum()).max(), (cur_counts / cur_counts.sum()).max()))
    return d, bound


def binned_wasserstein(
    edges: np.ndarray,
    ref_counts: np.ndarray,
    ref_sums: np.ndarray,
    cur_counts: np.ndarray,
    cur_sums: np.ndarray,
    hi: float,
) -> float:
    """1-Wasserstein from per-bin counts and sums on shared left-closed bins.

    Over a bin [a, b), integral(F) = F(a) (b - a) + sum(b - x_i) / N is exact given the bin's
    count and sum, so sum_k |integral_k(F_ref - F_cur)| equals the true distance except in bins
    where the CDFs cross (there it is a lower bound). ``hi`` is the largest value of both
    samples (the top bin ends there)."""
    nr, nc = ref_counts.sum(), cur_counts.sum()
    b = np.concatenate([edges, [max(hi, edges[-1])]])
    a = np.concatenate([[edges[0]], edges])  # bottom bin: F(a) = 0, its width never matters
    far = np.concatenate([[0.0], np.cumsum(ref_counts)[:-1]]) / nr
    fac = np.concatenate([[0.0], np.cumsum(cur_counts)[:-1]]) / nc
    ir = far * (b - a) + (ref_counts * b - ref_sums) / nr
    ic = fac * (b - a) + (cur_counts * b - cur_sums) / nc
    return float(np.abs(ir - ic).sum())


def compare_profile(
    profile: ReferenceProfile,
    current: CurrentSummary,
    *,
    config: DriftConfig | None = None,
) -> list[FeatureDrift]:
    """Drift from a stored profile and binned current counts (no raw rows). Tests are run
    through ``DRIFT_TESTS``: ``"counts"`` tests on the PSI-bin / category counts, ``"sorted"``
    tests through their ``binned`` implementation (a test without one is refused)."""
    config = config or DriftConfig(bins=profile.bins, fine_bins=profile.fine_bins)
    _check_overrides(config, list(profile.features))
    evaluated: list[tuple[FeatureDrift, TestResult | None]] = []
    for name, fp in profile.features.items():
        cs = current.get(name)
        if cs is None:
            raise ValueError(f"no current summary for feature {name!r}")
        if isinstance(fp, CategoricalProfile):
            if not isinstance(cs, CategoricalSummary):
                raise ValueError(f"feature {name!r}: categorical profile, numeric summary")
            evaluated.append(_categorical_from_counts(
                name, fp.counts, cs.counts, config, fp.missing, cs.missing, method="binned"
            ))
            continue
        if not isinstance(cs, NumericSummary):
            raise ValueError(f"feature {name!r}: numeric profile, categorical summary")
        edges = np.asarray(fp.edges, dtype=float)
        rc = np.asarray(fp.counts, dtype=np.int64)
        cc = np.asarray(cs.counts, dtype=np.int64)
        if len(cc) != len(edges) + 1:
            raise ValueError(
                f"feature {name!r}: {len(cc)} current bins for {len(edges) + 1} profile bins"
            )
        fd = FeatureDrift(
            feature=name, type=NUMERIC, test="", statistic=None, p_value=None, threshold=0.0,
            drifted=False, n_reference=int(rc.sum()), n_current=int(cc.sum()),
            missing_reference=fp.missing, missing_current=cs.missing, method="binned",
        )
        evaluated.append((fd, _evaluate(fd, partial(
            _prepare_binned, fp, cs, edges, rc, cc), config)))
    return _finalise(evaluated, config)


def _prepare_binned(fp: NumericProfile, cs: NumericSummary, edges: np.ndarray,
                    rc: np.ndarray, cc: np.ndarray) -> _Prepared:
    psi_edges = np.asarray(fp.psi_edges, dtype=float)
    hi = max(fp.max, cs.max if cs.max is not None else fp.max)
    bins = NumericBins(edges, rc, np.asarray(fp.sums, float), cc, np.asarray(cs.sums, float),
                       hi, _norm_scale(fp.std, fp.mean))
    return _Prepared(_merge_to(edges, rc, psi_edges), _merge_to(edges, cc, psi_edges),
                     bins=bins)


def drifted_features(results: Iterable[FeatureDrift]) -> list[str]:
    return [r.feature for r in results if r.drifted]


# -- outlier inputs --------------------------------------------------------------------------
@dataclass
class OutlierReport:
    """Rows of the current sample with a feature far outside the reference (robust z)."""

    n_rows: int
    n_outliers: int
    threshold: float
    by_feature: dict[str, int]
    max_z: dict[str, float]
    row_index: list[Any]


def robust_outliers(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    threshold: float = 6.0,
    mad_epsilon: float = 1e-9,
) -> OutlierReport:
    """Modified z-score 0.6745 (x - median) / MAD against the reference, per numeric feature;
    a row is an outlier when any feature exceeds ``threshold``. The default (6, above the
    usual 3.5) keeps a clean Gaussian feature set of tens of features at a false-alarm rate
    near 1e-8 per value. ``mad_epsilon`` guards constant reference columns."""
    cols = list(columns) if columns is not None else [
        c for c in reference if c in current and pd.api.types.is_numeric_dtype(reference[c])
        and not pd.api.types.is_bool_dtype(reference[c])
    ]
    if not cols or current.empty:
        return OutlierReport(len(current), 0, threshold, {}, {}, [])
    ref = reference[cols].to_numpy(dtype=float)
    cur = current[cols].to_numpy(dtype=float)
    med = np.nanmedian(ref, axis=0)
    mad = np.nanmedian(np.abs(ref - med), axis=0)
    z = 0.6745 * np.abs(cur - med) / np.maximum(mad, mad_epsilon)
    z = np.where(np.isnan(z), 0.0, z)
    flags = z > threshold
    rows = flags.any(axis=1)
    return OutlierReport(
        n_rows=len(cur),
        n_outliers=int(rows.sum()),
        threshold=threshold,
        by_feature={c: int(flags[:, i].sum()) for i, c in enumerate(cols) if flags[:, i].any()},
        max_z={c: float(z[:, i].max()) for i, c in enumerate(cols)},
        row_index=list(current.index[rows][:20]),
    )


# -- findings --------------------------------------------------------------------------------
PREDICTION_SUBJECTS = ("prediction", "prediction_value", "score")


def drift_findings(
    results: Sequence[FeatureDrift],
    *,
    model: str | None,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    service: str | None = None,
    model_version: str | None = None,
    namespace: str | None = None,
    reference: Mapping[str, Any] | None = None,
    prediction_subjects: Sequence[str] = PREDICTION_SUBJECTS,
) -> list[Finding]:
    """One finding per drifted column: ``prediction_drift`` for the prediction / confidence
    columns, ``feature_drift`` (subject = feature) for inputs."""
    out: list[Finding] = []
    for r in results:
        if not r.drifted:
            continue
        kind = "prediction_drift" if r.feature in prediction_subjects else "feature_drift"
        stat = r.statistic if r.statistic is not None else float("nan")
        if DRIFT_TESTS[r.test].direction == "below":
            # p-value tests: "strong" means two orders of magnitude past the threshold
            p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
            strong = p is not None and p < r.threshold / 100
        else:
            strong = stat > 2 * r.threshold
        out.append(Finding(
            kind=kind,
            title=f"{model or 'model'}: {r.feature} drifted ({r.test})",
            summary=(f"{r.test}={stat:.4g} (threshold {r.threshold:g}); PSI={_fmt(r.psi)}, "
                     f"JS={_fmt(r.js_distance)}, Wasserstein={_fmt(r.wasserstein)}; "
                     f"{r.n_current} current vs {r.n_reference} reference values"),
            severity="high" if strong else "medium",
            score=float(r.psi if r.psi is not None else stat),
            confidence=1.0 - r.p_value if r.p_value is not None else None,
            service=service,
            subject=r.feature,
            feature=r.feature if kind == "feature_drift" else None,
            model=model,
            model_version=model_version,
            window_start=window_start,
            window_end=window_end,
            evidence={"drift": r.to_dict(), "reference": dict(reference or {})},
            namespace=namespace,
        ))
    return out


def outlier_findings(
    report: OutlierReport,
    *,
    model: str | None,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    service: str | None = None,
    namespace: str | None = None,
    sample_ids: Sequence[str] = (),
) -> list[Finding]:
    if not report.n_outliers:
        return []
    top = sorted(report.by_feature.items(), key=lambda kv: -kv[1])
    return [Finding(
        kind="outlier_inputs",
        title=f"{model or 'model'}: {report.n_outliers} outlier input(s)",
        summary=(f"{report.n_outliers} of {report.n_rows} requests have a feature with robust "
                 f"|z| > {report.threshold:g}: " + ", ".join(f"{k} ({v})" for k, v in top[:5])),
        severity="medium" if report.n_outliers / max(report.n_rows, 1) > 0.01 else "low",
        score=report.n_outliers / max(report.n_rows, 1),
        service=service,
        subject="inputs",
        model=model,
        window_start=window_start,
        window_end=window_end,
        evidence={"by_feature": report.by_feature, "max_z": report.max_z},
        sample_ids=list(sample_ids)[:20],
        namespace=namespace,
    )]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"
