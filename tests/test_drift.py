"""Drift statistics: known values against scipy / hand calculations, edge cases, properties,
binned-vs-raw tolerance, and the file CLI."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from logsight.analysis import drift as D
from logsight.cli import main


def _psi_by_hand(ref: np.ndarray, cur: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """PSI the straightforward way: np.quantile edges, a Python loop, math.log."""
    import math

    inner = sorted(set(np.quantile(ref, [k / bins for k in range(1, bins)]).tolist()))
    edges = [-math.inf, *inner, math.inf]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        p = max(sum(1 for x in ref if lo <= x < hi) / len(ref), eps)
        q = max(sum(1 for x in cur if lo <= x < hi) / len(cur), eps)
        total += (q - p) * math.log(q / p)
    return total


@pytest.mark.parametrize("n", [200, 30_000])
def test_ks_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=n)
    c = np.round(rng.normal(0.05, 1.1, size=n + 13), 2)  # ties on one side
    d, p = D.ks_2samp(r, c)
    ref = stats.ks_2samp(r, c)
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_ks_pvalue_large_samples_close_to_scipy() -> None:
    # above _KS_LIMIT_EN we use the limiting distribution (documented: < 1% relative)
    for d in (0.001, 0.002, 0.003):
        assert D.ks_pvalue(d, 400_000, 400_000) == pytest.approx(
            stats.kstwo.sf(d, 200_000), rel=0.01)


@pytest.mark.parametrize("n", [100, 20_000])
def test_wasserstein_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(2)
    r, c = rng.gamma(2.0, size=n), np.round(rng.gamma(2.5, size=n // 2 + 1), 1)
    w = D.wasserstein_normed(r, c) * r.std()
    assert w == pytest.approx(stats.wasserstein_distance(r, c), rel=1e-9)


def test_psi_matches_hand_calculation() -> None:
    rng = np.random.default_rng(3)
    r, c = rng.normal(size=2000), rng.normal(0.4, 1.3, size=1500)
    assert D.psi(r, c) == pytest.approx(_psi_by_hand(r, c), rel=1e-12)
    assert D.psi(r, c, bins=5) == pytest.approx(_psi_by_hand(r, c, bins=5), rel=1e-12)


def test_psi_known_value() -> None:
    # two bins with frequencies (0.5, 0.5) vs (0.25, 0.75)
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert D.psi_from_counts([50, 50], [25, 75]) == pytest.approx(expected)
    # an empty bin uses the documented epsilon
    eps = D.PSI_EPSILON
    exp2 = (eps - 0.5) * np.log(eps / 0.5) + (1 - 0.5) * np.log(1 / 0.5)
    assert D.psi_from_counts([5, 5], [0, 10]) == pytest.approx(exp2)


def test_js_equals_scipy_on_shared_bins() -> None:
    rng = np.random.default_rng(4)
    r, c = rng.normal(size=3000), rng.normal(0.3, 1, size=2000)
    edges = D.quantile_edges(np.sort(r), 10)
    rc, cc = D.bin_counts(r, edges), D.bin_counts(c, edges)
    expected = distance.jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2)
    assert D.js_distance(r, c) == pytest.approx(expected)


def test_chisquare_equals_scipy_with_unseen_category() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 10 + ["d"] * 15
    cats, r, c = D.align_categories(D.category_counts(ref), D.category_counts(cur))
    assert cats == ["a", "b", "c", "d"]
    stat, p = D.chisquare_from_counts(r, c)
    res = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    assert (stat, p) == pytest.approx((res.statistic, res.pvalue))
    [fd] = D.compare(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
    assert fd.type == "categorical" and fd.test == "chisquare" and fd.drifted
    assert fd.unseen_categories == ["d"]
    js = distance.jensenshannon(r / r.sum(), c / c.sum(), base=2)
    assert fd.js_distance == pytest.approx(js)


def test_benjamini_hochberg_equals_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.5]
    assert D.benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p))


def test_bh_correction_changes_the_verdict() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=300) for i in range(20)})
    cur = pd.DataFrame({f"f{i}": rng.normal(size=300) for i in range(20)})
    cur["f0"] = cur["f0"] + 1.0
    plain = D.compare(ref, cur, config=D.DriftConfig(correction="none"))
    bh = D.compare(ref, cur)  # BH is the default
    assert bh == D.compare(ref, cur, config=D.DriftConfig(correction="bh"))
    assert "f0" in D.drifted_features(bh)
    assert set(D.drifted_features(bh)) <= set(D.drifted_features(plain))
    assert all(r.p_value_adjusted is not None and r.p_value_adjusted >= r.p_value
               for r in bh)


def test_presets_pick_tests_by_type_and_size() -> None:
    assert D.default_test("numeric", 500, 5000) == "ks"
    # the large-sample numeric preset is the normed Wasserstein effect size (it was PSI)
    assert D.default_test("numeric", 5000, 5000) == "wasserstein"
    assert D.default_rule("numeric", 5000, 5000) == ("wasserstein", "effect_size")
    assert D.default_rule("categorical", 1000, 1000) == ("chisquare", "p_value")
    assert D.default_test("categorical", 100, 100) == "chisquare"
    assert D.default_test("categorical", 5000, 5000) == "jensenshannon"
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"few": rng.integers(0, 3, 100).astype(float),
                        "x": rng.normal(size=100)})
    out = {r.feature: r for r in D.compare(ref, ref.copy())}
    assert out["few"].type == "categorical" and out["x"].type == "numeric"
    cfg = D.DriftConfig(tests={"x": "wasserstein"})
    [fx] = [r for r in D.compare(ref, ref, config=cfg) if r.feature == "x"]
    assert fx.test == "wasserstein" and fx.statistic == pytest.approx(0.0)


def test_unknown_test_and_bad_columns_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown drift test"):
        D.DriftConfig(tests={"x": "nope"})
    with pytest.raises(ValueError, match="missing"):
        D.compare(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}), columns=["a"])
    with pytest.raises(ValueError, match="does not apply"):
        D.compare(pd.DataFrame({"c": list("abab")}), pd.DataFrame({"c": list("abba")}),
                  config=D.DriftConfig(tests={"c": "ks"}))


def test_registered_tests_return_evidently_style_results() -> None:
    rng = np.random.default_rng(7)
    r, c = rng.normal(size=500), rng.normal(1.0, 1, size=500)
    for name in ("ks", "psi", "jensenshannon", "wasserstein"):
        res = D.run_test(name, r, c)
        assert res.test == name and res.drifted
        assert res.direction == ("below" if name == "ks" else "above")
    res = D.run_test("chisquare", list("aab" * 50), list("abb" * 50))
    assert res.p_value is not None and res.drifted


# -- edge cases ------------------------------------------------------------------------------
def test_constant_column() -> None:
    ref = pd.DataFrame({"k": [3.0] * 100 + [4.0] * 0, "x": np.linspace(0, 1, 100)})
    same = D.compare(ref, ref.copy(), kinds={"k": "numeric", "x": "numeric"})
    assert not any(r.drifted for r in same)
    k = same[0]
    assert k.psi == pytest.approx(0.0) and k.wasserstein == pytest.approx(0.0)
    moved = ref.assign(k=4.0)
    [k2] = [r for r in D.compare(ref, moved, kinds={"k": "numeric", "x": "numeric"})
            if r.feature == "k"]
    assert k2.drifted and k2.psi > 1 and k2.wasserstein == pytest.approx(1 / 3)


def test_empty_window_and_nan() -> None:
    ref = pd.DataFrame({"x": np.arange(50, dtype=float)})
    cur = pd.DataFrame({"x": [np.nan] * 5})
    [fd] = D.compare(ref, cur)
    assert fd.n_current == 0 and fd.missing_current == 5 and not fd.drifted
    assert fd.note == "empty current window"
    json.dumps(fd.to_dict())  # no NaN leaks into JSON
    withnan = pd.DataFrame({"x": [*np.arange(50, dtype=float), np.nan]})
    [fd2] = D.compare(ref, withnan)
    assert fd2.missing_current == 1 and fd2.ks_statistic == pytest.approx(0.0)


def test_single_category() -> None:
    [fd] = D.compare(pd.DataFrame({"c": ["a"] * 10}), pd.DataFrame({"c": ["a"] * 7}))
    assert fd.chisquare_p_value == 1.0 and fd.psi == 0.0 and fd.js_distance == 0.0
    assert not fd.drifted


# -- properties ------------------------------------------------------------------------------
floats = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(floats)
def test_psi_of_a_sample_with_itself_is_zero(xs: list[float]) -> None:
    assert D.psi(xs, xs) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=3, max_size=12).flatmap(
    lambda a: st.tuples(st.just(a), st.lists(st.integers(0, 50), min_size=len(a),
                                             max_size=len(a)))))
def test_js_symmetric_and_bounded(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    if sum(a) == 0 or sum(b) == 0:
        return
    ab, ba = D.js_distance_from_counts(a, b), D.js_distance_from_counts(b, a)
    assert ab == pytest.approx(ba)
    assert 0.0 <= ab <= 1.0


def scipy_ks_2samp(xs: Any, ys: Any) -> Any:
    """The reference, ``scipy.stats.ks_2samp``. For some samples (p close to 1, many ties)
    its exact p-value series lands a rounding error outside [0, 1]; scipy then returns the
    asymptotic p-value and says so with a RuntimeWarning. That note, and only it, is
    silenced: the statistic is the same either way and ours must equal the p-value scipy
    returns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful",
                                category=RuntimeWarning)
        return stats.ks_2samp(xs, ys)


