"""Comparing two versions of one service within one window: known answers on a toy system
(one version 3x slower in one operation), the split's edge cases, the CLI on files and the
cluster job against the real engine."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from logsight.analysis.traces import (
    compare_versions,
    regression_findings,
    split_by_version,
)
from logsight.cli import main
from logsight.findings import read_findings

MS = 1_000_000
T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


def request(trace: str, t0_ms: float, *, version: str, infer_ms: float,
            rng: np.random.Generator, api_version: str = "7") -> list[dict[str, Any]]:
    """api GET /predict (version ``api_version``) -> auth.check, then model.infer and
    model.postprocess in the model service (version ``version``)."""
    auth = rng.gamma(4, 1.0)
    infer = abs(rng.normal(infer_ms, infer_ms / 10))
    post = rng.gamma(4, 1.0)
    a_end = t0_ms + 1 + auth
    i_end = a_end + infer
    p_end = i_end + post

    def span(sid: str, parent: str | None, svc: str, name: str, a: float, b: float,
             ver: str) -> dict[str, Any]:
        return {"trace_id": trace, "span_id": sid, "parent_id": parent, "service": svc,
                "name": name, "start_ns": T0_NS + int(a * MS), "end_ns": T0_NS + int(b * MS),
                "version": ver, "status": "ok"}

    return [
        span("r", None, "api", "GET /predict", t0_ms, p_end + 1, api_version),
        span("a", "r", "api", "auth.check", t0_ms + 1, a_end, api_version),
        span("i", "r", "model", "model.infer", a_end, i_end, version),
        span("p", "r", "model", "model.postprocess", i_end, p_end, version),
    ]


def window(n_per_version: int, infer_ms: dict[str, float], seed: int) -> pd.DataFrame:
    """One window with requests interleaved across versions (a canary rollout)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    versions = list(infer_ms)
    for i in range(n_per_version * len(versions)):
        v = versions[i % len(versions)]
        rows += request(f"t{i}", i * 200.0, version=v, infer_ms=infer_ms[v], rng=rng)
    return pd.DataFrame(rows)


SYSTEM = {"1.0": 30.0, "2.0": 90.0, "2.1": 30.0}  # 2.0 has a 3x slower model.infer


def test_version_with_a_3x_slower_operation_is_flagged() -> None:
    spans = window(120, SYSTEM, seed=1)
    results, split = compare_versions(spans, service="model", baseline_version="1.0",
                                      candidate_version="2.0")
    assert (split.baseline_traces, split.candidate_traces, split.mixed_traces) == (120, 120, 0)
    flagged = {(r.service, r.operation) for r in results if r.regressed}
    assert flagged == {("model", "model.infer")}
    infer = next(r for r in results if r.operation == "model.infer")
    assert infer.p95_ratio == pytest.approx(3.0, rel=0.15)
    assert "latency" in infer.reasons and infer.score < infer.threshold
    # the other operations run the same code in both versions: compared, not flagged
    same = {r.operation: r for r in results if not r.regressed}
    assert set(same) == {"GET /predict", "auth.check", "model.postprocess"}
    assert same["GET /predict"].downstream  # slower only because it waits on infer
    assert same["model.postprocess"].p95_ratio == pytest.approx(1.0, abs=0.2)

    findings = regression_findings(results, window_start="2024-03-01T10:00:00Z",
                                   window_end="2024-03-01T11:00:00Z", versions=split)
    [f] = findings
    assert (f.kind, f.service, f.operation, f.severity) == (
        "trace_regression", "model", "model.infer", "high")
    assert f.subject == "model.infer (1.0 -> 2.0)"
    assert f.evidence["baseline_version"] == "1.0" and f.evidence["candidate_version"] == "2.0"
    assert f.evidence["version_service"] == "model" and f.evidence["comparison"] == "versions"
    # not the id of the window-against-window finding of the same operation and window
    window_finding = regression_findings(results, window_start="2024-03-01T10:00:00Z",
                                         window_end="2024-03-01T11:00:00Z")[0]
    assert window_finding.id != f.id


