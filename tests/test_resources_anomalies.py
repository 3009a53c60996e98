"""Resource anomalies: the simulated fleet's memory leak and CPU saturation found (and no
false alarm on its steady services), GPU memory pressure on toy rows, and the saturation
lined up with the latency of the real engine's spans."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from logsight import names
from logsight.analysis import cost as C
from logsight.analysis import resources as R
from logsight.demo import fleet
from logsight.jobs import JobParams, run_job
from logsight.jobs import resources as J
from logsight.writer import ClusterWriter

START, END = fleet.START, fleet.START + timedelta(hours=4)


def _usage() -> pd.DataFrame:
    return C.usage_frame(pd.DataFrame(fleet.metrics_documents()))


def test_the_fleet_leak_and_saturation_are_found_and_nothing_else() -> None:
    results = R.run_tests(_usage())
    flagged = sorted((r.test, r.service) for r in results if r.anomalous)
    assert flagged == [("cpu_saturation", "featurizer"), ("memory_leak", "featurizer")]
    leak = next(r for r in results if r.test == "memory_leak" and r.service == "featurizer")
    # 1 -> 3.5 GiB over the 239 minutes between the first and last sample
    assert leak.details["gb_per_hour"] == pytest.approx(2.5 / (239 / 60))
    assert leak.details["r2"] == pytest.approx(1.0)
    assert leak.details["hours_to_limit"] == pytest.approx(0.5 / (2.5 / (239 / 60)))
    sat = next(r for r in results if r.test == "cpu_saturation" and r.service == "featurizer")
    assert sat.score == pytest.approx(60 / 240)  # samples 181..240 are throttled
    assert sat.onset == START + timedelta(minutes=181)
    findings = R.resource_findings(results, window_start=START, window_end=END)
    leak_f = next(f for f in findings if f.kind == "memory_leak")
    assert leak_f.severity == "high" and "reaches its 4 GiB limit in" in leak_f.summary


def test_registered_tests_have_the_result_shape() -> None:
    assert set(R.RESOURCE_TESTS) == {"memory_leak", "cpu_saturation", "gpu_memory_pressure"}
    for r in R.run_tests(_usage()):
        assert r.direction in ("above", "below") and np.isfinite(r.score)


def test_gpu_memory_pressure_on_toy_rows() -> None:
    t = pd.date_range("2026-12-01", periods=20, freq="1min", tz="UTC")
    base = pd.DataFrame({"timestamp": t, "service": "s", "host": "h", "mem_used_gb": 1.0,
                         "mem_limit_gb": np.nan, "cpu_used": 0.1, "cpu_limit": np.nan,
                         "throttled_ratio": 0.0, "gpu_mem_pct": 50.0})
    hot = base.assign(gpu_mem_pct=np.linspace(80, 99, 20), service="hot")
    results = R.run_tests(pd.concat([base, hot]), tests=("gpu_memory_pressure",))
    assert [(r.service, r.anomalous) for r in results] == [("hot", True), ("s", False)]
    assert results[0].score == pytest.approx(np.quantile(np.linspace(80, 99, 20), 0.95))


def test_a_noisy_flat_series_is_no_leak() -> None:
    rng = np.random.default_rng(0)
    t = pd.date_range("2026-12-01", periods=240, freq="1min", tz="UTC")
    rows = pd.DataFrame({"timestamp": t, "service": "s", "host": "h",
                         "mem_used_gb": 2.0 + rng.normal(0, 0.05, 240), "mem_limit_gb": 4.0})
    r = R.RESOURCE_TESTS["memory_leak"](rows)
    assert r is not None and not r.anomalous


@pytest.mark.engine
def test_saturation_lined_up_with_latency_on_the_cluster(engine: Any, namespace: str) -> None:
    for kind, docs in ((names.METRICS, fleet.metrics_documents()),
                       (names.TRACES, fleet.span_documents())):
        res = engine.bulk((({"create": {"_index": names.stream(kind, namespace),
                                        "_id": d["event.id"]}}, d) for d in docs),
                          refresh="wait_for")
        assert not res.errors, res.errors[:1]
    result = J.resource_anomalies(J.ResourcesRequest(J.Window(START, END),
                                                     J.Scope(namespace=namespace)),
                                  J.ClusterMetrics(engine, namespace), ClusterWriter(engine))
    sat = next(f for f in result.findings if f.kind == "cpu_saturation")
    assert sat.evidence["latency_p95_before_ms"] == pytest.approx(100.0)
    assert sat.evidence["latency_p95_after_ms"] == pytest.approx(250.0)
    assert "p95 latency rose from 100 ms to 250 ms when CPU throttling began" in sat.summary
    assert sat.severity == "high"
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, {"bool": {"filter": [
        {"term": {"namespace": namespace}},
        {"terms": {"kind": ["memory_leak", "cpu_saturation"]}}]}}) == 2
    by_name = run_job(engine, "resource_anomalies",
                      JobParams(start=START, end=END, namespace=namespace, write=False))
    assert len(by_name.findings) == 2


def test_cli_resources_on_a_file(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from logsight.cli import main

    path = tmp_path / "m.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in fleet.metrics_documents()))
    res = CliRunner().invoke(main, ["resources", "--metrics", str(path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert sorted(f["kind"] for f in out["findings"]) == ["cpu_saturation", "memory_leak"]
    assert out["samples"] == 600
    table = CliRunner().invoke(main, ["resources", "--metrics", str(path)])
    assert "[high] memory_leak" in table.output and "600 samples, 2 finding(s)" in table.output
    empty = CliRunner().invoke(main, ["resources", "--metrics", str(path), "--from",
                                      "2030-01-01T00:00:00Z"])
    assert empty.exit_code == 1 and "no resource metrics" in empty.output