@settings(max_examples=40, deadline=None)
@given(floats, floats)
def test_ks_and_wasserstein_match_scipy_on_any_data(xs: list[float], ys: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours says nothing, even where scipy falls back
        d, p = D.ks_2samp(xs, ys)
    ref = scipy_ks_2samp(xs, ys)  # ours must equal it, exact or fallen back
    assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    w = D.wasserstein_sorted(np.sort(xs), np.sort(ys))
    assert w == pytest.approx(stats.wasserstein_distance(xs, ys), rel=1e-9, abs=1e-6)


# -- toy data with known drift: quality floor -------------------------------------------------
def test_finds_the_shifted_features_and_nothing_else() -> None:
    rng = np.random.default_rng(8)
    n = 5000
    ref = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(10)})
    ref["cat"] = rng.choice(list("abc"), n, p=[0.5, 0.3, 0.2])
    cur = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(10)})
    cur["cat"] = rng.choice(list("abc"), n, p=[0.2, 0.3, 0.5])
    cur["f3"] = cur["f3"] * 2.0
    cur["f7"] = cur["f7"] + 0.8
    assert sorted(D.drifted_features(D.compare(ref, cur))) == ["cat", "f3", "f7"]


# -- profiles: binned vs raw ------------------------------------------------------------------
def test_profile_agrees_with_raw_within_documented_tolerance() -> None:
    rng = np.random.default_rng(9)
    n = 50_000
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.lognormal(size=n),
                        "c": rng.choice(list("xyz"), n)})
    cur = pd.DataFrame({"a": rng.normal(0.3, 1.2, size=n), "b": rng.lognormal(0.1, size=n),
                        "c": rng.choice(list("xyzw"), n)})
    raw = {r.feature: r for r in D.compare(ref, cur)}
    prof = D.ReferenceProfile.from_document(json.loads(json.dumps(
        D.build_profile(ref).to_document())))  # what the cluster stores round-trips
    binned = {r.feature: r for r in D.compare_profile(prof, D.summarize_current(prof, cur))}
    for name in ("a", "b"):
        r, b = raw[name], binned[name]
        assert b.psi == pytest.approx(r.psi, rel=1e-9)  # exact: PSI bins are profile bins
        assert b.js_distance == pytest.approx(r.js_distance, rel=1e-9)
        assert b.ks_statistic <= r.ks_statistic + 1e-12
        assert r.ks_statistic - b.ks_statistic <= b.ks_error_bound
        assert b.wasserstein == pytest.approx(r.wasserstein, rel=0.02)
        assert b.drifted == r.drifted
    assert binned["c"].chisquare == pytest.approx(raw["c"].chisquare)


