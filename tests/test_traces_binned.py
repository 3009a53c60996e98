"""Regression tests on aggregated histograms: known values against scipy on the same (binned)
samples, quantiles of known bins, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from logsight.analysis.traces.binned import (
    EDGES,
    binned_mwu_greater,
    binned_quantile,
    compare_histograms,
    log_edges,
)


def _counts(values: np.ndarray, edges: np.ndarray = EDGES) -> np.ndarray:
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1)


def test_binned_mwu_equals_scipy_on_the_binned_values() -> None:
    rng = np.random.default_rng(3)
    base = rng.lognormal(3.0, 0.4, 400)
    cand = rng.lognormal(3.1, 0.4, 300)
    # the values each bin stands for: the test on bins is scipy's on these (ties = a bin)
    idx_b = np.searchsorted(EDGES, base, side="right") - 1
    idx_c = np.searchsorted(EDGES, cand, side="right") - 1
    want = stats.mannwhitneyu(idx_c, idx_b, alternative="greater", method="asymptotic",
                              use_continuity=True).pvalue
    got = binned_mwu_greater(_counts(cand), _counts(base))
    assert got == pytest.approx(want, rel=1e-9)
    # and close to the test on the raw values (bins are ~6 % wide)
    raw = stats.mannwhitneyu(cand, base, alternative="greater").pvalue
    assert got == pytest.approx(raw, rel=0.2)


def test_binned_quantile_known_values() -> None:
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    assert binned_quantile(np.array([0, 10, 0]), edges, 0.5) == pytest.approx(15.0)
    assert binned_quantile(np.array([5, 5, 0]), edges, 0.75) == pytest.approx(15.0)
    assert np.isnan(binned_quantile(np.zeros(3), edges, 0.5))
    e = log_edges(1.0, 1000.0, per_decade=10)
    assert e[0] == 0 and e[1] == pytest.approx(1.0) and e[-1] == pytest.approx(1000.0)
    assert len(e) == 32


def test_identical_or_empty_histograms_are_no_evidence() -> None:
    one = np.zeros(len(EDGES) - 1)
    one[100] = 50
    assert binned_mwu_greater(one, one) == 1.0
    assert binned_mwu_greater(one, np.zeros_like(one)) == 1.0


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(0.5, 2.0), seed=st.integers(0, 10_000))
def test_a_slower_candidate_is_found_and_a_faster_one_never(shift: float, seed: int) -> None:
    # shift >= 0.5 in log space: a p95 ratio near 1.65, well clear of min_ratio 1.2
    rng = np.random.default_rng(seed)
    base = _counts(rng.lognormal(2.0, 0.3, 200))
    slow = _counts(rng.lognormal(2.0 + shift, 0.3, 200))
    assert binned_mwu_greater(slow, base) < 1e-6
    assert binned_mwu_greater(base, slow) > 0.5
    found = compare_histograms({("s", "op", "self_ms"): base}, {("s", "op", "self_ms"): slow})
    assert found[0].regressed and found[0].p95_ratio > 1.2
    assert not compare_histograms({("s", "op", "self_ms"): slow},
                                  {("s", "op", "self_ms"): base})[0].regressed
