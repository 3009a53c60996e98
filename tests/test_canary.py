"""Canary verdicts: an injected bad canary (slower, more errors) gets "roll back", a good one
"promote", too few requests "hold"; through the job on files and on the real engine, the CLI
(exit code 3 on roll back) and the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight import names
from logsight.analysis.canary import HOLD, PROMOTE, ROLL_BACK, canary_verdict
from logsight.cli import main
from logsight.jobs import canary as J

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _requests(service: str, version: str, n: int, *, slow: float = 1.0, error_rate: float = 0.01,
              seed: int, base: datetime = T0, first: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    lat = rng.lognormal(np.log(40.0), 0.3, n) * slow
    err = rng.random(n) < error_rate
    t0 = int(base.timestamp() * 1e9)
    out = []
    for i in range(n):
        start = t0 + int(i * 1e9)
        out.append({"trace.id": f"{first + i:032x}", "span.id": f"{first + i:016x}",
                    "service.name": service, "service.version": version,
                    "span.name": "POST /predict", "span.kind": "server",
                    "span.start_unix_nano": start, "span.end_unix_nano": start + int(lat[i] * 1e6),
                    "span.status": "error" if err[i] else "ok",
                    "@timestamp": (base + timedelta(seconds=i)).isoformat()})
    return out


def _verdict(n_b: int, n_c: int, *, slow: float = 1.0, err: float = 0.01, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    bl = rng.lognormal(np.log(40.0), 0.3, n_b)
    cl = rng.lognormal(np.log(40.0), 0.3, n_c) * slow
    return canary_verdict(service="s", baseline_version="v1", candidate_version="v2",
                          baseline_latency_ms=bl, candidate_latency_ms=cl,
                          baseline_errors=rng.random(n_b) < 0.01,
                          candidate_errors=rng.random(n_c) < err)


def test_bad_canary_rolls_back_good_one_promotes_few_requests_hold() -> None:
    bad = _verdict(2000, 300, slow=1.5, err=0.12)
    assert bad.verdict == ROLL_BACK
    failed = {c.metric for c in bad.checks if c.status == "fail"}
    assert failed == {"latency_p95_ms", "error_rate"}
    lat = next(c for c in bad.checks if c.metric == "latency_p95_ms")
    assert lat.effect == pytest.approx(lat.candidate_value / lat.baseline_value)
    assert lat.effect > 1.3 and lat.p_adjusted < 1e-6
    assert _verdict(2000, 300).verdict == PROMOTE
    few = _verdict(2000, 20, slow=3.0)
    assert few.verdict == HOLD and "not enough requests" in few.reason


def test_slow_only_or_errors_only_each_roll_back() -> None:
    assert _verdict(2000, 400, slow=1.6).verdict == ROLL_BACK
    v = _verdict(2000, 400, err=0.15)
    assert v.verdict == ROLL_BACK and "error rate" in v.reason


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_faster_candidate_is_never_rolled_back(seed: int) -> None:
    v = _verdict(500, 200, slow=0.8, err=0.0, seed=seed)
    assert v.verdict != ROLL_BACK


def test_quality_floor_over_many_canaries() -> None:
    """Over 40 seeds: every bad canary is rolled back, at most 1 good one is not promoted."""
    bad = [_verdict(1000, 200, slow=1.5, err=0.08, seed=s).verdict for s in range(40)]
    good = [_verdict(1000, 200, seed=s).verdict for s in range(40)]
    assert bad.count(ROLL_BACK) == 40
    assert good.count(PROMOTE) >= 39


def test_job_and_cli_on_a_file(tmp_path: Path) -> None:
    docs = (_requests("api", "v1", 600, seed=1) + _requests("api", "v2", 150, slow=1.6,
                                                             error_rate=0.1, seed=2, first=10_000)
            + _requests("ranker", "r1", 600, seed=3, first=20_000)
            + _requests("ranker", "r2", 150, seed=4, first=30_000))
    path = tmp_path / "spans.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    res = J.canary(J.CanaryRequest(J.Window()), J.SpanFile(path))
    got = {(v.service, v.baseline_version, v.candidate_version): v.verdict for v in res.verdicts}
    assert got == {("api", "v1", "v2"): ROLL_BACK, ("ranker", "r1", "r2"): PROMOTE}
    r = CliRunner().invoke(main, ["canary", "--input", str(path), "--json"])
    assert r.exit_code == 3, r.output  # a roll back fails the deploy step
    r = CliRunner().invoke(main, ["canary", "--input", str(path), "--service", "ranker"])
    assert r.exit_code == 0 and "PROMOTE" in r.output
    r = CliRunner().invoke(main, ["canary", "--input", str(path), "--service", "ranker",
                                  "--version", "r9"])
    assert r.exit_code != 0 and "r9" in r.output


@pytest.mark.engine
def test_cluster_job_finding_and_api(engine: Any, namespace: str) -> None:
    from fastapi.testclient import TestClient

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app

    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    docs = (_requests("api", "v1", 600, seed=1, base=base)
            + _requests("api", "v2", 150, slow=1.6, error_rate=0.1, seed=2, base=base,
                        first=10_000))
    stream = names.stream(names.TRACES, namespace)
    assert engine.bulk(({"create": {"_index": stream, "_id": d["span.id"]}}, d)
                       for d in docs).ok == len(docs)
    engine.refresh(stream)
    window = J.Window(base, base + timedelta(minutes=20))
    res = J.canary(J.CanaryRequest(window, J.Scope(namespace=namespace)),
                   J.ClusterSpans(engine, namespace), J.ClusterWriter(engine))
    (finding,) = res.findings
    assert finding.kind == "canary_verdict" and finding.evidence["verdict"] == ROLL_BACK
    assert engine.get(names.FINDINGS_INDEX, finding.id) is not None
    app = create_app(lambda: connect(engine.url), ServiceSettings(auth=False, scheduler=False))
    with TestClient(app) as client:
        r = client.get("/v1/canary", params={"service": "api", "version": "v2",
                                             "from": window.start.isoformat(),
                                             "to": window.end.isoformat(),
                                             "namespace": namespace})
    assert r.status_code == 200, r.text
    (v,) = r.json()["verdicts"]
    assert v["verdict"] == ROLL_BACK and v["baseline_version"] == "v1"
    assert {c["metric"] for c in v["checks"]} == {"latency_p95_ms", "error_rate"}


def _seed_model(engine: Any, namespace: str, model: str, *, acc_v2: float, seed: int) -> None:
    """One day: v1 (70%, right 90% of the time) and v2 (30%, right ``acc_v2``), every
    prediction labelled an hour later."""
    rng = np.random.default_rng(seed)
    index = names.stream(names.MLEVENTS, namespace)
    actions = []
    for i in range(1500):
        ts = T0 + timedelta(seconds=i * 40)
        version = "v2" if rng.random() < 0.3 else "v1"
        label = str(rng.choice(["a", "b"]))
        right = rng.random() < (0.9 if version == "v1" else acc_v2)
        pred = label if right else ("b" if label == "a" else "a")
        rid = f"{model}-{i}"
        for kind, at, extra in (
                ("prediction", ts, {"ml.model.version": version, "ml.prediction": pred,
                                    "ml.score": 0.8, "ml.features.x": float(rng.normal())}),
                ("feedback", ts + timedelta(hours=1), {"ml.label": label})):
            doc = {"@timestamp": at.isoformat(), "event.id": f"{rid}-{kind}",
                   "service.name": "scorer", "ml.event_type": kind, "ml.model.name": model,
                   "ml.request_id": rid, **extra}
            actions.append(({"create": {"_index": index, "_id": doc["event.id"]}}, doc))
    assert not engine.bulk(actions).errors
    engine.refresh(index)


@pytest.mark.engine
@pytest.mark.parametrize("acc_v2, verdict", [(0.6, ROLL_BACK), (0.9, PROMOTE)])
def test_model_canary_on_accuracy(engine: Any, namespace: str, acc_v2: float,
                                  verdict: str) -> None:
    from logsight.jobs import JobParams, run_job

    _seed_model(engine, namespace, "churn", acc_v2=acc_v2, seed=7)
    res = run_job(engine, "canary", JobParams(
        start=T0, end=T0 + timedelta(days=1), model="churn", version="v2",
        namespace=namespace, write=False))
    (row,) = res.rows()
    assert (row["baseline_version"], row["candidate_version"]) == ("v1", "v2")
    assert row["verdict"] == verdict, row
    assert any(c["metric"] in ("accuracy", "log_loss", "brier") for c in row["checks"])
    (finding,) = res.findings
    assert finding.model == "churn" and finding.evidence["verdict"] == verdict
    r = CliRunner().invoke(main, [
        "canary", "--url", engine.url, "--model", "churn", "--version", "v2", "--namespace",
        namespace, "--from", T0.isoformat(), "--to", (T0 + timedelta(days=1)).isoformat(),
        "--no-write", "--json"])
    assert r.exit_code == (3 if verdict == ROLL_BACK else 0), r.output
    assert json.loads(r.output)["verdicts"][0]["verdict"] == verdict