# -- outliers and findings --------------------------------------------------------------------
def test_robust_outliers_and_findings() -> None:
    rng = np.random.default_rng(10)
    ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    cur = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    assert D.robust_outliers(ref, cur).n_outliers == 0
    cur.loc[[3, 9], "b"] = 40.0
    rep = D.robust_outliers(ref, cur)
    assert rep.n_outliers == 2 and rep.by_feature == {"b": 2} and rep.row_index == [3, 9]
    [f] = D.outlier_findings(rep, model="m", window_start="2024-01-01T00:00:00Z",
                             window_end="2024-01-02T00:00:00Z")
    assert f.kind == "outlier_inputs"
    res = D.compare(pd.DataFrame({"x": rng.normal(size=800), "score": rng.uniform(size=800)}),
                    pd.DataFrame({"x": rng.normal(2, 1, size=800),
                                  "score": rng.uniform(size=800) ** 3}))
    kinds = {f.subject: f.kind for f in D.drift_findings(
        res, model="m", window_start=None, window_end=None)}
    assert kinds == {"x": "feature_drift", "score": "prediction_drift"}


# -- CLI on files ----------------------------------------------------------------------------
def test_cli_drift_on_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"a": rng.normal(size=1500), "b": rng.choice(list("xy"), 1500)})
    cur = pd.DataFrame({"a": rng.normal(1.0, 1, size=1200), "b": rng.choice(list("xy"), 1200)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    with open(tmp_path / "cur.ndjson", "w") as fh:
        for row in cur.to_dict("records"):
            fh.write(json.dumps({"ml": {"features": row}}) + "\n")
    runner = CliRunner()
    for current in ("cur.parquet", "cur.ndjson"):
        res = runner.invoke(main, ["drift", "--reference", str(tmp_path / "ref.csv"),
                                   "--current", str(tmp_path / current), "--json"])
        assert res.exit_code == 0, res.output
        out = {f["feature"]: f for f in json.loads(res.output)["features"]}
        assert out["a"]["drifted"] is True and out["b"]["drifted"] is False
        keys = ["feature", "type", "test", "statistic", "p_value", "psi", "js_distance",
                "wasserstein", "drifted"]
        assert list(out["a"])[:9] == keys
    table = runner.invoke(main, ["drift", "--reference", str(tmp_path / "ref.csv"),
                                 "--current", str(tmp_path / "cur.parquet")])
    assert table.exit_code == 0 and "DRIFT" in table.output
    bad = runner.invoke(main, ["drift", "--reference", str(tmp_path / "ref.csv"),
                               "--current", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "not found" in bad.output
    bad2 = runner.invoke(main, ["drift", "--reference", str(tmp_path / "ref.csv")])
    assert bad2.exit_code == 2 and "both" in bad2.output


# -- the sorted-array statistics behind the raw-row path ---------------------------------------
tied_floats = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(tied_floats, tied_floats)
def test_sorted_ks_and_wasserstein_equal_scipy_with_ties_across_samples(
    xs: list[float], ys: list[float]
) -> None:
    r, c = np.sort(xs), np.sort(ys)
    assert D.ks_statistic_sorted(r, c) == pytest.approx(
        scipy_ks_2samp(xs, ys).statistic, abs=1e-12)
    assert D.wasserstein_sorted_quantiles(r, c) == pytest.approx(
        stats.wasserstein_distance(xs, ys), rel=1e-9, abs=1e-12)
    d, w = D._merged_ks_wasserstein(r, c)  # the independent merge-based computation
    assert D.ks_statistic_sorted(r, c) == pytest.approx(d, abs=1e-12)
    assert D.wasserstein_sorted_quantiles(r, c) == pytest.approx(w, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "m"), [(50_000, 50_000), (40_000, 25_013), (7, 30_000)])
def test_raw_compare_equals_scipy_on_large_samples_with_ties(n: int, m: int) -> None:
    rng = np.random.default_rng(21)
    ref = pd.DataFrame({"x": np.round(rng.normal(size=n), 2)})
    cur = pd.DataFrame({"x": np.round(rng.normal(0.1, 1.2, size=m), 2)})
    [fd] = D.compare(ref, cur)
    assert fd.ks_statistic == pytest.approx(stats.ks_2samp(ref.x, cur.x).statistic, abs=1e-12)
    w = stats.wasserstein_distance(ref.x, cur.x) / ref.x.std(ddof=0)
    assert fd.wasserstein == pytest.approx(w, rel=1e-9)


def test_float32_and_missing_values_give_the_float64_answer() -> None:
    rng = np.random.default_rng(22)
    r32 = rng.normal(size=20_000).astype(np.float32)
    c32 = rng.normal(0.2, 1.0, size=15_000).astype(np.float32)
    r32[::97] = np.nan
    c32[::89] = np.nan
    ref32, cur32 = pd.DataFrame({"x": r32}), pd.DataFrame({"x": c32})
    ref64 = pd.DataFrame({"x": r32.astype(np.float64)})
    cur64 = pd.DataFrame({"x": c32.astype(np.float64)})
    [a], [b] = D.compare(ref32, cur32), D.compare(ref64, cur64)
    for key in ("ks_statistic", "ks_p_value", "psi", "js_distance", "wasserstein",
                "n_reference", "n_current", "missing_reference", "missing_current"):
        assert getattr(a, key) == getattr(b, key), key
    assert a.missing_reference == len(range(0, 20_000, 97))
    keep_r, keep_c = r32[~np.isnan(r32)], c32[~np.isnan(c32)]
    assert a.ks_statistic == pytest.approx(stats.ks_2samp(keep_r, keep_c).statistic, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50, 50).map(float), min_size=1, max_size=300),
       st.lists(st.integers(-60, 60).map(float), min_size=1, max_size=9000))
def test_blocked_search_equals_numpy_searchsorted(xs: list[float], ys: list[float]) -> None:
    a, v = np.sort(xs), np.sort(ys)
    for side in ("left", "right"):
        assert (D._searchsorted_sorted_keys(a, v, side) == np.searchsorted(a, v, side)).all()


# -- bad input: clear errors, nothing dropped silently ------------------------------------------
def test_thresholds_are_validated() -> None:
    for kw in ({"psi": -3.0}, {"psi": 0.0}, {"ks_p_value": 0.0}, {"ks_p_value": 1.0},
               {"jensenshannon": 0.0}, {"jensenshannon": 1.5}, {"wasserstein": 0.0},
               {"chisquare_p_value": 2.0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            D.DriftThresholds(**kw)
    assert D.DriftThresholds(jensenshannon=1.0).jensenshannon == 1.0  # (0, 1] is closed at 1


def test_unknown_override_column_and_non_numeric_values_name_the_column() -> None:
    ref = pd.DataFrame({"a": np.arange(50.0), "b": list("xy") * 25})
    cur = pd.DataFrame({"a": [str(v) for v in np.arange(49.0)] + ["50.3y"],
                        "b": list("xy") * 25})
    with pytest.raises(D.UnknownColumnError) as e:
        D.compare(ref, ref, config=D.DriftConfig(tests={"nosuch": "ks"}))
    assert e.value.columns == ["nosuch"] and e.value.compared == ["a", "b"]
    with pytest.raises(D.ColumnTypeError, match=r"column 'a'.*current.*'50\.3y'") as t:
        D.compare(ref, cur)
    assert (t.value.column, t.value.side) == ("a", "current")
    # strings that are numbers are fine: the same answer as the float column
    ok = D.compare(ref, cur.iloc[:49])[0]
    assert ok.ks_p_value == pytest.approx(D.compare(ref, ref.iloc[:49])[0].ks_p_value)
    prof = D.build_profile(ref)
    with pytest.raises(D.UnknownColumnError):
        D.compare_profile(prof, D.summarize_current(prof, ref),
                          config=D.DriftConfig(tests={"zz": "psi"}))


def test_unmatched_columns_are_reported_not_dropped() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"a": rng.normal(size=300), "gone": rng.normal(size=300)})
    cur = pd.DataFrame({"a": rng.normal(size=200), "new": list("pq") * 100})
    assert [r.feature for r in D.compare(ref, cur)] == ["a"]  # the default is unchanged
    res = D.compare(ref, cur, unmatched="report")
    assert [r.feature for r in res] == ["a", "gone", "new"]
    gone, new = res[1], res[2]
    assert gone.note == "not in the current data" and gone.n_reference == 300
    assert new.note == "not in the reference data" and new.type == D.CATEGORICAL
    assert not gone.drifted and not new.drifted and gone.test == new.test == ""


def _files(tmp_path, ref: pd.DataFrame, cur: pd.DataFrame) -> list[str]:  # type: ignore[no-untyped-def]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    return ["drift", "--reference", str(tmp_path / "ref.csv"), "--current",
            str(tmp_path / "cur.csv")]