def test_versions_running_the_same_code_are_not_flagged() -> None:
    spans = window(120, SYSTEM, seed=2)
    results, split = compare_versions(spans, service="model", baseline_version="1.0",
                                      candidate_version="2.1")
    assert split.candidate_traces == 120
    assert len(results) == 4 and not [r for r in results if r.regressed]
    assert regression_findings(results, window_start=None, window_end=None,
                               versions=split) == []


def test_split_keeps_whole_traces_and_leaves_mixed_ones_out() -> None:
    rng = np.random.default_rng(3)
    rows = request("a", 0, version="1.0", infer_ms=10, rng=rng)
    rows += request("b", 100, version="2.0", infer_ms=10, rng=rng)
    mixed = request("c", 200, version="1.0", infer_ms=10, rng=rng)
    mixed[3]["version"] = "2.0"  # a retry landed on the other version
    spans = pd.DataFrame(rows + mixed)
    before = spans.copy()
    split = split_by_version(spans, service="model", baseline_version="1.0",
                             candidate_version="2.0")
    pd.testing.assert_frame_equal(spans, before)
    assert set(split.baseline["trace_id"]) == {"a"} and len(split.baseline) == 4
    assert set(split.candidate["trace_id"]) == {"b"}
    # the api spans keep their own version: whole traces move, not single spans
    assert set(split.candidate["version"]) == {"7", "2.0"}
    assert split.mixed_traces == 1


@pytest.mark.parametrize(("kw", "message"), [
    ({"service": "nope"}, "no spans of service 'nope'"),
    ({"candidate_version": "9.9"}, "versions seen: ['1.0', '2.0', '2.1']"),
    ({"candidate_version": "1.0"}, "are the same"),
])
def test_bad_version_arguments_are_explained(kw: dict[str, str], message: str) -> None:
    spans = window(3, SYSTEM, seed=4)
    args = {"service": "model", "baseline_version": "1.0", "candidate_version": "2.0", **kw}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        split_by_version(spans, **args)
    with pytest.raises(ValueError, match="no 'version' column"):
        split_by_version(spans.drop(columns="version"), service="model",
                         baseline_version="1.0", candidate_version="2.0")


