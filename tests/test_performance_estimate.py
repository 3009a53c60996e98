"""Performance estimation before labels (CBPE): known values by hand, a simulated covariate
shift with known true accuracy (the estimate within its band in >= 90% of windows and closer
than the last known accuracy), and the property that with a calibrated model and no shift the
estimate equals the realised accuracy within its band."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.analysis import performance as P
from logsight.analysis.performance import estimate as E


def test_cbpe_by_hand() -> None:
    e = E.cbpe_accuracy([0.9, 0.8, 0.6, 0.7], z=2.0)
    assert e.estimate == pytest.approx(0.75)
    sd = np.sqrt(0.09 + 0.16 + 0.24 + 0.21) / 4
    assert e.sd == pytest.approx(sd)
    assert (e.lower, e.upper) == pytest.approx((0.75 - 2 * sd, 1.0))  # clipped to [0, 1]
    # the reference's calibration uncertainty adds in quadrature
    cs = E.calibration_sd([0.9, 0.5])
    assert cs == pytest.approx(np.sqrt(0.09 + 0.25) / 2)
    assert E.cbpe_accuracy([0.9, 0.8, 0.6, 0.7], calibration_sd=cs).sd \
        == pytest.approx(np.sqrt(sd**2 + cs**2))
    assert E.cbpe_accuracy([]).estimate is None
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.cbpe_accuracy([1.2])


def test_calibration_agrees_with_classification_metrics() -> None:
    y = ["0", "1", "1", "0"]
    pred = ["0", "1", "0", "0"]
    conf = [0.9, 0.8, 0.6, 0.7]
    c = E.calibration(conf, np.array(y) == np.array(pred), max_ece=0.2)
    m = P.classification_metrics(y, pred, score=conf)
    assert c.ece == pytest.approx(m.ece)
    assert c.ece == pytest.approx((0.1 + 0.2 + 0.6 + 0.3) / 4)
    assert c.poor


def test_predicted_confidence_looks_up_the_predicted_class() -> None:
    f = pd.DataFrame({"prediction": ["a", "c", "b"],
                      "proba.a": [0.5, 0.2, 0.1], "proba.b": [0.3, 0.2, 0.3],
                      "proba.c": [0.2, 0.6, 0.6]})
    # the third row predicts b although c has the larger probability (a cost-weighted decision)
    assert E.predicted_confidence(f) == pytest.approx([0.5, 0.6, 0.3])
    assert E.predicted_confidence(pd.DataFrame({"prediction": ["a"], "score": [0.7]})) \
        == pytest.approx([0.7])
    assert E.predicted_confidence(pd.DataFrame({"prediction": ["a"]})) is None


def _window(rng: np.random.Generator, n: int, shift: float, *, labelled: bool = True,
            version: str = "v1", classes: int = 2) -> pd.DataFrame:
    """A calibrated model (it outputs the true class probabilities) on inputs whose mean moves
    by ``shift`` towards the decision boundary: covariate shift, the true accuracy drops."""
    x = rng.normal(2.0 - shift, 1.0, n)
    logits = np.stack([k * x for k in range(classes)], axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in p]) if classes > 2 \
        else (rng.random(n) < p[:, 1]).astype(int)
    pred = p.argmax(axis=1)
    frame = pd.DataFrame({"prediction": pred.astype(str), "label": y.astype(str),
                          "model_version": version, "labelled": labelled})
    for k in range(classes):
        frame[f"proba.{k}"] = p[:, k]
    return frame


@pytest.mark.parametrize("classes", [2, 3])
def test_covariate_shift_estimate_within_band_and_beats_last_known(classes: int) -> None:
    rng = np.random.default_rng(7)
    ref = _window(rng, 3000, 0.0, classes=classes)
    ref_acc = float((ref["prediction"] == ref["label"]).mean())
    within, err_est, err_naive = [], [], []
    for shift in np.linspace(0.0, 2.5, 40):
        cur = _window(rng, 1000, float(shift), classes=classes)
        rep = E.estimate_report(cur, reference=ref)
        (ve,) = rep.versions
        assert ve.within_band is not None and ve.error is not None and ve.realised is not None
        within.append(ve.within_band)
        err_est.append(abs(ve.error))
        err_naive.append(abs(ref_acc - ve.realised))
    assert np.mean(within) >= 0.9
    assert np.mean(err_est) < 0.5 * np.mean(err_naive)
    assert rep.calibration is not None and not rep.calibration.poor


def test_drop_is_flagged_before_labels_and_poor_calibration_is_said() -> None:
    rng = np.random.default_rng(3)
    ref = _window(rng, 3000, 0.0)
    cur = pd.concat([_window(rng, 800, 0.0, labelled=False, version="v1"),
                     _window(rng, 800, 2.0, labelled=False, version="v2")])
    rep = E.estimate_report(cur, reference=ref)
    by = {v.version: v for v in rep.versions}
    assert not by["v1"].drop and by["v2"].drop
    assert by["v2"].realised is None and by["v2"].n_labelled == 0
    # an overconfident model: every confidence pushed towards 1
    bad = ref.copy()
    for c in ("proba.0", "proba.1"):
        bad[c] = np.where(bad[c] > 0.5, 0.99, 0.01)
    rep2 = E.estimate_report(cur, reference=bad)
    assert rep2.calibration is not None and rep2.calibration.poor
    assert any("poorly calibrated" in n for n in rep2.notes)
    assert not any(v.drop for v in rep2.versions)  # an unreliable estimate raises no finding
    unlabelled_ref = E.estimate_report(cur, reference=ref.assign(labelled=False))
    assert unlabelled_ref.calibration is None and not any(v.drop for v in unlabelled_ref.versions)
    assert any("no labels yet" in n for n in unlabelled_ref.notes)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(400, 3000),
       center=st.floats(-1.0, 3.0))
def test_no_shift_calibrated_estimate_equals_realised(seed: int, n: int, center: float) -> None:
    rng = np.random.default_rng(seed)
    p1 = 1.0 / (1.0 + np.exp(-rng.normal(center, 1.5, n)))
    y = rng.random(n) < p1
    conf = np.maximum(p1, 1 - p1)
    realised = float(np.mean((p1 > 0.5) == y))
    e = E.cbpe_accuracy(conf, z=4.0)  # 4 sd: a fixed tolerance that fails ~1 in 16,000 draws
    assert e.lower is not None and e.upper is not None
    assert e.lower <= realised <= e.upper
    assert abs(e.estimate - realised) <= 4.0 * 0.5 / np.sqrt(n)  # type: ignore[operator]  # set for n > 0


def calibrated_events(*, seed: int, t0: datetime, model: str = "churn",
                      service: str = "scorer") -> list[dict[str, object]]:
    """ML event documents from the real adapter: a labelled reference day of v1 from ``t0``,
    then a day without labels where v1 sees the same inputs and v2 inputs near its decision
    boundary (covariate shift). The score is the model's true probability of the class it
    predicted."""
    from logsight.adapters import MlEvents
    from logsight.ecs import Service

    docs: list[dict[str, object]] = []
    ml = MlEvents(lambda kind, doc: docs.append(dict(doc)) or True, Service(name=service),
                  trace=False)
    rng = np.random.default_rng(seed)
    for day in (0, 1):
        for i in range(800):
            ts = t0 + timedelta(days=day, seconds=i * 100)
            version = "v2" if day == 1 and i % 2 else "v1"
            x = rng.normal(0.2 if version == "v2" else 2.0, 1.0)
            p_b = 1.0 / (1.0 + np.exp(-x))
            label = "b" if rng.random() < p_b else "a"
            pred = "b" if p_b >= 0.5 else "a"
            rid = f"r-{day}-{i}"
            ml.log_prediction(model=model, version=version, features={"x": float(x)},
                              prediction=pred, score=float(max(p_b, 1 - p_b)),
                              request_id=rid, timestamp=ts)
            if day == 0:  # the second day's labels have not landed yet
                ml.log_feedback(rid, label, model=model, timestamp=ts + timedelta(hours=1))
    return docs


def test_cli_estimate_flags_the_shifted_version_before_its_labels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.cli import main

    events = tmp_path / "mlevents.ndjson"
    docs = calibrated_events(seed=5, t0=datetime(2026, 12, 1, tzinfo=UTC))
    events.write_text("".join(json.dumps(d, default=str) + "\n" for d in docs))
    args = ["performance", "--model", "churn", "--input", str(events),
            "--from", "2026-12-02T00:00:00Z", "--baseline-from", "2026-12-01T00:00:00Z",
            "--baseline-to", "2026-12-02T00:00:00Z", "--estimate"]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    est = out["estimate"]
    assert est["reference_n"] == 800 and not est["calibration"]["poor"]
    by = {v["version"]: v for v in est["versions"]}
    assert by["v1"]["realised"] is None and by["v1"]["n_labelled"] == 0
    assert by["v1"]["estimate"]["lower"] <= est["reference_accuracy"]  # v1 unchanged
    assert not by["v1"]["drop"] and by["v2"]["drop"]
    drops = [f for f in out["findings"] if f["kind"] == "estimated_performance_drop"]
    assert [f["subject"] for f in drops] == ["v2"]
    assert "no labels yet" in drops[0]["summary"]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "estimated accuracy (CBPE)" in text.output and "DROP" in text.output
    # without --estimate nothing of it
    plain = CliRunner().invoke(main, [*args[:-1], "--json"])
    assert "estimate" not in json.loads(plain.stdout)


def _regression(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    # heteroscedastic noise: the error grows with |x|, so moving the inputs changes the MAE
    x = rng.normal(shift, 1.0, n)
    y = 2.0 * x + rng.normal(0.0, 0.2 + 0.5 * np.abs(x), n)
    return pd.DataFrame({"prediction_value": 2.0 * x, "label_value": y, "feature.x": x})


def test_dle_follows_a_covariate_shift_better_than_last_known() -> None:
    from sklearn.exceptions import NotFittedError

    from logsight.analysis.performance.dle import DirectLossEstimator

    rng = np.random.default_rng(2)
    ref = _regression(rng, 4000, 0.0)
    with pytest.raises(NotFittedError):
        DirectLossEstimator().estimate(ref)
    dle = DirectLossEstimator(random_state=0).fit(ref)
    assert dle.fit(ref) is dle and dle.columns_ == ["prediction_value", "feature.x"]
    last_known = float(np.mean(np.abs(ref["prediction_value"] - ref["label_value"])))
    err_dle, err_naive = [], []
    for shift in np.linspace(0.0, 2.0, 10):
        cur = _regression(rng, 2000, float(shift))
        true_mae = float(np.mean(np.abs(cur["prediction_value"] - cur["label_value"])))
        est = dle.estimate(cur.drop(columns="label_value"))  # no labels needed
        assert est.mae is not None and est.rmse is not None and est.rmse >= est.mae * 0.99
        err_dle.append(abs(est.mae - true_mae))
        err_naive.append(abs(last_known - true_mae))
    assert np.mean(err_dle) < 0.5 * np.mean(err_naive)
    assert np.mean(err_dle) < 0.05 * last_known + 0.02


def test_loss_report_per_version_with_realised_next_to_it() -> None:
    from logsight.analysis.performance.dle import loss_report

    rng = np.random.default_rng(4)
    ref = _regression(rng, 3000, 0.0).assign(labelled=True, model_version="v1")
    cur = pd.concat([_regression(rng, 1500, 0.0).assign(labelled=True, model_version="v1"),
                     _regression(rng, 1500, 1.5).assign(labelled=False, model_version="v2")])
    rep = loss_report(cur, reference=ref)
    by = {v.version: v for v in rep.versions}
    assert by["v1"].realised_mae is not None and by["v2"].realised_mae is None
    assert by["v1"].estimate.mae == pytest.approx(by["v1"].realised_mae, rel=0.1)
    assert by["v2"].estimate.mae > 1.3 * by["v1"].estimate.mae  # type: ignore[operator]  # both estimated
    assert any("no labelled reference" in n for n in loss_report(cur, reference=None).notes)


def test_cli_estimate_for_a_regression_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.adapters import MlEvents
    from logsight.cli import main
    from logsight.ecs import Service

    docs: list[dict[str, object]] = []
    ml = MlEvents(lambda kind, doc: docs.append(dict(doc)) or True, Service(name="pricer"),
                  trace=False)
    rng = np.random.default_rng(8)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    for day in (0, 1):
        frame = _regression(rng, 600, 1.5 if day else 0.0)
        for i, (x, pred, label) in enumerate(zip(frame["feature.x"], frame["prediction_value"],
                                                 frame["label_value"], strict=True)):
            ts = t0 + timedelta(days=day, seconds=i * 140)
            rid = f"q-{day}-{i}"
            ml.log_prediction(model="price", version="v1", features={"x": float(x)},
                              prediction=float(pred), request_id=rid, timestamp=ts)
            if day == 0:
                ml.log_feedback(rid, float(label), model="price",
                                timestamp=ts + timedelta(hours=1))
    events = tmp_path / "reg.ndjson"
    events.write_text("".join(json.dumps(d, default=str) + "\n" for d in docs))
    res = CliRunner().invoke(main, [
        "performance", "--model", "price", "--input", str(events), "--task", "regression",
        "--from", "2026-12-02T00:00:00Z", "--baseline-from", "2026-12-01T00:00:00Z",
        "--baseline-to", "2026-12-02T00:00:00Z", "--estimate", "--json"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.stdout)["estimate"]
    assert est["metric"] == "mae" and est["reference_n"] == 600
    (v,) = est["versions"]
    assert v["realised_mae"] is None and v["estimate"]["mae"] > 1.3 * est["reference_mae"]