def test_cli_drift_files_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"a": rng.normal(size=400), "b": rng.choice(list("xy"), 400),
                        "c": rng.normal(size=400)})
    cur = pd.DataFrame({"a": rng.normal(3.0, 1, size=300), "b": rng.choice(list("xy"), 300),
                        "d": rng.normal(size=300)})
    args = _files(tmp_path, ref, cur)
    runner = CliRunner()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "lacks column(s) ['c']" in res.stderr and "has column(s) ['d']" in res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.strip()}
    assert "not in the current data" in lines["c"] and "not in the reference data" in lines["d"]
    assert "1 of 2 feature(s) drifted; not compared: c, d" in res.stdout
    # a tiny p-value is printed as such, not as 0.000
    p_a = next(r for r in D.compare(ref, cur) if r.feature == "a").p_value
    assert p_a is not None and p_a < 1e-6
    assert format(p_a, ".2g") in lines["a"]
    js = json.loads(runner.invoke(main, [*args, "--json"]).stdout)
    assert {f["feature"]: f["note"] for f in js["features"]}["c"] == "not in the current data"

    unknown = runner.invoke(main, [*args, "--test", "nosuch=ks"])
    assert unknown.exit_code == 2
    assert "nosuch" in unknown.output and "['a', 'b']" in unknown.output

    for opt, value in (("--psi-threshold", "-3"), ("--ks-threshold", "1"),
                       ("--js-threshold", "0"), ("--bins", "1")):
        bad = runner.invoke(main, [*args, opt, value])
        assert bad.exit_code == 2 and opt in bad.output, (opt, bad.output)

    header_only = _files(tmp_path, ref, cur.iloc[:0])
    empty = runner.invoke(main, header_only)
    assert empty.exit_code == 1 and "the current sample is empty" in empty.output

    typed = cur.astype({"a": str})
    typed.loc[5, "a"] = "50.3y"
    wrong = runner.invoke(main, _files(tmp_path, ref, typed))
    assert wrong.exit_code == 2
    assert "cur.csv" in wrong.output and "'a'" in wrong.output and "50.3y" in wrong.output
    assert "Traceback" not in wrong.output


