"""The demo: schedule and simulator (pure), grading, the HTML report in a real headless
Chromium, and the whole ``logsight demo`` end to end against the real engine."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from logsight.analysis.performance import classification_metrics
from logsight.cli import main
from logsight.cli.demo_cmd import engine_left_running, next_steps, prepare_out_dir
from logsight.demo import incidents as I
from logsight.demo import simulator as sim
from logsight.demo.report import (
    DemoReport,
    check_in_browser,
    display_text,
    drift_title,
    find_chromium,
    group_findings,
    parse_dump,
    render_html,
    text_report,
)
from logsight.demo.simulator import plan_requests, start_time
from logsight.findings import Finding, read_findings, write_findings
from logsight.local import LocalEngine

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- schedule ----------------------------------------------------------------------------------
def test_schedule_rejects_incident_inside_baseline() -> None:
    inc = I.Incident(I.ERROR_BURST, I.MODEL_SERVICE, I.MODEL_SERVICE, 5, 8, "x")
    with pytest.raises(ValueError, match="inside the baseline"):
        I.Schedule(baseline_minutes=10, incidents=(inc,))


def test_incident_rejects_bad_kind_and_window() -> None:
    with pytest.raises(ValueError, match="unknown incident kind"):
        I.Incident("meteor", "a", "a", 1, 2, "x")
    with pytest.raises(ValueError, match="start_minute < end_minute"):
        I.Incident(I.LATENCY, "a", "op", 5, 5, "x")


def test_analysis_windows_tile_the_run_after_the_baseline() -> None:
    s = I.default_schedule()
    wins = s.analysis_windows(T0)
    assert wins[0][0] == T0 + timedelta(minutes=s.baseline_minutes)
    assert wins[-1][1] == T0 + timedelta(minutes=s.duration_minutes)
    assert all(a[1] == b[0] for a, b in zip(wins[:-1], wins[1:], strict=True))


def test_start_time_puts_the_last_label_in_the_past() -> None:
    now = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
    s = I.default_schedule()
    t0 = start_time(s, now)
    assert t0 + s.horizon < now
    assert t0.second == 0


# -- simulator plan (pure) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return plan_requests(I.default_schedule(), T0, random_state=3)


def test_plan_injects_each_incident_only_in_its_window(plan) -> None:  # type: ignore[no-untyped-def]
    s = I.default_schedule()
    lat = s.incident(I.LATENCY)
    burst = s.incident(I.ERROR_BURST)
    shift = s.incident(I.FEATURE_SHIFT)
    bad = s.incident(I.BAD_VERSION)
    assert lat and burst and shift and bad
    m = plan.minute
    store = plan.steps_ms["store"]
    on = (m >= lat.start_minute) & (m < lat.end_minute)
    ratio = np.median(store[on]) / np.median(store[~on])
    assert ratio == pytest.approx(lat.magnitude, rel=0.2)
    in_burst = (m >= burst.start_minute) & (m < burst.end_minute)
    assert plan.failed[in_burst].mean() > 0.5
    assert not plan.failed[~in_burst].any()
    sess = plan.features["session_minutes"]
    shifted = (m >= shift.start_minute) & (m < shift.end_minute)
    delta = sess[shifted].mean() - sess[m < s.baseline_minutes].mean()
    assert delta == pytest.approx(shift.magnitude * 3.0, rel=0.2)
    assert set(plan.version[m >= bad.start_minute]) == {bad.target}
    assert set(plan.version[m < bad.start_minute]) == {s.old_version}


def test_plan_accuracy_per_version_matches_the_schedule(plan) -> None:  # type: ignore[no-untyped-def]
    s = I.default_schedule()
    correct = plan.prediction == plan.label
    for version, expected in ((s.old_version, s.old_accuracy), (s.new_version, s.new_accuracy)):
        assert correct[plan.version == version].mean() == pytest.approx(expected, abs=0.05)


def test_plan_score_is_the_confidence_of_the_predicted_class(plan) -> None:  # type: ignore[no-untyped-def]
    # ml.score is read as the predicted class's confidence (docs/drift.md): the user test saw
    # P(churn) logged next to prediction "stay" and got ROC-AUC 0.496, ECE 0.44
    assert np.allclose(plan.score, np.maximum(plan.p_churn, 1.0 - plan.p_churn), atol=1e-9)
    assert np.all(plan.score >= 0.5)
    decided = plan.p_churn != 0.5
    assert np.array_equal(plan.prediction[decided], plan.p_churn[decided] > 0.5)


def _version_metrics(plan, version: str):  # type: ignore[no-untyped-def]
    sel = plan.version == version
    yt = np.where(plan.label[sel], "churn", "stay")
    yp = np.where(plan.prediction[sel], "churn", "stay")
    p = plan.p_churn[sel]
    return classification_metrics(yt, yp, proba=(["churn", "stay"], np.c_[p, 1.0 - p]))


def test_plan_good_version_is_calibrated_and_bad_one_over_confident(plan) -> None:  # type: ignore[no-untyped-def]
    s = I.default_schedule()
    good = _version_metrics(plan, s.old_version)
    bad = _version_metrics(plan, s.new_version)
    assert good.roc_auc is not None and good.roc_auc > 0.85
    assert good.ece is not None and good.ece < 0.05
    assert bad.ece is not None and bad.ece > 0.1  # sure of itself and wrong more often
    assert bad.accuracy is not None and good.accuracy is not None
    assert bad.accuracy < good.accuracy
    # the score's distribution does not move with the version: the bad-version incident must
    # not surface as score drift
    old = plan.score[plan.version == s.old_version]
    new = plan.score[plan.version == s.new_version]
    assert stats.ks_2samp(old, new).pvalue > 1e-3


def test_plan_feedback_arrives_hours_later(plan) -> None:  # type: ignore[no-untyped-def]
    delay_h = (plan.feedback_at - plan.start) / 3600.0
    lo, hi = I.default_schedule().feedback_delay_hours
    assert delay_h.min() >= lo and delay_h.max() <= hi


def test_plan_is_deterministic_for_a_seed() -> None:
    s = I.short_schedule()
    a = plan_requests(s, T0, random_state=11, run_id="a")
    b = plan_requests(s, T0, random_state=11, run_id="a")
    assert np.array_equal(a.start, b.start)
    assert np.array_equal(a.steps_ms["store"], b.steps_ms["store"])
    c = plan_requests(s, T0, random_state=12, run_id="a")
    assert not np.array_equal(a.start, c.start)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rate=st.integers(1, 40))
def test_plan_invariants(seed: int, rate: int) -> None:
    s = replace(I.short_schedule(), requests_per_minute=rate)
    p = plan_requests(s, T0, random_state=seed)
    assert np.all(np.diff(p.start) >= 0)
    assert np.all((p.minute >= 0) & (p.minute < s.duration_minutes))
    assert np.all(p.end_ms() > 0)
    assert np.all((p.score >= 0.5) & (p.score <= 1))
    assert np.all((p.p_churn >= 0) & (p.p_churn <= 1))
    assert np.allclose(p.score, np.maximum(p.p_churn, 1.0 - p.p_churn), atol=1e-9)
    assert np.all(p.feedback_at > p.start)
    assert len(set(p.request_id)) == len(p)


def test_simulated_services_log_differently() -> None:
    """Per-minute line counts of the four services: no two proportional (with one line per
    request everywhere, three services' log-anomaly curves were identical point for point)."""
    s = I.short_schedule()
    p = plan_requests(s, T0, random_state=0)
    minute = p.minute.astype(int)
    per_request = {
        I.GATEWAY: 2 + p.rate_limit_line.astype(int),
        I.FEATURE_STORE: p.store_reads,
        I.FEATURE_SERVICE: 1 + p.cache_miss.astype(int) + p.local_cache_line.astype(int),
        I.MODEL_SERVICE: 1 + p.queue_line.astype(int),
    }
    curves = {svc: np.bincount(minute, weights=v, minlength=s.duration_minutes)
              for svc, v in per_request.items()}
    beats = ((sim.heartbeats(p) - T0.timestamp()) // 60).astype(int)
    curves[I.MODEL_SERVICE] += np.bincount(beats, minlength=s.duration_minutes)
    assert set(np.unique(p.store_reads)) == {1, 2, 3}
    names_ = sorted(curves)
    for a_i, a in enumerate(names_):
        for b in names_[a_i + 1:]:
            ratio = curves[a] / curves[b]
            assert np.ptp(ratio) > 0.05, (a, b)  # not one curve scaled
            assert np.corrcoef(curves[a], curves[b])[0, 1] < 0.995, (a, b)
    total = sum(int(v.sum()) for v in per_request.values()) + len(beats)
    assert int(sim.log_lines(p).sum()) + len(beats) == total


# -- grading -----------------------------------------------------------------------------------
def _f(kind: str, **kw: object) -> Finding:
    return Finding(kind=kind, title=kind, summary="s", window_start=T0,
                   window_end=T0 + timedelta(minutes=10), **kw)  # type: ignore[arg-type]


def test_match_findings_needs_the_right_attribution() -> None:
    s = I.default_schedule()
    right = [
        _f("log_anomaly", service=I.MODEL_SERVICE),
        _f("trace_bottleneck", service=I.FEATURE_STORE, subject=I.OP_STORE_READ,
           operation=I.OP_STORE_READ),
        _f("feature_drift", service=I.MODEL_SERVICE, subject="session_minutes",
           feature="session_minutes"),
        _f("version_regression", subject="1.5.0", model_version="1.5.0"),
    ]
    m = I.match_findings(s, right)
    assert m.all_found and not m.others
    shift_outliers = _f("outlier_inputs", subject="inputs",
                        evidence={"by_feature": {"session_minutes": 3, "tenure_months": 1}})
    other_outliers = _f("outlier_inputs", subject="inputs",
                        evidence={"by_feature": {"support_tickets": 2}})
    m = I.match_findings(s, [shift_outliers, other_outliers])
    assert m.found[I.FEATURE_SHIFT] == [shift_outliers] and m.others == [other_outliers]
    wrong = [
        _f("log_anomaly", service=I.GATEWAY),
        _f("trace_bottleneck", service=I.MODEL_SERVICE, subject=I.OP_INFERENCE,
           operation=I.OP_INFERENCE),
        _f("feature_drift", subject="tenure_months", feature="tenure_months"),
        _f("version_regression", subject="1.4.0", model_version="1.4.0"),
    ]
    m = I.match_findings(s, wrong)
    assert sorted(m.missed) == sorted(inc.kind for inc in s.incidents)
    assert len(m.others) == 4


def test_group_findings_merges_windows_of_the_same_subject() -> None:
    a = _f("feature_drift", subject="x", feature="x")
    b = Finding(kind="feature_drift", title="t", summary="s", subject="x", feature="x",
                window_start=T0 + timedelta(minutes=10), window_end=T0 + timedelta(minutes=20))
    c = _f("log_anomaly", service="svc")
    groups = group_findings([b, c, a])
    by_kind = {g.kind: g for g in groups}
    assert len(groups) == 2 and len(by_kind["feature_drift"].findings) == 2
    assert by_kind["feature_drift"].window_start == pd.Timestamp(T0)
    assert by_kind["feature_drift"].window_end == pd.Timestamp(T0 + timedelta(minutes=20))


# -- report and browser ------------------------------------------------------------------------
def _toy_report() -> DemoReport:
    rng = np.random.default_rng(0)
    minutes = pd.date_range(T0, periods=30, freq="min")
    latency = pd.DataFrame({"a op": rng.uniform(5, 10, 30), "b op": rng.uniform(20, 30, 30)},
                           index=minutes)
    anomaly = pd.DataFrame({"service": ["a"] * 30, "window": minutes,
                            "score": rng.normal(-0.05, 0.05, 30),
                            "anomalous": [False] * 29 + [True]})
    f = _f("log_anomaly", service="a", severity="high", score=0.2,
           evidence={"new_templates": [{"template": "boom <*>", "count": 3}]})
    return DemoReport(
        title="toy <report> & co", namespace="toy", engine="none", t0=T0,
        simulated_minutes=30,
        incidents=[{"kind": "error_burst", "description": "d", "where": "a", "start": T0,
                    "end": T0, "found": True, "by": ["log_anomaly"]}],
        groups=group_findings([f]),
        critical_path={"baseline": {"a op": 0.3, "b op": 0.7}, "now": {"a op": 0.9}},
        latency=latency, anomaly=anomaly,
        drift={"feature": "x", "reference": rng.normal(0, 1, 200),
               "current": rng.normal(2, 1, 200)},
        accuracy=[{"version": "1", "accuracy": 0.9, "n": 100},
                  {"version": "2", "accuracy": 0.7, "n": 80}],
        stats={"requests": 1},
        baseline=(T0, T0 + timedelta(minutes=10)),
    )


def test_text_report_says_what_where_when_how_sure() -> None:
    lines = "\n".join(text_report(_toy_report()))
    for word in ("where:", "when:", "how sure:", "evidence:", "never-seen template", "FOUND"):
        assert word in lines
    assert "(simulated; 1 window)" in lines and "window(s)" not in lines


def test_times_in_finding_texts_read_hh_mm() -> None:
    assert display_text("Anomalous logs in svc at 2026-12-04T15:41:00+00:00") == \
        "Anomalous logs in svc at 15:41"
    assert display_text("from 2026-01-05T09:00:00.250Z to 2026-01-05 11:30+02:00") == \
        "from 09:00 to 09:30"
    assert display_text("version 1.5.0 at 12:00") == "version 1.5.0 at 12:00"
    report = _toy_report()
    report.groups[0].findings[0].title = "Anomalous logs in a at 2026-01-05T09:29:00+00:00"
    assert "Anomalous logs in a at 09:29" in "\n".join(text_report(report))


def test_drift_plot_title_has_one_colon() -> None:
    assert drift_title("session_minutes") == \
        "Drifted feature session_minutes: reference vs current"
    assert drift_title("x").count(":") == 1


def test_html_report_escapes_and_embeds_every_plot(tmp_path: Path) -> None:
    page = render_html(_toy_report(), tmp_path / "r.html").read_text()
    assert "toy &lt;report&gt; &amp; co" in page
    assert page.count("data:image/png;base64,") == 5
    assert "http://" not in page and "https://" not in page  # self-contained


def test_html_report_explains_its_plots_in_words(tmp_path: Path) -> None:
    report = _toy_report()
    report.stats = {"simulate_and_ship_s": "1.0 s", "analyse_s": "2.0 s"}
    report.drift = {**(report.drift or {}),
                    "windows": ((T0, T0 + timedelta(minutes=20)),
                                (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40)))}
    page = render_html(report, tmp_path / "r.html").read_text()
    # run table: human labels, not the raw timing keys
    assert "simulate_and_ship_s" not in page and "simulate + ship" in page
    # the anomaly plot says what is plotted and the decision rule, not "> 0: outlier"
    assert "higher = more unusual" in page and "AND" in page and "overwhelming" in page
    # the drift plot names its windows and counts (the finding's n_reference / n_current)
    assert "Reference 09:00-09:20 UTC: n=200; current 09:30-09:40 UTC: n=200." in page


def test_parse_dump_reads_the_check_marker() -> None:
    dom = ('<img class="plot" id="plot-a" data-loaded="1"><img class="plot" id="plot-b" '
           'data-loaded="0"><div id="render-check" data-done="1" data-images="2" '
           'data-loaded="1" data-errors="1">boom</div>')
    attrs, text, imgs = parse_dump(dom)
    assert attrs["data-loaded"] == "1" and text == "boom"
    assert [(i["id"], i["data-loaded"]) for i in imgs] == [("plot-a", "1"), ("plot-b", "0")]


needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")


@pytest.mark.browser
@needs_chromium
def test_browser_detects_a_broken_plot_and_a_script_error(tmp_path: Path) -> None:
    path = render_html(_toy_report(), tmp_path / "r.html")
    page = path.read_text()
    # break one image and add a failing script: the check must notice both
    first = page.index("data:image/png;base64,")
    page = page[:first] + "data:image/png;base64,AAAA" + page[first + 200:]
    page = page.replace("</body>", "<script>undefinedFunction()</script></body>")
    path.write_text(page)
    check = check_in_browser(path)
    assert check.done
    assert check.images == 5 and check.loaded == 4
    assert any("undefinedFunction" in e for e in check.errors)
    assert not check.ok


@pytest.mark.browser
@needs_chromium
def test_report_screenshot_whole_page_every_plot_with_data(tmp_path: Path) -> None:
    """What a person sees: the whole page in a real browser, every plot decoded and drawn
    with data (coloured pixels: series, bars, markers), and an empty plot noticed."""
    shot = tmp_path / "report.png"
    check = check_in_browser(render_html(_toy_report(), tmp_path / "r.html"), screenshot=shot)
    print(f"report screenshot: {check.screenshot}")
    assert check.ok, check
    assert check.plot_ids == [f"plot-{k}" for k in ("critical_path", "latency", "anomaly",
                                                     "drift", "accuracy")]
    assert check.empty == [] and all(v > 0 for v in check.points.values()), check.points
    assert all(v > 0.001 for v in check.ink.values()), check.ink
    from PIL import Image

    with Image.open(shot) as im:
        # the whole page, not a window's worth of it
        assert im.size == (1280, check.page_height) and check.page_height > 2000
        # the plots are in the picture: coloured pixels well beyond the severity labels
        rgb = np.asarray(im.convert("RGB"), dtype=int)
        coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
        assert coloured.mean() > 0.01
    # a report with nothing to plot: the page still loads, and the check names every plot
    # that has no data
    bare = replace(_toy_report(), critical_path={}, latency=None, anomaly=None, drift=None,
                   accuracy=[])
    check = check_in_browser(render_html(bare, tmp_path / "bare.html"))
    assert check.loaded == 5 and sorted(check.empty) == sorted(check.plot_ids)
    assert not check.ok


def test_demo_says_the_local_engine_is_still_running(tmp_path: Path) -> None:
    lines = engine_left_running(LocalEngine(tmp_path / "eng", port=19999, heap="1g"))
    text = "\n".join(lines)
    assert "still running at http://127.0.0.1:19999" in text and "--stop-engine" in text
    stop = shlex.split(text.split("Stop it with: ", 1)[1], comments=True)
    stop = stop[:stop.index("(or")] if "(or" in stop else stop
    assert stop[:3] == ["logsight", "engine", "stop"]
    cmd = _resolve(stop[1:])
    assert cmd.name == "stop"
    assert stop[3:] == ["--state-dir", str(tmp_path / "eng")]
    help_ = CliRunner().invoke(main, ["demo", "--help"]).output
    assert "--stop-engine" in help_


# -- end to end --------------------------------------------------------------------------------
def test_demo_rejects_a_bad_namespace() -> None:
    result = CliRunner().invoke(main, ["demo", "--namespace", "Bad-NS", "--url",
                                       "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "invalid namespace" in result.output


def test_prepare_out_dir_creates_it_or_says_why(tmp_path: Path) -> None:
    made = prepare_out_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the write probe is cleaned up
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write the report to"):
        prepare_out_dir(blocker / "sub")


@pytest.mark.engine
@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_demo_rejects_an_unwritable_out_before_touching_anything(
    engine_url: str, engine, namespace: str, tmp_path: Path, where: str  # type: ignore[no-untyped-def]
) -> None:
    # the user test: --out /proc/nope wiped the namespace, simulated, then crashed
    if where == "proc":
        out = Path("/proc/nope")
        if not Path("/proc").is_dir():
            pytest.skip("no /proc on this system")
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub"
    keep = Finding(kind="log_anomaly", title="t", summary="s", service="svc",
                   namespace=namespace, window_start=T0, window_end=T0 + timedelta(minutes=1))
    write_findings(engine, [keep])
    result = CliRunner().invoke(main, ["demo", "--short", "--url", engine_url, "--namespace",
                                       namespace, "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "cannot write the report to" in result.output
    assert "Traceback" not in result.output and "simulating" not in result.output
    docs, _ = read_findings(engine, namespace=namespace)
    assert [d["id"] for d in docs] == [keep.id]  # the namespace was not reset


def _resolve(args: list[str]) -> click.Command:
    """The leaf command ``args`` names, after click parsed and validated its options."""
    cmd: click.Command = main
    path = ["logsight"]
    while isinstance(cmd, click.Group):
        sub = cmd.get_command(click.Context(cmd), args[0])
        assert sub is not None, f"no command {args[0]!r} under {' '.join(path)}"
        path.append(args[0])
        cmd, args = sub, args[1:]
    cmd.make_context(" ".join(path), list(args))  # raises on unknown/missing options
    return cmd


def test_next_steps_are_copy_pasteable_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIBANA_URL", raising=False)  # the hint itself must carry --url
    lines = next_steps("ns1", "http://127.0.0.1:9200")
    commands = [shlex.split(line, comments=True) for line in lines]
    commands = [c for c in commands if c]
    logsight = [c[c.index("logsight") + 1:] for c in commands if "logsight" in c]
    resolved = {_resolve(args).name for args in logsight}
    assert resolved == {"serve", "import"}
    assert logsight[-1][:3] == ["kibana", "import", "--kibana-url"]
    curl = next(c for c in commands if c[0] == "curl")
    assert curl[-1] == "http://127.0.0.1:8080/v1/findings?namespace=ns1"
    assert curl[1:3] == ["-H", "X-API-Key: demo-key"]
    serve = next(c for c in commands if "serve" in c)
    assert serve[0] == "LOGSIGHT_API_KEYS=demo-key"  # the key curl sends


@pytest.mark.engine
def test_demo_stop_engine_stops_the_local_engine_it_started(
    engine_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url the demo starts the local engine; --stop-engine stops it at the end and
    says so (a node of its own, so the session's engine is not touched)."""
    from tests.conftest import _free_port

    home = tmp_path / "home"
    monkeypatch.delenv("LOGSIGHT_URL", raising=False)
    monkeypatch.setenv("LOGSIGHT_HOME", str(home))
    monkeypatch.setenv("LOGSIGHT_ENGINE_PORT", str(_free_port()))
    monkeypatch.setenv("LOGSIGHT_ENGINE_HEAP", "512m")
    local = LocalEngine()
    assert local.state_dir == home / "engine"
    try:
        result = CliRunner().invoke(main, ["demo", "--short", "--stop-engine", "--no-progress",
                                           "--out", str(tmp_path / "out")],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("started running: OpenSearch")
        assert f"local engine stopped (data kept in {home / 'engine'}" in result.output
        assert "still running" not in result.output
        assert not local.status().running
    finally:
        local.stop()


@pytest.mark.engine
@pytest.mark.browser
def test_demo_end_to_end(engine_url: str, engine, namespace: str,  # type: ignore[no-untyped-def]
                         tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--short", "--url", engine_url, "--namespace", namespace,
               "--out", str(out), "--no-progress", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    text, _, blob = result.output.partition("\n{\n")
    summary = json.loads("{\n" + blob)
    # every injected incident found, attributed right, and little else
    assert summary["missed"] == []
    assert set(summary["incidents"]) == {i.kind for i in I.short_schedule().incidents}
    assert len(summary["others"]) <= 2, summary["others"]
    # the simulated fleet priced to the cent, its waste found (docs/cost.md)
    assert "simulated fleet: 4.81 USD over 4 h (training 2.69, inference 2.12)" in text
    for found in ("idle_gpu (scorer)", "memory_leak (featurizer)",
                  "cost_per_prediction_increase (scorer)"):
        assert found in text
    for word in ("where:", "when:", "how sure:", "evidence:", "HTML report:",
                 "logsight serve", "logsight kibana import", "demo wall time:"):
        assert word in text
    # the findings are in the cluster, scoped to the namespace
    engine.refresh("logsight-findings")
    stored = engine.count("logsight-findings", {"term": {"namespace": namespace}})
    assert stored == len(summary["findings"])
    # no score / prediction drift: the bad version changes accuracy, not the score's shape
    assert not [f for f in summary["findings"] if f["kind"] == "prediction_drift"]
    # ml.score is the predicted class's confidence and the probabilities are logged: the
    # performance analysis of the demo's data makes sense (the user test saw ROC-AUC 0.496
    # and ECE 0.44 next to accuracy 0.91)
    perf = CliRunner().invoke(
        main, ["performance", "--url", engine_url, "--model", I.MODEL_NAME, "--namespace",
               namespace, "--from", summary["simulated"]["from"], "--to",
               summary["simulated"]["to"], "--no-write", "--json"], catch_exceptions=False)
    assert perf.exit_code == 0, perf.output
    versions = {v["version"]: v["metrics"] for v in json.loads(perf.output)["report"]["versions"]}
    s = I.short_schedule()
    good, bad = versions[s.old_version], versions[s.new_version]
    assert good["roc_auc"] > 0.85 and good["ece"] < 0.08
    assert bad["accuracy"] < good["accuracy"] and bad["ece"] > good["ece"]
    # the hinted API call answers (GET /v1/findings with the hinted key)
    from fastapi.testclient import TestClient

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app

    hint = next(line for line in text.splitlines() if line.strip().startswith("curl"))
    curl = shlex.split(hint)
    header, value = curl[curl.index("-H") + 1].split(": ", 1)
    app = create_app(lambda: connect(engine_url), ServiceSettings(api_keys=(value,)))
    with TestClient(app) as client:
        resp = client.get(curl[-1].removeprefix("http://127.0.0.1:8080"),
                          headers={header: value})
    assert resp.status_code == 200, resp.text
    assert resp.json()["findings"]
    # the drift plot shows the range the findings table gives the drift findings, and n is
    # the predictions in that range
    page = Path(summary["report"]).read_text()
    # the time plots start with the run, the baseline shaded and named (the log-anomaly
    # panels used to start where the baseline ended, unexplained)
    t0 = pd.Timestamp(summary["simulated"]["from"])
    base_end = t0 + timedelta(minutes=I.short_schedule().baseline_minutes)
    assert f"Shaded: the baseline {t0:%H:%M}-{base_end:%H:%M} UTC, which each service" in page
    text_only = re.sub(r"base64,[^']+", "", page)
    assert "window(s)" not in text_only
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text_only), "a raw timestamp"
    m = re.search(r"current (\d\d:\d\d)-(\d\d:\d\d) UTC \((\d+) windows?[^)]*\): "
                  r"n=(\d+)", page)
    assert m, "the drift plot's caption names no current window"
    row = re.search(r"<td>feature_drift</td>.*?<td>(\d\d:\d\d)-(\d\d:\d\d) \((\d+) "
                    r"windows?\)</td>", page)
    assert row and row.groups() == m.groups()[:3], (row and row.groups(), m.groups())
    drifts, _ = read_findings(engine, kind="feature_drift", namespace=namespace)
    starts = sorted(d["window_start"] for d in drifts if d["feature"] == "session_minutes")
    ends = sorted(d["window_end"] for d in drifts if d["feature"] == "session_minutes")
    assert (starts[0][11:16], ends[-1][11:16]) == m.groups()[:2]
    from logsight.sources.mlevents import read_events

    preds = read_events(engine, "prediction", model=I.MODEL_NAME, start=starts[0],
                        end=ends[-1], namespace=namespace)
    assert int(m.group(4)) == int(preds["feature.session_minutes"].notna().sum())
    # every log line the simulation wrote is in the cluster, and the services' per-minute
    # line counts differ (they log differently, as real services do)
    from logsight.sources.logs import read_logs

    logs = read_logs(engine, namespace=namespace)
    assert len(logs) == summary["emitted"]["logs"]
    per_minute = (logs.assign(minute=logs["timestamp"].dt.floor("min"))
                  .groupby(["service", "minute"]).size().unstack("service", fill_value=0))
    cols = list(per_minute.columns)
    assert len(cols) == 4
    for a_i, a in enumerate(cols):
        for b in cols[a_i + 1:]:
            assert not np.allclose(per_minute[a] / per_minute[a].sum(),
                                   per_minute[b] / per_minute[b].sum()), (a, b)
    # the HTML report renders in a real browser
    if find_chromium() is None:
        pytest.skip("chromium not installed: browser part of the end-to-end test skipped")
    shot = tmp_path / "demo-report.png"
    check = check_in_browser(summary["report"], screenshot=shot)
    print(f"demo report screenshot: {check.screenshot}")
    assert check.done, "the page's check script did not run"
    assert check.images == 5 and check.loaded == 5, check
    assert check.errors == []
    assert check.empty == [], (check.points, check.ink)
    assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000