# -- CLI on a file ---------------------------------------------------------------------------
def to_ndjson(path: Path, spans: pd.DataFrame) -> Path:
    lines = []
    for r in spans.to_dict("records"):
        rec = {"trace_id": r["trace_id"], "span_id": r["span_id"], "service.name": r["service"],
               "name": r["name"], "start_time_unix_nano": int(r["start_ns"]),
               "end_time_unix_nano": int(r["end_ns"]), "service.version": r["version"]}
        if isinstance(r["parent_id"], str):  # roots have none (NaN in the frame)
            rec["parent_span_id"] = r["parent_id"]
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_version_regressions_on_a_file(tmp_path: Path) -> None:
    path = to_ndjson(tmp_path / "spans.ndjson", window(60, SYSTEM, seed=5))
    res = CliRunner().invoke(main, ["traces", "regressions", "--input", str(path),
                                    "--service", "model", "--baseline-version", "1.0",
                                    "--version", "2.0", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["traces"] == {"baseline": 60, "candidate": 60, "mixed": 0}
    assert [(r["service"], r["operation"]) for r in out["regressions"] if r["regressed"]] == [
        ("model", "model.infer")]
    [f] = out["findings"]
    assert f["evidence"]["candidate_version"] == "2.0" and f["kind"] == "trace_regression"
    table = CliRunner().invoke(main, ["traces", "regressions", "--input", str(path),
                                      "--service", "model", "--baseline-version", "1.0",
                                      "--version", "2.1"])
    assert table.exit_code == 0, table.output
    assert "model 2.1 (60 traces) vs 1.0 (60 traces)" in table.output
    assert "True" not in table.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--version", "2.0"], "give both --baseline-version and --version"),
    (["--baseline-version", "1.0", "--version", "2.0", "--service", "model",
      "--baseline-input", "x.ndjson"], "drop --baseline-input"),
    (["--baseline-version", "1.0", "--version", "2.0"], "--service is required"),
    (["--baseline-version", "1.0", "--version", "3.0", "--service", "model"],
     "versions seen"),
])
def test_cli_version_mode_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    path = to_ndjson(tmp_path / "spans.ndjson", window(3, SYSTEM, seed=6))
    res = CliRunner().invoke(main, ["traces", "regressions", "--input", str(path), *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


# -- against the real engine -----------------------------------------------------------------
def span_doc(r: dict[str, Any]) -> dict[str, Any]:
    start = int(r["start_ns"])
    doc = {
        "@timestamp": datetime.fromtimestamp(start / 1e9, UTC).isoformat().replace("+00:00", "Z"),
        "trace.id": r["trace_id"], "span.id": r["span_id"], "service.name": r["service"],
        "service.version": r["version"], "span.name": r["name"], "span.kind": "internal",
        "span.start_unix_nano": start, "span.end_unix_nano": int(r["end_ns"]),
        "span.status": "ok",
    }
    if isinstance(r["parent_id"], str):  # roots have none (NaN after the frame round trip)
        doc["parent.id"] = r["parent_id"]
    return doc


@pytest.mark.engine
def test_version_regressions_from_the_cluster(engine: Any, namespace: str) -> None:
    from tests.cluster_jobs import run_version_regressions

    from logsight import names

    uid = uuid.uuid4().hex[:8]
    spans = window(40, SYSTEM, seed=7)
    # unique names: the findings index is shared by every test
    spans["service"] = spans["service"] + f"-{uid}"
    spans["trace_id"] = spans["trace_id"] + f"-{uid}"
    model = f"model-{uid}"
    stream = names.stream(names.TRACES, namespace)
    result = engine.bulk(
        [({"create": {"_index": stream, "_id": f"{r['trace_id']}-{r['span_id']}"}}, span_doc(r))
         for r in spans.to_dict("records")],
        refresh="wait_for",
    )
    assert not result.errors, result.errors[:3]
    start, end = T0, T0 + timedelta(hours=1)
    results, findings, split = run_version_regressions(
        engine, start=start, end=end, service=model, baseline_version="1.0",
        candidate_version="2.0", namespace=namespace,
    )
    # 2.1's traces are not read: only the two versions compared
    assert (split.baseline_traces, split.candidate_traces) == (40, 40)
    assert [(f.service, f.operation) for f in findings] == [(model, "model.infer")]
    assert findings[0].subject == "model.infer (1.0 -> 2.0)"
    _, same, _ = run_version_regressions(
        engine, start=start, end=end, service=model, baseline_version="1.0",
        candidate_version="2.1", namespace=namespace,
    )
    assert same == []
    # a re-run overwrites the finding (stable id), and the CLI gives the same answer
    res = CliRunner().invoke(main, [
        "traces", "regressions", "--service", model, "--baseline-version", "1.0",
        "--version", "2.0", "--from", start.isoformat(), "--to", end.isoformat(),
        "--namespace", namespace, "--url", engine.url, "--json",
    ])
    assert res.exit_code == 0, res.output
    assert [f["subject"] for f in json.loads(res.output)["findings"]] == [
        "model.infer (1.0 -> 2.0)"]
    stored, _ = read_findings(engine, kind="trace_regression", service=model)
    assert len(stored) == 1 and stored[0]["id"] == findings[0].id
    assert stored[0]["evidence"]["baseline_version"] == "1.0"
    assert stored[0]["evidence"]["candidate_version"] == "2.0"
    bad = CliRunner().invoke(main, [
        "traces", "regressions", "--service", model, "--baseline-version", "1.0",
        "--version", "9.9", "--from", start.isoformat(), "--to", end.isoformat(),
        "--namespace", namespace, "--url", engine.url,
    ])
    assert bad.exit_code == 2 and "versions seen" in bad.output