def test_cli_drift_help_explains_every_option() -> None:
    text = CliRunner().invoke(main, ["drift", "--help"]).output
    for opt in ("--bins", "--psi-threshold", "--ks-threshold", "--js-threshold"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(opt))
        assert len(line.split(opt, 1)[1].split()) > 2, line  # more than the metavar
    perf = " ".join(CliRunner().invoke(main, ["performance", "--help"]).output.split())
    assert "--namespace TEXT Stream namespace" in perf and "--task [classification|regr" in perf
    assert "needs ml.label_value" in perf


# -- the registry is what compare dispatches through -------------------------------------------
@pytest.fixture
def toy_tests():  # type: ignore[no-untyped-def]
    """Two user tests: one on sorted values (numeric), one on counts (both kinds)."""
    saved = dict(D.DRIFT_TESTS)

    @D.register_test("meanshift", (D.NUMERIC,), "above", inputs="sorted", threshold=0.5)
    def meanshift(reference: np.ndarray, current: np.ndarray, *, threshold: float = 0.5
                  ) -> D.TestResult:
        score = abs(float(current.mean() - reference.mean())) / float(reference.std())
        return D.TestResult.decide("meanshift", score, threshold, "above")

    @D.register_test("tvd", (D.NUMERIC, D.CATEGORICAL), "above", threshold=0.2)
    def tvd(reference_counts: np.ndarray, current_counts: np.ndarray, *,
            threshold: float = 0.2) -> D.TestResult:
        p = reference_counts / reference_counts.sum()
        q = current_counts / current_counts.sum()
        return D.TestResult.decide("tvd", float(np.abs(p - q).sum() / 2), threshold, "above")

    yield
    D.DRIFT_TESTS.clear()
    D.DRIFT_TESTS.update(saved)


