"""Performance metrics with delayed labels: known values against sklearn / hand calculations,
joins, coverage, version comparison and KPIs on toy data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from logsight.analysis import performance as P


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.choice(["a", "b", "c"], 400))
    m = P.classification_metrics(y, pred)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.f1_macro == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.precision_macro == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m.per_class["b"]["recall"] == pytest.approx(
        skm.recall_score(y, pred, labels=["b"], average=None)[0])


def test_binary_auc_brier_and_ece_by_hand() -> None:
    y = ["0", "1", "1", "0"]
    pred = ["0", "1", "0", "0"]
    proba = (["0", "1"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]))
    m = P.classification_metrics(y, pred, proba=proba, n_bins=10)
    assert m.roc_auc == pytest.approx(skm.roc_auc_score([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.3]))
    # multi-class Brier: mean over rows of sum_k (p_k - y_k)^2
    assert m.brier == pytest.approx(np.mean([0.02, 0.08, 0.72, 0.18]))
    # confidences 0.9, 0.8, 0.6, 0.7 each alone in a bin; correct 1, 1, 0, 1
    assert m.ece == pytest.approx((0.1 + 0.2 + 0.6 + 0.3) / 4)
    assert sum(b.count for b in m.reliability) == 4


def test_auc_from_score_of_predicted_class() -> None:
    y = ["neg", "pos", "pos", "neg"]
    pred = ["neg", "pos", "neg", "pos"]
    score = [0.9, 0.8, 0.6, 0.7]  # confidence in the predicted class
    m = P.classification_metrics(y, pred, score=score)
    p_pos = [0.1, 0.8, 0.4, 0.7]
    assert m.roc_auc == pytest.approx(skm.roc_auc_score([0, 1, 1, 0], p_pos))


def test_regression_metrics_by_hand() -> None:
    m = P.regression_metrics([1.0, 2.0, 0.0, 4.0], [1.5, 1.0, 1.0, 4.0])
    assert m.mae == pytest.approx(2.5 / 4)
    assert m.rmse == pytest.approx(np.sqrt((0.25 + 1 + 1) / 4))
    assert m.mape == pytest.approx((0.5 + 0.5 + 0) / 3)  # rows with y = 0 are left out
    assert P.regression_metrics([], []).mae is None


def test_join_keeps_unlabelled_and_latest_label() -> None:
    preds = pd.DataFrame({"request_id": ["r1", "r2", "r3"], "prediction": ["a", "b", "a"],
                          "model_version": ["v1", "v1", "v2"]})
    fb = pd.DataFrame({"request_id": ["r1", "r1", "r3"], "label": ["b", "a", "b"],
                       "timestamp": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"])})
    before = preds.copy()
    j = P.join_feedback(preds, fb)
    pd.testing.assert_frame_equal(preds, before)  # inputs are not mutated
    assert j.set_index("request_id")["label"].to_dict()["r1"] == "a"  # corrected label wins
    assert j["labelled"].tolist() == [True, False, True]
    assert P.label_coverage(j) == {"all": pytest.approx(2 / 3), "v1": 0.5, "v2": 1.0}
    m = P.evaluate(j)
    assert m.n == 2 and m.accuracy == 0.5
    empty = P.join_feedback(preds, pd.DataFrame(columns=["request_id", "label"]))
    assert not empty["labelled"].any()


def _joined(rng: np.random.Generator, version: str, n: int, acc: float) -> pd.DataFrame:
    y = rng.choice(["a", "b"], n)
    pred = np.where(rng.random(n) < acc, y, np.where(y == "a", "b", "a"))
    return pd.DataFrame({"request_id": [f"{version}-{i}-{rng.integers(1e9)}" for i in range(n)],
                         "model_version": version, "prediction": pred, "label": y,
                         "labelled": True,
                         "timestamp": pd.date_range("2024-01-01", periods=n, freq="min",
                                                    tz="UTC")})


def test_version_regression_and_degradation_findings() -> None:
    rng = np.random.default_rng(1)
    cur = pd.concat([_joined(rng, "v1", 700, 0.9), _joined(rng, "v2", 300, 0.7)])
    ref = _joined(rng, "v1", 700, 0.9)
    rep = P.performance_report(cur, model="m", reference=ref)
    [vc] = rep.version_comparisons
    assert vc.baseline == "v1" and vc.candidate == "v2" and vc.worse
    assert vc.ci_low is not None and vc.ci_low > 0
    assert not any(c.worse for c in rep.degradation)
    kinds = [(f.kind, f.subject) for f in P.performance_findings(rep)]
    assert kinds == [("version_regression", "v2")]
    worse_now = _joined(rng, "v1", 700, 0.75)
    rep2 = P.performance_report(worse_now, model="m", reference=ref)
    assert [(f.kind, f.subject) for f in P.performance_findings(rep2)] == [
        ("performance_degradation", "v1")]


def test_equal_versions_give_no_finding() -> None:
    rng = np.random.default_rng(2)
    cur = pd.concat([_joined(rng, "v1", 500, 0.85), _joined(rng, "v2", 500, 0.85)])
    rep = P.performance_report(cur, model="m")
    assert P.performance_findings(rep) == []


def test_kpis_per_version_and_correlation_with_accuracy() -> None:
    rng = np.random.default_rng(3)
    frames = []
    for h in range(12):
        acc = 0.5 + 0.04 * h
        f = _joined(rng, "v1", 100, acc)
        f["timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h)
        frames.append(f)
    joined = pd.concat(frames, ignore_index=True)
    kpis = pd.DataFrame({
        "request_id": joined["request_id"], "timestamp": joined["timestamp"],
        "kpi_name": "revenue",
        "kpi_value": (joined["prediction"] == joined["label"]).astype(float) * 10
        + rng.normal(0, 1, len(joined)),
    })
    rep = P.performance_report(joined, model="m", kpis=kpis)
    [k] = rep.kpis
    assert k.version == "v1" and k.ci_low < k.mean < k.ci_high
    corr = rep.kpi_accuracy_correlation["revenue"]
    assert corr["rho"] is not None and corr["rho"] > 0.7


# -- KPIs: bootstrap intervals, version changes, correlation with accuracy --------------------
def test_bootstrap_interval_known_values() -> None:
    assert P.bootstrap_mean_interval([3.0] * 50) == (3.0, 3.0)  # every resample is the same
    rng = np.random.default_rng(10)
    v = rng.normal(10.0, 2.0, 4000)
    lo, hi = P.bootstrap_mean_interval(v, n_boot=2000, random_state=1)
    # the bootstrap distribution of a mean of 4000 normals is normal: mean +- 1.96 s / sqrt(n)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
    assert (lo + hi) / 2 == pytest.approx(v.mean(), abs=0.1 * half)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    # repeatable through random_state, also when the draws are made in several chunks
    assert P.bootstrap_mean_interval(v, n_boot=2000, random_state=1) == (lo, hi)
    small = P.bootstrap_mean_interval(v, n_boot=2000, random_state=1, max_draws=50_000)
    assert small == pytest.approx((lo, hi), abs=0.2 * half)
    for bad, msg in (([], "non-empty"), ([1.0, float("nan")], "NaN")):
        with pytest.raises(ValueError, match=msg):
            P.bootstrap_mean_interval(bad)
    with pytest.raises(ValueError, match="alpha"):
        P.bootstrap_mean_interval([1.0, 2.0], alpha=1.5)


def _kpi_events(rng: np.random.Generator, means: dict[str, float], n: int,
                name: str = "revenue") -> pd.DataFrame:
    frames = [pd.DataFrame({"kpi_name": name, "model_version": v,
                            "kpi_value": rng.normal(mu, 1.0, n),
                            "timestamp": pd.Timestamp("2024-01-01", tz="UTC")})
              for v, mu in means.items()]
    return pd.concat(frames, ignore_index=True)


def test_kpi_below_the_baseline_version_is_a_finding() -> None:
    rng = np.random.default_rng(11)
    joined = pd.concat([_joined(rng, v, 200, 0.9) for v in ("v1", "v2", "v3")])
    kpis = _kpi_events(rng, {"v1": 10.0, "v2": 9.0, "v3": 10.0}, 400)
    rep = P.performance_report(joined, model="m", kpis=kpis, baseline_version="v1")
    by_version = {k.version: k for k in rep.kpis}
    assert set(by_version) == {"v1", "v2", "v3"}
    for k in rep.kpis:
        assert k.interval == "bootstrap" and k.ci_low < k.mean < k.ci_high
        assert k.n == 400
    v2 = by_version["v2"]
    assert v2.mean == pytest.approx(kpis[kpis["model_version"] == "v2"]["kpi_value"].mean())
    changes = {c.candidate: c for c in rep.kpi_changes}
    assert set(changes) == {"v2", "v3"} and all(c.baseline == "v1" for c in changes.values())
    assert changes["v2"].worse and not changes["v3"].worse
    assert changes["v2"].difference == pytest.approx(v2.mean - by_version["v1"].mean)
    assert changes["v2"].relative_change == pytest.approx(-0.1, abs=0.02)
    findings = [f for f in P.performance_findings(rep, service="svc") if f.kind == "kpi_change"]
    [f] = findings
    assert (f.subject, f.model_version, f.service) == ("revenue:v2", "v2", "svc")
    assert f.evidence["kpi_change"]["baseline"] == "v1"
    assert f.evidence["kpi_change"]["candidate_ci"][1] < f.evidence["kpi_change"]["baseline_ci"][0]
    # same inputs, same random_state: the same intervals and the same finding id
    again = P.performance_report(joined, model="m", kpis=kpis, baseline_version="v1")
    assert [k.ci_low for k in again.kpis] == [k.ci_low for k in rep.kpis]


def test_kpi_where_lower_is_better_and_overlapping_intervals() -> None:
    rng = np.random.default_rng(12)
    joined = _joined(rng, "v1", 50, 0.9)
    # v2's latency KPI is higher: worse only when lower is better
    kpis = _kpi_events(rng, {"v1": 100.0, "v2": 103.0}, 300, name="latency")
    rep = P.performance_report(joined, model="m", kpis=kpis)
    [c] = rep.kpi_changes
    # the baseline is the version seen first in the predictions (v1), not the greater name;
    # higher is better by default: the test is for a drop ("below"), and v2's latency rose
    assert (c.baseline, c.candidate, c.direction, c.worse) == ("v1", "v2", "below", False)
    rep_low = P.performance_report(joined, model="m", kpis=kpis, baseline_version="v1",
                                   kpi_lower_is_better=["latency"])
    [c] = rep_low.kpi_changes
    assert c.direction == "above" and c.worse
    # a tiny difference on few events: intervals overlap, no finding
    few = _kpi_events(rng, {"v1": 10.0, "v2": 9.9}, 30)
    rep_few = P.performance_report(joined, model="m", kpis=few, baseline_version="v1")
    assert not rep_few.kpi_changes[0].worse
    assert [f for f in P.performance_findings(rep_few) if f.kind == "kpi_change"] == []


def test_kpi_version_comes_from_the_prediction_by_request_id() -> None:
    rng = np.random.default_rng(13)
    joined = pd.concat([_joined(rng, "v1", 300, 0.9), _joined(rng, "v2", 300, 0.9)])
    conv = np.where(joined["model_version"] == "v1", rng.random(600) < 0.3,
                    rng.random(600) < 0.1).astype(float)
    kpis = pd.DataFrame({"request_id": joined["request_id"].to_numpy(), "kpi_name": "conversion",
                         "kpi_value": conv, "timestamp": joined["timestamp"].to_numpy()})
    rep = P.performance_report(joined, model="m", kpis=kpis, baseline_version="v1")
    assert {k.version for k in rep.kpis} == {"v1", "v2"}
    [c] = rep.kpi_changes
    assert c.candidate == "v2" and c.worse
    with pytest.raises(ValueError, match="kpi_value"):
        P.performance_report(joined, model="m", kpis=kpis.drop(columns="kpi_value"))


def test_kpi_accuracy_correlation_known_values() -> None:
    # six hourly windows of 10 labelled predictions with 5..10 right: accuracy 0.5 .. 1.0
    frames = []
    for h, right in enumerate([5, 6, 7, 8, 9, 10]):
        frames.append(pd.DataFrame({
            "request_id": [f"r{h}-{i}" for i in range(10)],
            "model_version": "v1", "prediction": ["a"] * 10,
            "label": ["a"] * right + ["b"] * (10 - right), "labelled": True,
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h),
        }))
    joined = pd.concat(frames, ignore_index=True)
    stamps = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(6), unit="h")
    # KPI means rise with accuracy except that windows 2 and 3 swap places: one adjacent swap
    # gives rho = 1 - 6 * 2 / (6 * 35) = 0.942857...
    kpis = pd.DataFrame({"kpi_name": "ctr", "model_version": "v1", "timestamp": stamps,
                         "kpi_value": [1.0, 2.0, 4.0, 3.0, 5.0, 6.0]})
    rep = P.performance_report(joined, model="m", kpis=kpis)
    corr = rep.kpi_accuracy_correlation["ctr"]
    assert corr["rho"] == pytest.approx(1 - 12 / 210)
    assert corr["n"] == 6 and corr["method"] == "spearman" and corr["window"] == "1h"
    from scipy import stats

    expected = stats.spearmanr([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [1, 2, 4, 3, 5, 6])
    assert corr["p_value"] == pytest.approx(expected.pvalue)
    # two windows only: no correlation claimed
    short = P.kpi_accuracy_correlation(joined[joined["timestamp"] < stamps[2]], kpis)
    assert short["ctr"]["rho"] is None and short["ctr"]["n"] == 2


def _joined_classes(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    labels = rng.choice(["a", "b"], n)
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                         "model_version": ["v1"] * (n // 2) + ["v2"] * (n - n // 2),
                         "prediction": labels, "label": labels, "labelled": True})


def test_task_that_does_not_fit_the_labels_is_a_clear_error() -> None:
    joined = _joined_classes()
    with pytest.raises(P.TaskMismatch, match=r"labels are classes: use task 'classification'") \
            as e:
        P.performance_report(joined, model="m", task="regression")
    assert e.value.missing == ["label_value", "prediction_value"] and e.value.labels == "classes"
    numeric = joined.assign(label_value=1.0, prediction_value=2.0).drop(
        columns=["label", "prediction"])
    with pytest.raises(P.TaskMismatch, match="labels are numbers"):
        P.performance_report(numeric, model="m", task="classification")
    assert P.performance_report(numeric, model="m", task="regression").metrics.mae == 1.0


def test_baseline_version_without_predictions_is_refused() -> None:
    joined = _joined_classes()
    with pytest.raises(ValueError, match=r"baseline version '7'.*\['v1', 'v2'\]"):
        P.performance_report(joined, model="m", baseline_version="7")
    rep = P.performance_report(joined, model="m", baseline_version="v2")
    assert [c.baseline for c in rep.version_comparisons] == ["v2"]
    # a baseline that has predictions but no labels yet is said, not silently replaced
    three = pd.concat([joined, joined.assign(model_version="v3", labelled=False,
                                             request_id=lambda f: f["request_id"] + "x")])
    rep3 = P.performance_report(three, model="m", baseline_version="v3")
    assert len(rep3.notes) == 1 and "'v3' has no labelled predictions" in rep3.notes[0]


def test_compare_losses_in_chunks_equals_one_full_draw() -> None:
    """Chunked resampling (bounded memory) gives exactly the interval of the one
    (n_boot, n)-matrix draw per side, whatever the chunk size."""
    rng = np.random.default_rng(7)
    baseline, candidate = rng.random(101), rng.random(57) + 0.1
    # the reference: every baseline index drawn at once, then every candidate index
    ref = np.random.default_rng(0)
    bi = ref.integers(0, len(baseline), size=(500, len(baseline)))
    ci = ref.integers(0, len(candidate), size=(500, len(candidate)))
    expected = np.quantile(candidate[ci].mean(axis=1) - baseline[bi].mean(axis=1),
                           [0.025, 0.975])
    for max_draws in (1, 100, 1000, 4_000_000):
        c = P.compare_losses(baseline, candidate, baseline_name="v1", candidate_name="v2",
                             metric="mae", n_boot=500, random_state=0, max_draws=max_draws)
        assert (c.ci_low, c.ci_high) == pytest.approx(tuple(expected), abs=1e-12)
        assert c.loss_diff == pytest.approx(candidate.mean() - baseline.mean())
    with pytest.raises(ValueError, match="max_draws"):
        P.compare_losses(baseline, candidate, baseline_name="v1", candidate_name="v2",
                         metric="mae", max_draws=0)


def test_kpi_comparison_needs_enough_events_and_a_known_version() -> None:
    """The user-test case: one conversion event of version 1.5.0 against 297 events without a
    version made a high kpi_change; neither side may be compared."""
    rng = np.random.default_rng(13)
    joined = _joined(rng, "v1", 50, 0.9)
    many = pd.DataFrame({"kpi_name": "conversion_rate", "model_version": None,
                         "kpi_value": rng.normal(0.2, 0.05, 297),
                         "timestamp": pd.Timestamp("2024-01-01", tz="UTC")})
    one = pd.DataFrame({"kpi_name": "conversion_rate", "model_version": ["1.5.0"],
                        "kpi_value": [0.031],
                        "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]})
    rep = P.performance_report(joined, model="ranker", kpis=pd.concat([many, one]))
    assert {k.version for k in rep.kpis} == {"unknown", "1.5.0"}  # still reported
    assert rep.kpi_changes == []
    assert not [f for f in P.performance_findings(rep) if f.kind == "kpi_change"]
    # two real versions: below min_kpi_events no comparison, at it a finding
    kpis = _kpi_events(rng, {"v1": 10.0, "v2": 5.0}, 20)
    assert P.performance_report(joined, model="m", kpis=kpis).kpi_changes == []
    rep = P.performance_report(joined, model="m", kpis=kpis, min_kpi_events=20)
    [c] = rep.kpi_changes
    # the version seen first in the predictions (v1) is the baseline; v2 is lower: worse
    assert (c.baseline, c.candidate, c.worse) == ("v1", "v2", True)
    with pytest.raises(ValueError, match="min_kpi_events"):
        P.compare_kpis(rep.kpis, min_kpi_events=0)
