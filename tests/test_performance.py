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