def test_a_registered_custom_test_is_selected_per_column(toy_tests) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(30)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "y": rng.normal(size=3000),
                        "c": rng.choice(list("abc"), 3000)})
    cur = pd.DataFrame({"x": rng.normal(0.8, 1, size=2000), "y": rng.normal(size=2000),
                        "c": rng.choice(list("abc"), 2000, p=[0.6, 0.2, 0.2])})
    cfg = D.DriftConfig(tests={"x": "meanshift", "y": "meanshift", "c": "tvd"})
    out = {r.feature: r for r in D.compare(ref, cur, config=cfg)}
    x, y, c = out["x"], out["y"], out["c"]
    expected = abs(cur.x.mean() - ref.x.mean()) / ref.x.std(ddof=0)
    assert x.test == "meanshift" and x.statistic == pytest.approx(expected, rel=1e-9)
    assert x.threshold == 0.5 and x.drifted and not y.drifted
    assert x.psi is not None and x.ks_p_value is not None  # the usual statistics still come
    pc = ref.c.value_counts(normalize=True)
    qc = cur.c.value_counts(normalize=True)
    assert c.test == "tvd" and c.drifted
    assert c.statistic == pytest.approx(float((pc - qc).abs().sum() / 2), rel=1e-9)
    # a counts test works on a profile too; a sorted-values one without binned form is refused
    prof = D.build_profile(ref)
    summ = D.summarize_current(prof, cur)
    [bx] = [r for r in D.compare_profile(prof, summ, config=D.DriftConfig(tests={"x": "tvd"}))
            if r.feature == "x"]
    raw_tvd = D.compare(ref, cur, config=D.DriftConfig(tests={"x": "tvd"}))[0]
    assert bx.test == "tvd" and bx.statistic == pytest.approx(raw_tvd.statistic, rel=1e-9)
    with pytest.raises(ValueError, match="'meanshift' needs raw rows"):
        D.compare_profile(prof, summ, config=D.DriftConfig(tests={"x": "meanshift"}))
    with pytest.raises(ValueError, match="does not apply"):
        D.compare(ref, cur, config=D.DriftConfig(tests={"c": "meanshift"}))


