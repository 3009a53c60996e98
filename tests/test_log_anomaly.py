"""Log anomaly detection: features, detector, findings, drift, file reader and CLI."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from logsight.analysis.logs import (
    WINDOW_COLUMNS,
    BaselineError,
    LogAnomalyDetector,
    LogAnomalyModel,
    assign_windows,
    detect_log_anomalies,
    fit_log_model,
    js_test,
    normalize_level,
    parse_window,
    prepare_frame,
    psi_test,
    score_logs,
    split_baseline,
    template_drift,
    window_features,
)
from logsight.analysis.templates import TemplateMiner
from logsight.cli import main
from logsight.cli.logs_cmd import _shorten
from logsight.cli.logs_cmd import parse_time as cli_parse_time
from logsight.findings import finding_id
from logsight.sources.logs import LogFileError, load_log_file, parse_raw_line, read_log_file

T0 = pd.Timestamp("2024-05-01T10:00:00Z")
BURST = "connection to feature store refused after {} retries"
SERVICES = {
    "api": ["GET /v1/predict 200 in {} ms", "user {} logged in", "cache hit ratio {}"],
    "worker": ["processed batch {} of size {}", "heartbeat ok seq {}"],
    "trainer": ["epoch {} loss {}", "saved checkpoint step {}"],
}


def scenario(
    seed: int, *, minutes: int = 16, burst_minute: int | None = 13, burst: int = 25
) -> pd.DataFrame:
    """About 30 lines/min per service; an error burst of a never-seen template in `worker`."""
    rng = np.random.default_rng(seed)
    rows = []
    for minute in range(minutes):
        for svc, templates in SERVICES.items():
            for _ in range(rng.poisson(30)):
                tpl = templates[rng.integers(len(templates))]
                rows.append({
                    "timestamp": T0 + pd.Timedelta(minutes=minute, seconds=rng.uniform(0, 60)),
                    "service": svc,
                    "level": "warn" if rng.random() < 0.02 else "info",
                    "message": tpl.format(*rng.integers(0, 1000, size=3)),
                })
            if svc == "worker" and minute == burst_minute:
                for _ in range(burst):
                    rows.append({
                        "timestamp": T0 + pd.Timedelta(minutes=minute, seconds=rng.uniform(0, 60)),
                        "service": svc,
                        "level": "error",
                        "message": BURST.format(rng.integers(1, 9)),
                    })
    frame = pd.DataFrame(rows).sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame["id"] = [f"doc{i}" for i in range(len(frame))]
    return frame


# -- small pieces ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "level"),
    [("WARNING", "warn"), ("Error", "error"), ("critical", "fatal"), (None, "info"),
     ("weird", "info"), ("TRACE", "debug")],
)
def test_normalize_level(raw: str | None, level: str) -> None:
    assert normalize_level(raw) == level


def test_parse_window() -> None:
    assert parse_window("1min") == pd.Timedelta(minutes=1)
    assert parse_window("5m") == pd.Timedelta(minutes=5)
    assert parse_window("30s") == pd.Timedelta(seconds=30)
    for bad in ("0s", "-1min", "soon", ""):
        with pytest.raises(ValueError, match="window"):
            parse_window(bad)


def test_parse_raw_line() -> None:
    assert parse_raw_line("2024-05-01T10:00:01Z ERROR db down") == (
        "2024-05-01T10:00:01Z", "error", "ERROR db down"
    )
    # every recognised format comes back as one ISO-8601 spelling, in UTC
    assert parse_raw_line("[2024-05-01 10:00:01,250] [WARN] slow") == (
        "2024-05-01T10:00:01.250000Z", "warn", "[WARN] slow"
    )
    # a leading 10-digit number in 2000-2100 is epoch seconds (BGL's first column)
    ts, level, msg = parse_raw_line("1117838570 R02 RAS KERNEL FATAL data TLB error")
    assert (ts, level, msg) == ("2005-06-03T22:42:50Z", "fatal", "R02 RAS KERNEL FATAL data TLB error")
    assert parse_raw_line("nothing to see")[:2] == (None, None)


def test_window_features_known_values() -> None:
    frame = prepare_frame(pd.DataFrame({
        "timestamp": [T0, T0 + pd.Timedelta(seconds=10), T0 + pd.Timedelta(seconds=20),
                      T0 + pd.Timedelta(minutes=2), T0 + pd.Timedelta(seconds=5)],
        "service": ["a", "a", "a", "a", "b"],
        "level": ["info", "ERROR", "error", "info", "warning"],
        "message": ["m", "m", "m", "m", "m"],
    }))
    templates = np.array([1, 2, 3, 1, 1])
    windows = assign_windows(frame, window="1min")
    feats = window_features(frame, templates, windows, top=[1], known={1, 2},
                            window_seconds=60.0)
    a0 = feats.loc[("a", T0)]
    assert a0["total"] == 3
    assert a0["level_info"] == 1 and a0["level_error"] == 2
    assert a0["error_ratio"] == pytest.approx(2 / 3)
    assert a0["rate"] == pytest.approx(3 / 60)
    assert a0["tpl_1"] == 1 and a0["tpl_other"] == 1  # template 2 is known, not top
    assert a0["new_templates"] == 1 and a0["new_lines"] == 1 and a0["new_error_lines"] == 1
    assert a0["distinct_templates"] == 3
    # the silent minute between a's windows is a row of zeros
    silent = feats.loc[("a", T0 + pd.Timedelta(minutes=1))]
    assert silent["total"] == 0 and silent["error_ratio"] == 0
    assert feats.loc[("b", T0)]["level_warn"] == 1
    assert len(feats) == 4


def test_line_windows_without_timestamps() -> None:
    frame = prepare_frame(pd.DataFrame({"message": [f"m {i}" for i in range(7)]}))
    windows = assign_windows(frame, window="1min", window_lines=3)
    assert windows.nunique() == 3
    assert (windows.iloc[:3] == windows.iloc[0]).all()
    mask = split_baseline(frame, 0.5)
    assert mask.tolist() == [True] * 4 + [False] * 3  # rows, not time, without timestamps


def test_split_baseline_forms() -> None:
    frame = prepare_frame(scenario(0, minutes=4, burst_minute=None))
    by_duration = split_baseline(frame, "2min", window="1min")
    by_time = split_baseline(frame, str(T0 + pd.Timedelta(minutes=2)), window="1min")
    # the cut lies on a window boundary: both parts hold whole windows
    assert frame["timestamp"][by_duration].max() < T0 + pd.Timedelta(minutes=2)
    assert frame["timestamp"][~by_duration].min() >= T0 + pd.Timedelta(minutes=2)
    assert by_duration.tolist() == by_time.tolist()
    assert 0 < by_duration.sum() < len(frame)
    with pytest.raises(ValueError, match="fraction"):
        split_baseline(frame, 1.5)


def test_drift_tests_known_values() -> None:
    before, after = np.array([50, 50]), np.array([90, 10])
    psi = psi_test(before, after)
    assert psi.score == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5), rel=1e-3)
    # the shared registered test (logsight.analysis.drift) names the direction "above"
    assert psi.drifted and psi.direction == "above"
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    kl = lambda x, y: float(np.sum(x * np.log2(x / y)))  # noqa: E731  (a one-off formula)
    assert js_test(before, after).score == pytest.approx(
        math.sqrt((kl(p, m) + kl(q, m)) / 2), rel=1e-6
    )
    assert not psi_test(before, before).drifted


# -- the detector --------------------------------------------------------------------------------
def test_detector_flags_exactly_the_burst_window() -> None:
    for seed in range(3):
        result = detect_log_anomalies(scenario(seed), baseline="10min", random_state=seed)
        log_findings = [f for f in result.findings if f.kind == "log_anomaly"]
        assert [(f.service, f.window_start) for f in log_findings] == [
            ("worker", (T0 + pd.Timedelta(minutes=13)).to_pydatetime())
        ]
        f = log_findings[0]
        new = f.evidence["new_templates"]
        assert new[0]["template"] == BURST.format("<*>")
        assert new[0]["count"] == 25
        assert new[0]["example"].startswith("connection to feature store refused")
        by_feature = {d["feature"]: d for d in f.evidence["deviations"]}
        assert by_feature["level_error"]["observed"] == 25
        assert by_feature["level_error"]["baseline"] == 0
        # sample links point at the burst's own documents first
        frame = scenario(seed).set_index("id")
        assert frame.loc[f.sample_ids[0], "message"].startswith("connection to feature store")
        assert f.id == finding_id("log_anomaly", "worker", None, f.window_start, f.window_end)


def test_clean_windows_are_not_flagged() -> None:
    flagged = 0
    windows = 0
    for seed in range(10, 14):
        result = detect_log_anomalies(
            scenario(seed, burst_minute=None), baseline="10min", random_state=seed
        )
        flagged += len(result.findings)
        windows += len(result.features)
    assert windows >= 60
    assert flagged <= 1


GPU_ERROR = "GPU {} fell off the bus (Xid {})"


def regular(minutes: int = 20, *, per_minute: int = 1, burst_minute: int | None = None,
            burst: int = 23, extra: list[dict[str, object]] | None = None) -> pd.DataFrame:
    """A perfectly regular service (the same heartbeat lines at the same seconds every minute)
    with, optionally, ``burst`` ERROR lines of a never-seen template in ``burst_minute``."""
    rows: list[dict[str, object]] = []
    for minute in range(minutes):
        for k in range(per_minute):
            rows.append({"timestamp": T0 + pd.Timedelta(minutes=minute, seconds=1 + k),
                         "service": "gpu-node", "level": "info",
                         "message": f"heartbeat ok from worker {k}"})
        if minute == burst_minute:
            for i in range(burst):
                rows.append({"timestamp": T0 + pd.Timedelta(minutes=minute, seconds=30 + i),
                             "service": "gpu-node", "level": "error",
                             "message": GPU_ERROR.format(i % 4, 79)})
    rows.extend(extra or [])
    frame = pd.DataFrame(rows).sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame["id"] = [f"doc{i}" for i in range(len(frame))]
    return frame


@pytest.mark.parametrize("per_minute", [1, 10])
def test_regular_baseline_burst_is_flagged(per_minute: int) -> None:
    # the demo's case: 23 never-seen ERROR lines against a zero-variance baseline; the forest
    # scores every window alike there, so the overwhelming-evidence rule must carry it
    result = detect_log_anomalies(regular(per_minute=per_minute, burst_minute=15),
                                  baseline="10min")
    assert [(f.service, f.window_start) for f in result.findings] == [
        ("gpu-node", (T0 + pd.Timedelta(minutes=15)).to_pydatetime())
    ]
    f = result.findings[0]
    assert f.evidence["overwhelming"] is True
    assert f.severity == "high"
    assert f.evidence["new_templates"][0]["count"] == 23
    by_feature = {d["feature"]: d for d in f.evidence["deviations"]}
    assert by_feature["error_ratio"]["observed"] == pytest.approx(23 / (23 + per_minute), abs=1e-4)
    # finite z-scores: the baseline's zero spread is floored (Poisson sd for counts)
    assert all(math.isfinite(d["z"]) for d in f.evidence["deviations"])
    assert by_feature["level_error"]["z"] == pytest.approx(23.0)


def test_regular_baseline_without_burst_is_not_flagged() -> None:
    assert detect_log_anomalies(regular(), baseline="10min").findings == []
    # a lone never-seen error line is worth a look, not overwhelming: the blind forest has the
    # say there, and it does not single the window out
    lone = [{"timestamp": T0 + pd.Timedelta(minutes=14, seconds=30), "service": "gpu-node",
             "level": "error", "message": "disk quota warning escalated"}]
    result = detect_log_anomalies(regular(extra=lone), baseline="10min")
    assert result.findings == []
    assert not result.decision["overwhelming"].any()


def _constant_baseline(lines: int, windows: int = 12) -> pd.DataFrame:
    idx = pd.MultiIndex.from_product(
        [["svc"], pd.date_range(T0, periods=windows, freq="1min")], names=["service", "window"]
    )
    return pd.DataFrame({"total": float(lines), "level_info": float(lines), "level_error": 0.0,
                         "level_fatal": 0.0, "error_ratio": 0.0, "new_error_lines": 0.0},
                        index=idx)


def _window(info: int, errors: int, new_errors: int) -> pd.DataFrame:
    idx = pd.MultiIndex.from_tuples([("svc", T0 + pd.Timedelta(hours=1))],
                                    names=["service", "window"])
    total = info + errors
    return pd.DataFrame({"total": float(total), "level_info": float(info),
                         "level_error": float(errors), "level_fatal": 0.0,
                         "error_ratio": errors / max(total, 1), "new_error_lines": float(new_errors)},
                        index=idx)


def test_overwhelming_rule_known_values() -> None:
    det = LogAnomalyDetector(random_state=0).fit(_constant_baseline(100))
    # error count: baseline 0, Poisson floor sd 1 -> z = count; needs z >= 10 (and >= 5 lines)
    assert det.overwhelming(_window(100, 10, 0)).tolist() == [True]
    assert det.overwhelming(_window(100, 9, 0)).tolist() == [False]
    # error ratio 9/109 = 0.083 is below min_ratio_change, so 9 known errors are not enough
    assert det.z_scores(_window(100, 9, 0))["error_ratio"].iloc[0] == pytest.approx(
        (9 / 109) / 0.02
    )
    # never-seen error lines alone
    assert det.overwhelming(_window(100, 0, 10)).tolist() == [True]
    # a ratio jump needs at least min_change error lines: 4 of 5 is a small window, not a burst
    small = LogAnomalyDetector(random_state=0).fit(_constant_baseline(1))
    assert small.overwhelming(_window(1, 4, 0)).tolist() == [False]
    assert small.overwhelming(_window(1, 5, 0)).tolist() == [True]
    with pytest.raises(ValueError, match="overwhelming_z"):
        LogAnomalyDetector(overwhelming_z=1.0).fit(_constant_baseline(1))


@settings(max_examples=25, deadline=None)
@given(lines=st.integers(1, 200), info=st.integers(0, 400), errors=st.integers(0, 60),
       new_share=st.floats(0.0, 1.0))
def test_decision_rule_invariants(lines: int, info: int, errors: int, new_share: float) -> None:
    det = LogAnomalyDetector(n_estimators=20, random_state=0).fit(_constant_baseline(lines))
    window = _window(info, errors, int(errors * new_share))
    d = det.decide(window).iloc[0]
    # the final decision is exactly the documented rule, and overwhelming evidence always wins
    assert d["anomalous"] == ((d["outlier"] and d["meaningful"]) or d["overwhelming"])
    assert det.predict(window).tolist() == [d["anomalous"]]
    # no error lines: never overwhelming; the baseline window itself: never anomalous
    if errors == 0:
        assert not d["overwhelming"]
    assert not det.predict(_constant_baseline(lines, windows=1)).any()


def test_windows_frame_matches_the_findings() -> None:
    result = detect_log_anomalies(scenario(0), baseline="10min")
    table = result.windows()
    assert list(table.columns[:8]) == list(WINDOW_COLUMNS)
    assert len(table) == len(result.features)
    assert table["window"].is_monotonic_increasing
    assert (table["window_end"] - table["window"] == pd.Timedelta(minutes=1)).all()
    flagged = table[table["anomalous"]]
    assert sorted(zip(flagged["service"], flagged["window"], strict=True)) == sorted(
        (f.service, pd.Timestamp(f.window_start)) for f in result.findings
    )
    assert int(table["level_error"].sum()) == 25


def test_finding_ids_are_stable_across_runs() -> None:
    frame = scenario(3)
    first = detect_log_anomalies(frame, baseline="10min").findings
    again = detect_log_anomalies(frame.sample(frac=1.0, random_state=1), baseline="10min").findings
    assert [f.id for f in first] == [f.id for f in again]
    assert len({f.id for f in first}) == len(first)


def test_detector_contract_and_errors() -> None:
    det = LogAnomalyDetector(contamination=0.1, random_state=0)
    assert det.get_params()["contamination"] == 0.1
    empty = pd.DataFrame({"total": [1.0]}, index=pd.MultiIndex.from_tuples(
        [("a", T0)], names=["service", "window"]))
    with pytest.raises(NotFittedError):
        det.score_samples(empty)
    with pytest.raises(ValueError, match="contamination"):
        LogAnomalyDetector(contamination=0.9).fit(empty)
    with pytest.raises(ValueError, match="baseline"):
        LogAnomalyDetector().fit(empty.iloc[0:0])
    with pytest.raises(ValueError, match="baseline"):
        detect_log_anomalies(scenario(0, minutes=3), baseline="1h")


def test_model_persistence_round_trip(tmp_path: Path) -> None:
    frame = scenario(5)
    base = frame[frame["timestamp"] < T0 + pd.Timedelta(minutes=10)]
    rest = frame[frame["timestamp"] >= T0 + pd.Timedelta(minutes=10)]
    model, _ = fit_log_model(base)
    path = tmp_path / "model.joblib"
    model.save(path)
    loaded = LogAnomalyModel.load(path)
    assert loaded.feature_names == model.feature_names
    assert loaded.version == model.version
    assert loaded.miner.templates() == model.miner.templates()
    a = score_logs(model, rest)
    b = score_logs(loaded, rest)
    np.testing.assert_allclose(a.scores, b.scores)
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    bogus = tmp_path / "bogus.joblib"
    import joblib

    joblib.dump({"format": "something else"}, bogus)
    with pytest.raises(ValueError, match="not a logsight"):
        LogAnomalyModel.load(bogus)


def test_detector_saved_before_the_overwhelming_rule_still_loads() -> None:
    import pickle

    det = LogAnomalyDetector(n_estimators=10, random_state=0).fit(_constant_baseline(3))
    for name in ("overwhelming_z", "overwhelming_new_error_lines"):
        delattr(det, name)  # what a detector pickled by the previous release looks like
    old = pickle.loads(pickle.dumps(det))
    assert old.overwhelming_z == LogAnomalyDetector().overwhelming_z
    assert old.predict(_window(3, 0, 12)).tolist() == [True]


def test_template_drift_on_deploy() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):
        v2 = i >= 200
        if v2 and rng.random() < 0.5:
            msg = f"fallback model used for request {i}"
        else:
            msg = f"served request {i} in {rng.integers(1, 50)} ms"
        rows.append({"timestamp": T0 + pd.Timedelta(seconds=i), "service": "api",
                     "level": "info", "message": msg, "version": "2.0" if v2 else "1.0",
                     "id": f"d{i}"})
    frame = pd.DataFrame(rows)
    templates, miner = TemplateMiner(), None
    ids = np.asarray(templates.add_many(frame["message"].tolist()))
    miner = templates
    findings = template_drift(frame, ids, miner=miner)
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "template_drift" and f.subject == "1.0->2.0"
    top = f.evidence["shifted_templates"][0]
    assert top["template"] == "fallback model used for request <*>"
    assert top["share_before"] == 0 and top["share_after"] > 0.3
    # no version change, or the same mix after it: no finding
    same = frame.assign(message=[f"served request {i} in 3 ms" for i in range(400)])
    ids2 = np.asarray(TemplateMiner().add_many(same["message"].tolist()))
    assert template_drift(same, ids2) == []
    with pytest.raises(ValueError, match="unknown drift test"):
        template_drift(frame, ids, test="nope")
    # the deploy is keyed on its first line: a run over another range (here without the
    # first 50 lines) writes the same finding
    later = template_drift(frame.iloc[50:], ids[50:], miner=miner)
    assert [x.id for x in later] == [f.id]
    assert pd.Timestamp(f.window_start) == pd.Timestamp(f.window_end) == T0 + pd.Timedelta(
        seconds=200)
    assert f.model_version == "2.0"
    assert f.id == finding_id("template_drift", "api", "1.0->2.0", f.window_start,
                              f.window_end, model_version="2.0")
    # a score beyond the threshold means drift; the threshold is passed through
    assert template_drift(frame, ids, threshold=f.score + 1) == []
    assert template_drift(frame, ids, test="jensenshannon")[0].evidence["test"] == (
        "jensenshannon")
    for bad in ({"threshold": 0.0}, {"epsilon": 0.0}, {"min_lines": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            template_drift(frame, ids, **bad)


@pytest.mark.parametrize("test", ["psi", "jensenshannon"])
@pytest.mark.parametrize("epsilon", [1e-4, 1e-2])
def test_template_drift_contributions_add_up_to_the_score(test: str, epsilon: float) -> None:
    """The per-template contributions use the test's own smoothing: they sum to the PSI (or
    to the squared JS distance), whatever ``epsilon``."""
    rng = np.random.default_rng(3)
    n = 300
    version = np.where(np.arange(n) >= n // 2, "b", "a")
    # three templates before, one of them gone and a new one after
    tpl = np.where(version == "a", rng.integers(0, 3, n), rng.integers(1, 4, n))
    frame = pd.DataFrame({
        "timestamp": [T0 + pd.Timedelta(seconds=i) for i in range(n)], "service": "svc",
        "level": "info", "message": [f"m{t}" for t in tpl], "version": version,
        "id": [f"d{i}" for i in range(n)],
    })
    [f] = template_drift(frame, tpl, test=test, epsilon=epsilon, top=10)
    total = sum(t["contribution"] for t in f.evidence["shifted_templates"])
    expected = f.score if test == "psi" else f.score ** 2
    assert total == pytest.approx(expected, abs=5e-4)  # contributions are rounded to 1e-4
    before = np.bincount(tpl[:n // 2], minlength=4)
    after = np.bincount(tpl[n // 2:], minlength=4)
    if test == "psi":
        assert f.score == pytest.approx(math.fsum(
            (q - p) * math.log(q / p)
            for p, q in zip(np.maximum(before / before.sum(), epsilon),
                            np.maximum(after / after.sum(), epsilon), strict=True)))


# -- files and CLI -----------------------------------------------------------------------------
def _write_ndjson(path: Path, frame: pd.DataFrame) -> None:
    with path.open("w") as fh:
        for row in frame.itertuples():
            fh.write(json.dumps({
                "@timestamp": row.timestamp.isoformat(), "log.level": row.level,
                "message": row.message, "service": {"name": row.service}, "_id": row.id,
            }) + "\n")


def test_read_log_file_raw_and_ndjson(tmp_path: Path) -> None:
    raw = tmp_path / "app.log"
    raw.write_text("2024-05-01T10:00:00Z INFO started\n\n2024-05-01T10:00:01Z ERROR boom 3\n")
    frame = read_log_file(raw)
    assert frame["service"].tolist() == ["app", "app"]
    assert frame["level"].tolist() == ["info", "error"]
    assert frame["id"].tolist() == ["line:1", "line:3"]
    assert frame["timestamp"].notna().all()
    nd = tmp_path / "x.ndjson"
    _write_ndjson(nd, scenario(0, minutes=1, burst_minute=None).head(3))
    frame = read_log_file(nd)
    assert set(frame["service"]) <= set(SERVICES)
    assert frame["id"].tolist() == ["doc0", "doc1", "doc2"]
    with pytest.raises(ValueError, match="not found"):
        read_log_file(tmp_path / "missing.log")


def test_cli_file_mode_json_and_table(tmp_path: Path) -> None:
    path = tmp_path / "logs.ndjson"
    _write_ndjson(path, scenario(1))
    runner = CliRunner()
    res = runner.invoke(main, ["logs", "anomalies", "--input", str(path), "--baseline", "10min",
                               "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    docs = out["findings"]
    assert [(d["kind"], d["service"]) for d in docs] == [("log_anomaly", "worker")]
    # the counts of what was analysed: every line, the windows after the 10-minute baseline
    assert out["lines"] == len(scenario(1))
    assert out["windows_analysed"] == 6 * len(SERVICES)
    assert docs[0]["window_start"] == "2024-05-01T10:13:00Z"
    assert docs[0]["evidence"]["new_templates"][0]["template"] == BURST.format("<*>")
    model = tmp_path / "model.joblib"
    res = runner.invoke(main, ["logs", "anomalies", "--input", str(path), "--baseline", "10min",
                               "--save-model", str(model)])
    assert res.exit_code == 0, res.output
    assert "worker" in res.output and "never-seen" in res.output
    assert LogAnomalyModel.load(model).feature_names
    # scoring the whole file with the saved model finds the same burst window
    res = runner.invoke(main, ["logs", "anomalies", "--input", str(path), "--model", str(model),
                               "--json"])
    assert res.exit_code == 0, res.output
    assert [d["id"] for d in json.loads(res.output)["findings"]] == [docs[0]["id"]]
    res = runner.invoke(main, ["logs", "anomalies", "--input", str(path), "--model",
                               str(path)])
    assert res.exit_code != 0 and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "0s"], "window must be positive"),
        (["--baseline", "2.0"], "baseline fraction"),
        (["--contamination", "lots"], "contamination"),
        (["--baseline", "3h"], "baseline"),
    ],
)
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "logs.ndjson"
    _write_ndjson(path, scenario(1, minutes=3, burst_minute=None))
    res = CliRunner().invoke(main, ["logs", "anomalies", "--input", str(path), *args])
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


# -- user-test regressions: times, file filters, file format, messages, table ------------------
def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["logs", "anomalies", *args])


def test_cli_time_parser_takes_ages_and_the_old_iso_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert cli_parse_time("6h", now=now) == now - timedelta(hours=6)
    assert cli_parse_time("now - 2h", now=now) == now - timedelta(hours=2)
    assert cli_parse_time("now", now=now) == now
    assert cli_parse_time("2024-05-01T10:00:00+02:00", now=now) == datetime(
        2024, 5, 1, 8, 0, tzinfo=UTC)
    # a date-first form only pandas read, kept for compatibility; naive = UTC
    assert cli_parse_time("2024/05/01 10:00", now=now) == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    for bad in ("yesterday", "6 hours", "1"):
        with pytest.raises(click.BadParameter, match="neither an ISO-8601 time nor an age"):
            cli_parse_time(bad, now=now, option="--from")


def _recent_ndjson(path: Path, now: datetime) -> pd.DataFrame:
    """Lines of two services, one every minute from 8h ago to 1h ago (so that ages such as
    --from 6h --to 3h select whole minutes well inside the file, whatever the test's speed)."""
    start = pd.Timestamp(now).floor("1min") - pd.Timedelta(hours=8)
    frame = pd.DataFrame({
        "timestamp": [start + pd.Timedelta(minutes=m) for m in range(7 * 60) for _ in (0, 1)],
        "service": ["api", "worker"] * (7 * 60),
        "level": "info",
        "message": [f"handled job {i}" for i in range(7 * 60 * 2)],
    })
    frame["id"] = [f"doc{i}" for i in range(len(frame))]
    _write_ndjson(path, frame)
    return frame


def test_cli_file_from_to_ages_filter_the_file(tmp_path: Path) -> None:
    path = tmp_path / "recent.ndjson"
    frame = _recent_ndjson(path, datetime.now(UTC))
    res = _cli("--input", str(path), "--from", "6h", "--to", "3h", "--json")
    assert res.exit_code == 0, res.output
    # 3 hours of minutes, two lines each (+-1 minute: the clock moves between write and run)
    assert abs(json.loads(res.output)["lines"] - 3 * 60 * 2) <= 2
    assert json.loads(res.output)["lines"] < len(frame)
    # an age range the wrong way round is an error naming --from, never year 0001
    res = _cli("--input", str(path), "--from", "1h", "--to", "3h")
    assert res.exit_code == 2 and "--from" in res.output and "is not before --to" in res.output
    for bad in (["--from", "yesterday"], ["--to", "banana"]):
        res = _cli("--input", str(path), *bad)
        assert res.exit_code == 2, res.output
        assert bad[0] in res.output and "Traceback" not in res.output
    # a range the file does not reach says what the file spans
    res = _cli("--input", str(path), "--from", "30m")
    assert res.exit_code == 1 and "its lines span" in res.output


def test_cli_file_service_names_raw_lines_and_filters_ndjson(tmp_path: Path) -> None:
    raw = tmp_path / "app.log"
    raw.write_text("".join(f"2024-05-01T10:{i // 20:02d}:{i % 20 * 3:02d}Z INFO job {i} ok\n"
                           for i in range(200)))
    res = _cli("--input", str(raw), "--service", "billing", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["lines"] == 200  # raw lines belong to --service
    nd = tmp_path / "two.ndjson"
    frame = scenario(2, minutes=6, burst_minute=None)
    _write_ndjson(nd, frame)
    res = _cli("--input", str(nd), "--service", "worker", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["lines"] == int((frame["service"] == "worker").sum())
    assert {d["service"] for d in out["findings"]} <= {"worker"}
    res = _cli("--input", str(nd), "--service", "nosuch")
    assert res.exit_code == 1
    assert f"no lines of service 'nosuch' in {nd}; services seen: {sorted(SERVICES)}" in res.output
    assert "Traceback" not in res.output


def _bad_ndjson(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "bad.ndjson"
    _write_ndjson(path, scenario(3, minutes=4, burst_minute=None))
    lines = path.read_text().splitlines()
    lines[5:5] = ["not json {", '{"@timestamp": "garbage", "message": "x"}', '{"message": "y"}']
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 3


def test_ndjson_file_bad_lines_are_errors_or_skipped(tmp_path: Path) -> None:
    path, good = _bad_ndjson(tmp_path)
    with pytest.raises(LogFileError, match="line 6 is not JSON"):
        load_log_file(path)
    data = load_log_file(path, skip_bad_lines=True)
    assert data.format == "ndjson" and len(data.frame) == good
    assert data.skipped == [(6, "line 6 is not JSON (Expecting value)"),
                            (7, "line 7: @timestamp 'garbage' is not a time"),
                            (8, "line 8 has no @timestamp")]
    # no fake service named after the file
    assert set(data.frame["service"]) <= set(SERVICES)
    res = _cli("--input", str(path))
    assert res.exit_code == 2 and "line 6 is not JSON" in res.output and "--input" in res.output
    path.write_text("\n".join(ln for ln in path.read_text().splitlines() if ln != "not json {"))
    res = _cli("--input", str(path))
    assert res.exit_code == 2 and "line 6: @timestamp 'garbage' is not a time" in res.output
    res = _cli("--input", str(path), "--skip-bad-lines", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["lines"] == good and out["skipped_lines"] == [6, 7]
    assert "skipped 2 bad line(s)" in res.stderr


def test_raw_file_format_is_decided_by_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_text('\n2024-05-01T10:00:00Z INFO start\n{"not": "a document"}\n')
    data = load_log_file(path)
    assert data.format == "raw" and data.skipped == []
    # the JSON-looking line is not read as NDJSON: it has no timestamp, so it continues the
    # event before it (multi-line events)
    assert data.frame["message"].tolist() == ['INFO start\n{"not": "a document"}']
    assert data.continuation_lines == 1 and data.timestamp_format == "iso8601"
    assert (data.frame["service"] == "mixed").all()
    with pytest.raises(LogFileError, match="is a directory"):
        read_log_file(tmp_path)


def test_empty_baseline_message_is_neutral() -> None:
    frame = scenario(4, minutes=4, burst_minute=None)
    with pytest.raises(BaselineError) as err:
        detect_log_anomalies(frame, baseline=str(T0 - pd.Timedelta(hours=1)))
    msg = str(err.value)
    assert msg.startswith("the baseline period (before 2024-05-01 09:00:00) holds no log lines")
    assert "choose a baseline that ends later or a range that starts earlier" in msg
    assert "--" not in msg  # no CLI flag: API callers have none
    with pytest.raises(BaselineError, match=r"no log lines after the baseline period \("):
        detect_log_anomalies(frame, baseline="1h")
    with pytest.raises(BaselineError, match="only 1 log line"):
        detect_log_anomalies(frame.head(1))
    with pytest.raises(ValueError, match="invalid baseline 'banana'"):
        split_baseline(prepare_frame(frame), "banana")


def test_cli_bad_options_exit_2_naming_the_option(tmp_path: Path) -> None:
    path = tmp_path / "logs.ndjson"
    _write_ndjson(path, scenario(1, minutes=3, burst_minute=None))
    one = tmp_path / "one.log"
    one.write_text("2024-05-01T10:00:00Z INFO started\n")
    res = _cli("--namespace", "BAD*")
    assert res.exit_code == 2 and "Usage:" in res.output and "--namespace" in res.output
    res = _cli("--input", str(path), "--baseline", "banana")
    assert res.exit_code == 2 and "--baseline" in res.output and "window" not in res.output
    res = _cli("--input", str(tmp_path))
    assert res.exit_code == 2 and "is a directory" in res.output
    res = _cli("--input", str(one))
    assert res.exit_code == 1 and "only 1 log line" in res.output
    assert "Traceback" not in res.output


@given(st.text(alphabet=st.sampled_from("ab cd,;"), max_size=80), st.integers(4, 60))
@settings(max_examples=200, deadline=None)
def test_shorten_cuts_at_words_within_width(text: str, width: int) -> None:
    out = _shorten(text, width)
    flat = " ".join(text.split())
    assert len(out) <= width
    if out == flat:
        return
    assert out.endswith("…") and flat.startswith(out[:-1])
    rest = flat[len(out) - 1:]
    # cut at a word boundary unless the only word boundary would leave less than half
    assert rest[:1] in (" ", ",", ";") or out[:-1].rfind(" ") < width // 2 or not rest


def test_cli_table_fits_and_cuts_at_word_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "long.ndjson"
    frame = scenario(1)
    long = "connection to the feature store was refused by the upstream proxy after {} retries"
    frame.loc[frame["level"] == "error", "message"] = [
        long.format(i) for i in range(int((frame["level"] == "error").sum()))]
    _write_ndjson(path, frame)
    res = _cli("--input", str(path), "--baseline", "10min")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(ln) for ln in lines) <= 160
    row = next(ln for ln in lines if ln.startswith("log_anomaly"))
    assert row.endswith("…") and row[-2] != " "
    assert "-0.000" not in res.output
    assert lines[-1].startswith("1 finding(s); ") and "line(s) read" in lines[-1]
    res = _cli("--input", str(path), "--baseline", "10min", "--json")
    out = json.loads(res.output)
    assert set(out) == {"findings", "windows_analysed", "lines", "read"}
    assert out["read"]["format"] == "ndjson" and out["read"]["notes"] == []


def test_cli_nothing_anomalous_says_what_was_analysed(tmp_path: Path) -> None:
    path = tmp_path / "calm.ndjson"
    frame = scenario(5, minutes=8, burst_minute=None)
    _write_ndjson(path, frame)
    res = _cli("--input", str(path), "--baseline", "4min")
    assert res.exit_code == 0, res.output
    assert f"no anomalous windows (12 window(s) scored, {len(frame)} line(s) read)" in res.output


def test_windows_cut_off_by_the_read_range_are_not_flagged() -> None:
    # steady 600 lines/min; the range ends at :59:20 and starts at :00:40, so the first and
    # last windows hold a fraction of a normal minute's lines
    rng = np.random.default_rng(3)
    start = T0 + pd.Timedelta(seconds=40)
    end = T0 + pd.Timedelta(minutes=59, seconds=20)
    n = int((end - start).total_seconds() * 10)
    ts = start + pd.to_timedelta(np.sort(rng.uniform(0, (end - start).total_seconds(), n)),
                                 unit="s")
    frame = pd.DataFrame({
        "timestamp": ts, "service": "steady", "level": "info",
        "message": [f"served request {i} in {i % 97} ms" for i in range(n)],
    })
    frame["id"] = [f"doc{i}" for i in range(n)]
    result = detect_log_anomalies(frame, baseline=0.5, start=start, end=end)
    assert result.findings == []
    windows = result.features.index.get_level_values("window")
    assert windows.max() + pd.Timedelta(minutes=1) <= end
    # the same frame without the explicit range: the data's own last window is not judged on
    # its (cut-off) volume either
    assert detect_log_anomalies(frame, baseline=0.5).findings == []
