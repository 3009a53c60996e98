"""Regression tests for wrong answers found when logsight was tried as a new user would
(issue 19): each test fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logsight.analysis import performance as P
from logsight.findings import Finding

# -- ECE takes the confidence of the predicted class, not the row maximum ----------------------

def test_ece_uses_the_probability_of_the_predicted_class() -> None:
    # row 1 predicts "b" although "a" has the higher probability (a thresholded decision)
    y = ["b", "b"]
    pred = ["b", "a"]
    proba = (["a", "b"], np.array([[0.7, 0.3], [0.6, 0.4]]))
    m = P.classification_metrics(y, pred, proba=proba, n_bins=10)
    # confidences 0.3 (correct) and 0.6 (wrong), each alone in a bin: (0.7 + 0.6) / 2
    assert m.ece == pytest.approx(0.65)
    # with max(proba) it would have been (|1 - 0.7| + |0 - 0.6|) / 2 = 0.45
    assert [b.count for b in m.reliability if b.count] == [1, 1]
    assert sorted(b.mean_confidence for b in m.reliability if b.count) == pytest.approx([0.3, 0.6])


# -- finding ids hold everything that makes a finding distinct ---------------------------------

def _drift(**kw: str) -> Finding:
    return Finding(kind="feature_drift", title="t", summary="s", service="scorer",
                   subject="x1", feature="x1", window_start="2026-12-04T09:00:00Z",
                   window_end="2026-12-04T10:00:00Z", **kw)


def test_finding_ids_differ_by_model_and_model_version() -> None:
    ids = {_drift(model="fraud", model_version="1.4").id,
           _drift(model="fraud", model_version="1.5").id,
           _drift(model="churn", model_version="1.4").id,
           _drift(model="fraud").id,
           _drift().id}
    assert len(ids) == 5
    # a model named "1.4" is not the model version "1.4"
    assert _drift(model="1.4").id != _drift(model_version="1.4").id
    # the same finding again has the same id (re-runs overwrite, never duplicate)
    assert _drift(model="fraud", model_version="1.4").id == _drift(
        model="fraud", model_version="1.4").id
    # a field that only repeats the subject leaves the id as it was
    assert _drift().id == Finding(kind="feature_drift", title="t", summary="s",
                                  service="scorer", subject="x1",
                                  window_start="2026-12-04T09:00:00Z",
                                  window_end="2026-12-04T10:00:00Z").id


# -- the baseline version is the one that was there first -------------------------------------

def _version(rng: np.random.Generator, version: str, n: int, acc: float,
             start: str) -> pd.DataFrame:
    y = rng.choice(["a", "b"], n)
    pred = np.where(rng.random(n) < acc, y, np.where(y == "a", "b", "a"))
    return pd.DataFrame({"request_id": [f"{version}-{i}" for i in range(n)],
                         "model_version": version, "prediction": pred, "label": y,
                         "labelled": True,
                         "timestamp": pd.date_range(start, periods=n, freq="s", tz="UTC")})


def test_worse_new_version_with_more_labels_is_reported() -> None:
    rng = np.random.default_rng(7)
    old = _version(rng, "1.4", 400, 0.724, "2026-12-04T08:00:00Z")
    new = _version(rng, "1.5", 1200, 0.654, "2026-12-04T08:30:00Z")  # most labels
    rep = P.performance_report(pd.concat([new, old]), model="m")
    [vc] = rep.version_comparisons
    assert (vc.baseline, vc.candidate, vc.worse) == ("1.4", "1.5", True)
    assert [(f.kind, f.subject) for f in P.performance_findings(rep)] == [
        ("version_regression", "1.5")]


def test_the_first_version_getting_worse_is_reported_too() -> None:
    rng = np.random.default_rng(8)
    old = _version(rng, "1.4", 1200, 0.654, "2026-12-04T08:00:00Z")
    new = _version(rng, "1.5", 400, 0.80, "2026-12-04T08:30:00Z")
    rep = P.performance_report(pd.concat([old, new]), model="m")
    [vc] = rep.version_comparisons
    assert (vc.baseline, vc.candidate, vc.worse) == ("1.5", "1.4", True)


def test_first_seen_version() -> None:
    frame = pd.DataFrame({"model_version": ["b", "a", "b", None],
                          "timestamp": pd.to_datetime(["2026-01-02", "2026-01-03",
                                                       "2026-01-01", "2025-01-01"], utc=True)})
    assert P.first_seen_version(frame) == "b"  # the version-less row is no version
    assert P.first_seen_version(frame, among={"a"}) == "a"
    assert P.first_seen_version(frame.drop(columns="timestamp")) == "a"
    assert P.first_seen_version(frame.iloc[:0]) is None


# -- structlog context variables reach the documents by default ---------------------------------

def test_structlog_contextvars_are_merged_by_default() -> None:
    import structlog

    from logsight.adapters.structlog import make_logger
    from logsight.ecs import Service

    got: list[dict[str, object]] = []

    def emit(kind: str, doc: object) -> bool:
        got.append(dict(doc))  # type: ignore[call-overload]  # a Mapping of the ECS document
        return True

    svc = Service("orders")
    structlog.contextvars.clear_contextvars()
    try:
        structlog.contextvars.bind_contextvars(request_id="r-17", tenant="acme")
        make_logger(emit, svc, "orders", clock=lambda: 0.0).info("paid", tenant="own")
        make_logger(emit, svc, "orders", clock=lambda: 0.0,
                    merge_contextvars=False).info("paid")
    finally:
        structlog.contextvars.clear_contextvars()
    merged, plain = (json_dumps(d) for d in got)
    assert "r-17" in merged and '"own"' in merged and "acme" not in merged  # the event wins
    assert "r-17" not in plain


def test_structlog_processors_for_configure_merge_contextvars() -> None:
    import io

    import structlog

    import logsight

    buf = io.StringIO()
    ls = logsight.configure("ctx", sink=buf, use_spool=False, flush_interval=0.05)
    chain = ls.structlog_processors()
    logger = structlog.wrap_logger(logsight.adapters.ShipperLogger(ls.shipper.submit),
                                   processors=chain)
    structlog.contextvars.clear_contextvars()
    try:
        structlog.contextvars.bind_contextvars(request_id="r-99")
        logger.info("hello")
    finally:
        structlog.contextvars.clear_contextvars()
    assert ls.flush(5)
    ls.close()
    assert "r-99" in buf.getvalue()


def json_dumps(doc: object) -> str:
    import json

    return json.dumps(doc, sort_keys=True, default=str)


# -- alerts install --dry-run compiles without a cluster ------------------------------------------

def test_alerts_dry_run_works_offline() -> None:
    import json
    import socket

    from click.testing import CliRunner

    from logsight.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    runner = CliRunner()
    res = runner.invoke(main, ["alerts", "install", "--url", url, "--dry-run", "--target",
                               "watcher", "--json", "trace-p95-regression"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["target"] == "watcher" and "compiled offline" in out["warning"]
    assert out["compiled"]["trace-p95-regression"]["trigger"]["schedule"]["interval"] == "1m"
    # auto cannot ask the cluster which kind it is: both forms are shown
    res = runner.invoke(main, ["alerts", "install", "--url", url, "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    assert [f["target"] for f in json.loads(res.stdout)] == ["watcher", "monitor"]
    res = runner.invoke(main, ["alerts", "install", "--url", url, "--dry-run"])
    assert res.exit_code == 0 and "offline: target monitor" in res.output
    # without --dry-run it still needs the cluster, and says so
    res = runner.invoke(main, ["alerts", "install", "--url", url])
    assert res.exit_code == 1 and "cannot reach" in res.output


# -- robust outliers respect skew -------------------------------------------------------------

SKEWED = {
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "lognormal_wide": lambda rng, n: rng.lognormal(3.0, 1.5, n),
    "gamma_half": lambda rng, n: rng.gamma(0.5, 1.0, n),
    "exponential": lambda rng, n: rng.exponential(1.0, n),
    "latency_ms": lambda rng, n: 50 + rng.lognormal(2.0, 0.8, n),
    "left_skew": lambda rng, n: 10 - rng.lognormal(0.0, 1.0, n),
}


@pytest.mark.parametrize("name", sorted(SKEWED))
def test_robust_outliers_false_positive_rate_on_skewed_data(name: str) -> None:
    from logsight.analysis import drift as D

    rng = np.random.default_rng(3)
    draw = SKEWED[name]
    flagged = total = 0
    for _ in range(20):
        ref = pd.DataFrame({"x": draw(rng, 2000)})
        cur = pd.DataFrame({"x": draw(rng, 400)})
        flagged += D.robust_outliers(ref, cur).n_outliers
        total += len(cur)
    # the old symmetric MAD rule flagged 0.7-8 % of these rows (7 of 400 in the user test);
    # the skew-aware rule: at most 1 in 2,000 ordinary rows
    assert flagged / total <= 5e-4, (name, flagged, total)
    assert D.robust_outliers(ref, cur).scale["x"] != "linear"


def test_robust_outliers_still_find_real_outliers_on_skewed_and_normal_data() -> None:
    from logsight.analysis import drift as D

    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"lat": rng.lognormal(3.0, 0.5, 2000), "x": rng.normal(0, 1, 2000)})
    cur = pd.DataFrame({"lat": rng.lognormal(3.0, 0.5, 400), "x": rng.normal(0, 1, 400)})
    cur.loc[[5, 6, 7], "lat"] = [20 * 1000.0, 20 * 100.0, 20 * 50.0]  # 1000x, 100x, 50x median
    cur.loc[9, "x"] = 12.0
    rep = D.robust_outliers(ref, cur)
    assert rep.scale == {"lat": "log", "x": "linear"}
    assert sorted(rep.row_index) == [5, 6, 7, 9]
    assert rep.by_feature == {"lat": 3, "x": 1}


def test_robust_scale_known_values_and_fences_match_z() -> None:
    from logsight.analysis.outlier_scale import quartile_skewness, robust_scale

    assert quartile_skewness(1.0, 2.0, 3.0) == 0.0
    assert quartile_skewness(1.0, 1.5, 3.0) == pytest.approx(0.5)
    lin = robust_scale(0.0, 1.0, 2.0, 3.0, 4.0)
    assert (lin.scale, lin.center, lin.spread_low, lin.spread_high) == ("linear", 2, 1, 1)
    assert lin.z(np.array([2.0 + 6 / 0.6745]))[0] == pytest.approx(6.0)
    log = robust_scale(1.0, 1.5, 2.0, 4.0, 50.0)  # right skew: shift = median - min = 1
    assert log.scale == "log" and log.center == pytest.approx(np.log(2.0))
    assert log.spread_low == pytest.approx(np.log(2.0) - np.log(1.5))
    assert log.spread_high == pytest.approx(np.log(4.0) - np.log(2.0))
    for sc in (lin, log, robust_scale(0.0, 46.0, 48.0, 48.5, 49.0)):
        lo, hi = sc.fences(6.0)
        assert sc.z(np.array([lo, hi])) == pytest.approx([6.0, 6.0])
        inside = np.linspace(lo, hi, 50)[1:-1]
        assert (sc.z(inside) < 6.0).all()
    assert robust_scale(0.0, 46.0, 48.0, 48.5, 49.0).scale == "log-reflected"
    # a value past the log scale's domain is an outlier, reported with a finite z
    assert log.z(np.array([-5.0]))[0] > 1e5 and np.isnan(log.z(np.array([np.nan]))[0])


# -- a number too large for a float is counted, not silently infinite ------------------------

def test_non_finite_values_are_counted_and_reported_per_feature(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.analysis import drift as D
    from logsight.cli import main

    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"amount": rng.normal(10, 2, 300), "age": rng.normal(40, 5, 300)})
    cur = pd.DataFrame({"amount": rng.normal(10, 2, 300), "age": rng.normal(40, 5, 300)})
    (tmp_path / "ref.csv").write_text(ref.to_csv(index=False))
    lines = cur.to_csv(index=False).splitlines()
    first = lines[1].split(",")
    lines[1] = ",".join(["9" * 2_000_000, first[1]])  # a 2-million-digit amount
    (tmp_path / "cur.csv").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(main, ["drift", "--reference", str(tmp_path / "ref.csv"),
                                    "--current", str(tmp_path / "cur.csv"), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["feature"]: r for r in json.loads(res.stdout)["features"]}
    amount = rows["amount"]
    assert amount["nonfinite_current"] == 1 and amount["nonfinite_reference"] == 0
    assert amount["n_current"] == 299 and "not finite" in amount["note"]
    assert amount["wasserstein"] is not None  # computed on the finite values
    assert rows["age"]["nonfinite_current"] == 0 and rows["age"]["note"] is None
    # the same through the library, with -inf and NaN: NaN stays "missing"
    r, c = rng.normal(0, 1, 100), rng.normal(0, 1, 100)
    r[0], c[:3] = np.inf, [-np.inf, np.nan, np.inf]
    [fd] = D.compare(pd.DataFrame({"x": r}), pd.DataFrame({"x": c}), kinds={"x": "numeric"})
    assert (fd.nonfinite_reference, fd.nonfinite_current, fd.missing_current) == (1, 2, 1)
    assert (fd.n_reference, fd.n_current) == (99, 97) and fd.psi is not None


# -- duplicate span ids: a valid copy over a broken one, then the first in the input ------------

def test_duplicate_span_ids_keep_the_valid_then_the_first_copy() -> None:
    from logsight.analysis.traces import analyze_spans

    ms = 1_000_000

    def span(span_id: str, parent: str | None, a: int, b: int, name: str) -> dict[str, object]:
        return {"trace_id": "t", "span_id": span_id, "parent_id": parent, "service": "svc",
                "name": name, "start_ns": a * ms, "end_ns": b * ms}

    rows = [span("r", None, 0, 100, "root"),
            span("a", "r", 50, 80, "first-in-file"),   # valid, later start
            span("a", "r", 40, 30, "broken-copy"),     # ends before it starts
            span("b", "r", 20, 30, "b-first"),
            span("b", "r", 10, 30, "b-second")]        # valid too, but second in the file
    res = analyze_spans(pd.DataFrame(rows))
    names = dict(zip(res.spans["span_id"], res.spans["name"], strict=True))
    assert names == {"r": "root", "a": "first-in-file", "b": "b-first"}
    assert res.stats.duplicates == 2
    assert res.stats.negative == 0  # the broken copy was dropped, not repaired
    a = res.spans.set_index("span_id").loc["a"]
    assert a["duration_ms"] == pytest.approx(30)


def test_profile_quantiles_are_exact_on_discrete_and_close_on_continuous_features() -> None:
    from logsight.analysis import drift as D
    from logsight.analysis.drift import profile_quantiles
    from logsight.analysis.outlier_scale import robust_scale

    rng = np.random.default_rng(6)
    counts = rng.poisson(4.0, 2000).astype(float)
    wide = rng.lognormal(3.0, 1.0, 2000)
    prof = D.build_profile(pd.DataFrame({"tickets": counts, "latency": wide}))
    assert profile_quantiles(prof.features["tickets"], (0.25, 0.5, 0.75)) == list(
        np.quantile(counts, [0.25, 0.5, 0.75], method="lower"))
    got = profile_quantiles(prof.features["latency"], (0.25, 0.5, 0.75))
    assert got == pytest.approx(np.quantile(wide, [0.25, 0.5, 0.75]), rel=0.05)
    # the fences from the profile keep every ordinary count inside (Poisson(4): 0 .. ~12)
    fp = prof.features["tickets"]
    lo, hi = robust_scale(fp.min, *profile_quantiles(fp, (0.25, 0.5, 0.75)), fp.max).fences(6)
    assert lo < 0 and hi > 12


# -- multi-line events: a traceback belongs to the line before it ------------------------------

def _app_with_tracebacks(path, *, stamp) -> None:  # type: ignore[no-untyped-def]
    """A log with a 3-line traceback every 50 lines, through baseline and scored part alike."""
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    lines = []
    for i in range(1200):
        t = t0 + timedelta(seconds=3 * i)
        lines.append(f"{stamp(t)} INFO served request {i} in {i % 7 + 3} ms")
        if i % 50 == 0:
            lines += [f"{stamp(t)} ERROR request {i} failed",
                      "Traceback (most recent call last):",
                      '  File "app.py", line 12, in handle',
                      "ValueError: bad input"]
    path.write_text("\n".join(lines) + "\n")


def test_traceback_lines_do_not_make_a_false_anomaly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.cli import main
    from logsight.sources.logs import load_log_file

    path = tmp_path / "app_tb.log"
    _app_with_tracebacks(path, stamp=lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    data = load_log_file(path)
    assert data.timestamp_format == "iso8601" and data.continuation_lines == 24 * 3
    assert len(data.frame) == 1200 + 24 and data.frame["timestamp"].notna().all()
    tb = data.frame[data.frame["message"].str.contains("Traceback")]
    assert len(tb) == 24 and tb["message"].iloc[0].endswith("ValueError: bad input")
    assert (tb["level"] == "error").all()
    res = CliRunner().invoke(main, ["logs", "anomalies", "--input", str(path), "--json",
                                    "--no-drift"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["findings"] == [] and out["read"]["continuation_lines"] == 72


def test_split_baseline_keeps_untimed_rows_with_the_row_before() -> None:
    from logsight.analysis.logs import prepare_frame, split_baseline

    ts = pd.to_datetime(["2026-12-04T09:00:00Z", None, "2026-12-04T09:10:00Z", None,
                         "2026-12-04T09:20:00Z"], utc=True)
    frame = prepare_frame(pd.DataFrame({"message": list("abcde"), "timestamp": ts}))
    assert split_baseline(frame, "2026-12-04T09:15:00Z").tolist() == [
        True, True, True, True, False]


# -- timestamp formats beyond ISO-8601 --------------------------------------------------------

@pytest.mark.parametrize(("fmt", "stamp"), [
    ("iso8601", lambda t: t.strftime("%Y/%m/%d %H:%M:%S")),
    ("syslog", lambda t: t.strftime("%b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S")),
    ("clf", lambda t: "10.0.0.7 - - " + t.strftime("[%d/%b/%Y:%H:%M:%S +0000]") + ' "GET /"'),
    ("epoch", lambda t: str(int(t.timestamp()))),
])
def test_log_files_in_common_timestamp_formats(tmp_path, fmt, stamp) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from logsight.sources.logs import load_log_file

    path = tmp_path / f"{fmt}.log"
    _app_with_tracebacks(path, stamp=stamp)
    data = load_log_file(path)
    assert data.timestamp_format == fmt
    assert data.frame["timestamp"].notna().all() and len(data.frame) == 1224
    first = data.frame["timestamp"].iloc[0]
    # syslog has no year: the year that puts the line not after now
    year = datetime.now(UTC).year if fmt == "syslog" else 2026
    if fmt == "syslog" and datetime(year, 12, 4, 9, tzinfo=UTC) > datetime.now(UTC):
        year -= 1
    assert first == pd.Timestamp(datetime(year, 12, 4, 9, 0, tzinfo=UTC))
    assert any("timestamps: " + fmt in n for n in data.notes)


def test_a_file_without_timestamps_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from logsight.sources.logs import load_log_file

    path = tmp_path / "plain.log"
    path.write_text("".join(f"worker {i} started\n" for i in range(10)))
    data = load_log_file(path)
    assert data.timestamp_format is None and data.continuation_lines == 0
    assert len(data.frame) == 10
    assert data.notes == ["no timestamps found: windows are counted in lines"]


def test_rawlog_rejects_look_alikes() -> None:
    from datetime import UTC, datetime

    from logsight.sources import rawlog

    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert rawlog.parse_stamp("2026-13-45 10:00:00 x", "iso8601", now=now) is None
    assert rawlog.parse_stamp("1234567890123456 x", "epoch", now=now) is None  # 16 digits
    assert rawlog.parse_stamp("0000000042 x", "epoch", now=now) is None  # 1970: an id
    st = rawlog.parse_stamp("Dec 31 23:59:59 host x", "syslog", now=now)
    assert st is not None and st.time.year == 2025  # read on Jan 2: last year's line
    st = rawlog.parse_stamp("1796389331500 x", "epoch", now=now)
    assert st is not None and st.time == datetime.fromtimestamp(1796389331.5, UTC)
    st = rawlog.parse_stamp("2026-12-04T13:02:11+01:00 x", "iso8601", now=now)
    assert st is not None and st.time == datetime(2026, 12, 4, 12, 2, 11, tzinfo=UTC)


# -- invalid UTF-8: one policy, replace and count ---------------------------------------------

def test_invalid_utf8_is_replaced_and_counted_in_every_reader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.cli import main
    from logsight.sources.logs import load_log_file

    log = tmp_path / "bad.log"
    log.write_bytes(b"2026-12-04T09:00:00Z INFO ok\n2026-12-04T09:00:01Z INFO caf\xe9\n")
    data = load_log_file(log)
    assert data.decode is not None and data.decode.lines == [2]
    assert "\ufffd" in data.frame["message"].iloc[1]
    assert any("1 line(s) were not valid UTF-8 (line 2)" in n for n in data.notes)

    spans = tmp_path / "spans.ndjson"
    rows = [{"trace_id": "t", "span_id": "a", "name": "op", "service": {"name": "s"},
             "start_time_unix_nano": 1_000, "end_time_unix_nano": 10_001_000}]
    spans.write_bytes(json.dumps(rows[0]).encode().replace(b'"op"', b'"op\xff"') + b"\n")
    res = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(spans)])
    assert res.exit_code == 0, res.output
    assert "line 1" in res.output and "not valid UTF-8" in res.output

    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    body = "".join(f"{i % 10},{'a' if i % 2 else 'b'}\n" for i in range(200))
    ref.write_text("x,c\n" + body)
    cur.write_bytes(b"x,c\n" + body.encode() + b"3,\xe9t\xe9\n")
    res = CliRunner().invoke(main, ["drift", "--reference", str(ref), "--current", str(cur)])
    assert res.exit_code == 0, res.output
    assert "cur.csv: 1 line(s) were not valid UTF-8 (line 202)" in res.output


# -- a sustained shift is one finding spanning the change --------------------------------------

def test_sustained_template_rate_shift_is_one_finding_spanning_the_change() -> None:
    from datetime import UTC, datetime, timedelta

    from logsight.analysis.logs import detect_log_anomalies

    rng = np.random.default_rng(9)
    t0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    rows = []
    for minute in range(90):  # 30 baseline minutes, a deploy at minute 60 that stays
        n_ok = int(rng.poisson(40))
        n_retry = int(rng.poisson(4 if minute < 60 else 9))
        for i in range(n_ok):
            rows.append((t0 + timedelta(minutes=minute, seconds=i % 60),
                         f"served request {minute}-{i} in {int(rng.integers(2, 40))} ms"))
        for i in range(n_retry):
            rows.append((t0 + timedelta(minutes=minute, seconds=(i * 7) % 60),
                         f"retrying call to feature-store attempt {int(rng.integers(1, 4))}"))
    frame = pd.DataFrame({"timestamp": [r[0] for r in rows], "message": [r[1] for r in rows],
                          "service": "scorer", "level": "warning"})
    res = detect_log_anomalies(frame, baseline="30min", window="1min")
    shifts = [f for f in res.findings if (f.subject or "").startswith("level_shift:")]
    assert len(shifts) == 1, [(f.subject, f.window_start) for f in res.findings]
    sh = shifts[0]
    cp = sh.evidence["change_point"]
    assert pd.Timestamp(sh.window_start) == pd.Timestamp(t0 + timedelta(minutes=60))
    assert pd.Timestamp(sh.window_end) == pd.Timestamp(t0 + timedelta(minutes=90))
    assert cp["direction"] == "up" and cp["windows"] == 30 and "retrying" in sh.summary
    # no scattered window findings left for the same change
    rest = [f for f in res.findings if f is not sh]
    assert all(f.evidence.get("deviations", [{}])[0].get("feature") != cp["feature"]
               for f in rest)


# -- every analysis runs on files: performance, prediction/score drift, outliers ----------------

def _ml_event_file(path, *, seed: int, score_shift: bool = False,  # type: ignore[no-untyped-def]
                   outliers: int = 0) -> None:
    """ML event documents written by the real adapter into an NDJSON file: a reference day of
    v1, then a day of v1 (70 %) and v2 (30 %); v1 is right 90 % of the time, v2 70 %."""
    import json
    from datetime import UTC, datetime, timedelta

    from logsight.adapters import MlEvents
    from logsight.ecs import Service

    docs: list[dict[str, object]] = []
    ml = MlEvents(lambda kind, doc: docs.append(dict(doc)) or True, Service(name="scorer"),
                  trace=False)
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    for day in (0, 1):
        for i in range(600):
            ts = t0 + timedelta(days=day, seconds=i * 144)
            version = "v2" if day == 1 and rng.random() < 0.3 else "v1"
            label = str(rng.choice(["a", "b"]))
            acc = 0.9 if version == "v1" else 0.7
            pred = label if rng.random() < acc else ("b" if label == "a" else "a")
            score = float(np.clip(rng.normal(0.6 if (score_shift and day) else 0.8, 0.05),
                                  0, 1))
            feats = {"x0": float(rng.normal()), "amount": float(rng.lognormal(3, 0.5))}
            if day and i < outliers:
                feats["amount"] = 1e6
            rid = f"r-{day}-{i}"
            ml.log_prediction(model="churn", version=version, features=feats, prediction=pred,
                              score=score, request_id=rid, timestamp=ts)
            ml.log_feedback(rid, label, model="churn", timestamp=ts + timedelta(hours=6))
    path.write_text("".join(json.dumps(d, default=str) + "\n" for d in docs))


def test_performance_runs_on_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from logsight.cli import main

    events = tmp_path / "mlevents.ndjson"
    _ml_event_file(events, seed=1)
    res = CliRunner().invoke(main, ["performance", "--model", "churn", "--input", str(events),
                                    "--from", "2026-12-02T00:00:00Z", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(f["kind"], f["subject"]) for f in out["findings"]] == [("version_regression", "v2")]
    assert out["report"]["n_labelled"] == out["report"]["n_predictions"] > 500
    # without --from the whole file is the window; the text report works too
    res = CliRunner().invoke(main, ["performance", "--model", "churn", "--input", str(events)])
    assert res.exit_code == 0, res.output
    assert "churn: 1200 predictions, 1200 labelled" in res.output
    # a model the file does not have: a clear answer, not a traceback
    res = CliRunner().invoke(main, ["performance", "--model", "nope", "--input", str(events)])
    assert res.exit_code != 0 and "no predictions of model 'nope'" in res.output
    # on a cluster --from is still required
    res = CliRunner().invoke(main, ["performance", "--model", "churn"])
    assert res.exit_code == 2 and "--from is required" in res.output


def test_file_drift_on_ml_events_finds_a_score_shift_and_outlier_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    import pandas as pd
    from click.testing import CliRunner

    from logsight.cli import main

    events = tmp_path / "ev.ndjson"
    _ml_event_file(events, seed=2, score_shift=True, outliers=3)
    docs = [json.loads(x) for x in events.read_text().splitlines()]
    preds = [d for d in docs if d.get("ml.event_type") == "prediction"]
    ref, cur = tmp_path / "ref.ndjson", tmp_path / "cur.ndjson"
    ref.write_text("".join(json.dumps(d) + "\n" for d in preds if d["@timestamp"] < "2026-12-02"))
    cur.write_text("".join(json.dumps(d) + "\n" for d in docs if d["@timestamp"] >= "2026-12-02"))
    res = CliRunner().invoke(main, ["drift", "--reference", str(ref), "--current", str(cur),
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = {r["feature"]: r for r in out["features"]}
    assert {"x0", "amount", "score", "prediction"} <= set(rows)
    assert rows["score"]["drifted"] and not rows["x0"]["drifted"]
    kinds = {(f["kind"], f.get("subject")) for f in out["findings"]}
    assert ("prediction_drift", "score") in kinds
    [outl] = [f for f in out["findings"] if f["kind"] == "outlier_inputs"]
    assert outl["evidence"]["by_feature"] == {"amount": 3}
    assert pd.notna(outl["id"])