def test_cli_selects_a_registered_custom_test(toy_tests, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(31)
    ref = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800)})
    cur = pd.DataFrame({"a": rng.normal(1.0, 1, size=600), "b": rng.normal(size=600)})
    res = CliRunner().invoke(main, [*_files(tmp_path, ref, cur), "--test", "a=meanshift",
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = {f["feature"]: f for f in json.loads(res.stdout)["features"]}
    assert out["a"]["test"] == "meanshift" and out["a"]["drifted"] is True
    assert out["b"]["test"] == "ks"


def test_compare_calls_each_registered_test_once_per_column_on_prepared_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int, int]] = []

    def spy(name: str) -> D.DriftTest:
        t = D.DRIFT_TESTS[name]

        def fn(reference: np.ndarray, current: np.ndarray, **kw: float) -> D.TestResult:
            calls.append((name, int(np.sum(reference)) if t.inputs == "counts"
                          else len(reference), len(current)))
            if t.inputs == "sorted":
                assert (np.diff(reference) >= 0).all() and not np.isnan(current).any()
            return t.fn(reference, current, **kw)

        return D.DriftTest(t.name, t.kinds, t.direction, fn, t.inputs, t.threshold, t.binned,
                           t.config_params)

    for name in ("ks", "psi", "jensenshannon", "wasserstein", "chisquare"):
        monkeypatch.setitem(D.DRIFT_TESTS, name, spy(name))
    rng = np.random.default_rng(32)
    ref = pd.DataFrame({"x": [*rng.normal(size=400), np.nan], "c": list("ab" * 200) + ["a"]})
    cur = pd.DataFrame({"x": rng.normal(size=300), "c": list("abb" * 100)})
    D.compare(ref, cur, config=D.DriftConfig(psi_epsilon=1e-3))
    assert sorted(calls) == sorted([("ks", 400, 300), ("psi", 400, 10), ("jensenshannon", 400, 10),
                                    ("wasserstein", 400, 300), ("chisquare", 401, 2),
                                    ("psi", 401, 2), ("jensenshannon", 401, 2)])


