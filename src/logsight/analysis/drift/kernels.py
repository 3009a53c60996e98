"""The statistics of drift, vectorized: KS and Wasserstein on sorted samples, quantile bins,
PSI and Jensen-Shannon from counts, chi-square on aligned categories, Benjamini-Hochberg."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

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


# -- statistics ------------------------------------------------------------------------------
def _clean_numeric(values: Any) -> np.ndarray:
    """The finite values: NaN is missing, and +-inf (e.g. a number too large for a float in a
    CSV) has no place on a histogram or in a distance, so both are left out."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _sorted_clean(values: Any) -> tuple[np.ndarray, int, int]:
    """(sorted finite values as float64, number of NaN, number of +-inf). NaN sorts last and
    -inf / +inf sit at the ends, so one sort and binary searches replace a mask pass and its
    copy. float32 input is sorted as float32 (half the bytes) and widened afterwards: widening
    is exact, so the order and values are those of sorting the float64 copy."""
    arr = np.asarray(values).ravel()
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    srt = np.sort(arr)
    n_valid = len(srt)
    if n_valid and np.isnan(srt[-1]):
        n_valid = int(np.searchsorted(srt, np.nan, side="left"))
    lo = int(np.searchsorted(srt[:n_valid], -np.inf, side="right")) if n_valid else 0
    hi = int(np.searchsorted(srt[:n_valid], np.inf, side="left")) if n_valid else 0
    return (srt[lo:hi].astype(np.float64, copy=False), len(srt) - n_valid,
            lo + (n_valid - hi))


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


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN), like
    ``scipy.stats.false_discovery_control(method="bh")``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


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


def binned_wasserstein_error_bound(
    edges: np.ndarray, ref_counts: np.ndarray, cur_counts: np.ndarray
) -> float:
    """How far :func:`binned_wasserstein` may be below the true distance.

    A bin [a, b) loses ``integral |g| - |integral g| = 2 min(integral g+, integral g-)`` with
    g = F_ref - F_cur. F_ref rises by the bin's reference mass r and F_cur by its current mass
    c, so inside the bin g >= max(g(a) - c, g(b) - r) and g <= min(g(a) + r, g(b) + c): with
    L- and L+ the parts of those bounds beyond zero, the loss is at most
    width x min(2 min(L+, L-), max(L+, L-)), zero where g cannot change sign. The outer bins
    never lose (below the reference minimum F_ref = 0, above its maximum F_ref = 1)."""
    mr = ref_counts / ref_counts.sum()
    mc = cur_counts / cur_counts.sum()
    g_end = np.cumsum(mr) - np.cumsum(mc)  # g at the end of each bin
    g_start = np.concatenate([[0.0], g_end[:-1]])
    inner = slice(1, len(edges))  # bins [edges[i-1], edges[i])
    width = np.diff(edges)
    ga, gb, r, c = g_start[inner], g_end[inner], mr[inner], mc[inner]
    low = np.maximum(0.0, -np.maximum(ga - c, gb - r))
    high = np.maximum(0.0, np.minimum(ga + r, gb + c))
    loss = np.minimum(2 * np.minimum(low, high), np.maximum(low, high))
    return float((width * loss).sum())