def test_registered_functions_on_prepared_inputs_equal_compare_and_scipy() -> None:
    rng = np.random.default_rng(33)
    r, c = rng.normal(size=700), rng.normal(0.2, 1.1, size=500)
    [fd] = D.compare(pd.DataFrame({"x": r}), pd.DataFrame({"x": c}))
    ks = D.DRIFT_TESTS["ks"].fn(np.sort(r), np.sort(c), threshold=0.05)
    ref = stats.ks_2samp(r, c)
    assert (ks.statistic, ks.p_value) == (fd.ks_statistic, fd.ks_p_value)
    assert ks.statistic == pytest.approx(ref.statistic) and ks.p_value == pytest.approx(ref.pvalue)
    w = D.DRIFT_TESTS["wasserstein"].fn(np.sort(r), np.sort(c), threshold=0.1)
    assert w.score == fd.wasserstein
    assert w.score == pytest.approx(stats.wasserstein_distance(r, c) / r.std(), rel=1e-9)
    # category counts, as analysis/logs.py's template drift passes them
    before, after = np.array([40, 30, 0, 30]), np.array([10, 30, 25, 35])
    psi = D.DRIFT_TESTS["psi"].fn(before, after, threshold=0.2, epsilon=1e-3)
    assert psi.score == pytest.approx(_psi_counts_by_hand(before, after, 1e-3), rel=1e-12)
    assert psi.drifted and psi.direction == "above" and psi.threshold == 0.2
    js = D.DRIFT_TESTS["jensenshannon"].fn(before, after, threshold=0.1)
    assert js.score == pytest.approx(
        distance.jensenshannon(before / before.sum(), after / after.sum(), base=2))
    chi = D.DRIFT_TESTS["chisquare"].fn(before, after, threshold=0.05)
    assert chi.p_value == pytest.approx(
        stats.chi2_contingency(np.vstack([before, after]), correction=False).pvalue)


def _psi_counts_by_hand(r: np.ndarray, c: np.ndarray, eps: float) -> float:
    import math

    total = 0.0
    for a, b in zip(r, c, strict=True):
        p, q = max(a / r.sum(), eps), max(b / c.sum(), eps)
        total += (q - p) * math.log(q / p)
    return total


def test_register_test_refuses_bad_declarations() -> None:
    with pytest.raises(ValueError, match="counts"):
        D.register_test("bad", (D.CATEGORICAL,), "above", inputs="sorted")
    with pytest.raises(ValueError, match="direction"):
        D.register_test("bad", (D.NUMERIC,), "sideways")  # type: ignore[arg-type]  # the point
    assert "bad" not in D.DRIFT_TESTS
