"""Log anomalies against the real engine: index logs through the stream's pipeline, read them
back with PIT + search_after, flag the injected burst, write findings idempotently."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tests.cluster_jobs import run_log_analysis, run_log_anomalies

from logsight import names
from logsight.analysis.logs import WINDOW_COLUMNS
from logsight.cli import main
from logsight.findings import finding_id
from logsight.sources.logs import read_logs

pytestmark = pytest.mark.engine

T0 = pd.Timestamp("2024-05-01T10:00:00Z")
BURST = "payment gateway rejected charge for order {} with code {}"


def _docs(service_a: str, service_b: str, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """14 minutes of two services (~20 lines/min each); minute 12 of A holds a burst of 20
    error lines of a never-seen template."""
    rng = np.random.default_rng(seed)
    templates = {
        service_a: ["checkout {} completed in {} ms", "cart {} updated with {} items"],
        service_b: ["indexed {} documents in {} ms", "refreshed shard {} after {} ms"],
    }
    docs = []
    for minute in range(14):
        for svc, tpls in templates.items():
            for _ in range(rng.poisson(20)):
                docs.append({
                    "@timestamp": (T0 + pd.Timedelta(minutes=minute, seconds=rng.uniform(0, 60)))
                    .isoformat(),
                    "log": {"level": "INFO"},
                    "service": {"name": svc, "version": "1.0"},
                    "message": tpls[rng.integers(len(tpls))].format(*rng.integers(1, 999, 2)),
                })
        if minute == 12:
            for _ in range(20):
                docs.append({
                    "@timestamp": (T0 + pd.Timedelta(minutes=minute, seconds=rng.uniform(0, 60)))
                    .isoformat(),
                    "log": {"level": "ERROR"},
                    "service": {"name": service_a, "version": "1.0"},
                    "message": BURST.format(*rng.integers(1, 99999, 2)),
                })
    return [(f"{service_a}-{i}", d) for i, d in enumerate(docs)]


def _index(engine: Any, namespace: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
    stream = names.stream("logs", namespace)
    result = engine.bulk(
        [({"create": {"_index": stream, "_id": doc_id}}, doc) for doc_id, doc in docs],
        refresh="true",
    )
    assert not result.errors, result.errors[:3]
    assert result.ok == len(docs)


def test_burst_is_flagged_with_its_template(engine: Any, namespace: str) -> None:
    svc_a, svc_b = f"shop-{namespace}", f"search-{namespace}"
    docs = _docs(svc_a, svc_b)
    _index(engine, namespace, docs)
    end = T0 + pd.Timedelta(minutes=14)

    frame = read_logs(engine, start=T0, end=end, namespace=namespace)
    assert len(frame) == len(docs)
    assert frame["timestamp"].is_monotonic_increasing
    assert set(frame["level"]) == {"info", "error"}  # the pipeline lower-cases; we normalise

    findings = run_log_anomalies(
        engine, start=T0, end=end, namespace=namespace, baseline="10min", write=True
    )
    anomalies = [f for f in findings if f.kind == "log_anomaly"]
    w_start = T0 + pd.Timedelta(minutes=12)
    assert [(f.service, pd.Timestamp(f.window_start)) for f in anomalies] == [(svc_a, w_start)]
    f = anomalies[0]
    assert f.evidence["new_templates"][0]["template"] == BURST.format("<*>", "<*>")
    assert f.evidence["new_templates"][0]["count"] == 20
    burst_ids = {doc_id for doc_id, d in docs if d["message"].startswith("payment gateway")}
    assert f.sample_ids and set(f.sample_ids[:5]) <= burst_ids
    assert f.id == finding_id("log_anomaly", svc_a, None, f.window_start, f.window_end,
                              f.namespace)

    stored = engine.get(names.FINDINGS_INDEX, f.id)
    assert stored is not None and stored["_source"]["kind"] == "log_anomaly"
    assert stored["_source"]["namespace"] == namespace

    # re-running overwrites by stable id: no duplicate findings
    query = {"term": {"service": svc_a}}
    before = engine.count(names.FINDINGS_INDEX, query)
    again = run_log_anomalies(
        engine, start=T0, end=end, namespace=namespace, baseline="10min", write=True
    )
    engine.refresh(names.FINDINGS_INDEX)
    assert [x.id for x in again] == [x.id for x in findings]
    assert engine.count(names.FINDINGS_INDEX, query) == before == 1

    # the CLI end to end on the same cluster, filtered to the burst's service
    res = CliRunner().invoke(main, [
        "logs", "anomalies", "--url", engine.url, "--namespace", namespace,
        "--service", svc_a, "--from", T0.isoformat(), "--to", end.isoformat(),
        "--baseline", "10min", "--no-write", "--json",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [d["id"] for d in out["findings"]] == [f.id]
    assert out["lines"] == len([d for _, d in docs if d["service"]["name"] == svc_a])


def test_run_log_analysis_returns_windows_and_findings(engine: Any, namespace: str) -> None:
    """A perfectly regular heartbeat service (the forest is blind against it) with a burst of
    never-seen errors, through the cluster: the burst is flagged, and the per-window scores
    come back with the findings from the same run."""
    svc = f"heartbeat-{namespace}"
    docs = []
    for minute in range(16):
        docs.append({"@timestamp": (T0 + pd.Timedelta(minutes=minute, seconds=1)).isoformat(),
                     "log.level": "INFO", "service.name": svc,
                     "message": "heartbeat ok from worker 0"})
        if minute == 13:
            docs.extend({"@timestamp": (T0 + pd.Timedelta(minutes=minute, seconds=10 + i))
                         .isoformat(), "log.level": "ERROR", "service.name": svc,
                         "message": f"GPU {i % 4} fell off the bus (Xid 79)"} for i in range(23))
    _index(engine, namespace, [(f"{svc}-{i}", d) for i, d in enumerate(docs)])
    end = T0 + pd.Timedelta(minutes=16)

    result = run_log_analysis(engine, start=T0, end=end, namespace=namespace,
                              baseline="10min", write=False)
    burst = T0 + pd.Timedelta(minutes=13)
    assert [(f.service, pd.Timestamp(f.window_start)) for f in result.findings] == [(svc, burst)]
    assert result.findings[0].evidence["overwhelming"] is True
    table = result.windows
    assert table["window"].tolist() == list(pd.date_range(T0 + pd.Timedelta(minutes=10),
                                                          periods=6, freq="1min"))
    assert table.loc[table["anomalous"], "window"].tolist() == [burst]
    assert table.loc[table["window"] == burst, "error_ratio"].item() == pytest.approx(23 / 24)
    # run_log_anomalies is the same code path, findings only
    again = run_log_anomalies(engine, start=T0, end=end, namespace=namespace,
                              baseline="10min", write=False)
    assert [f.id for f in again] == [f.id for f in result.findings]


def test_template_drift_after_deploy(engine: Any, namespace: str) -> None:
    svc = f"ranker-{namespace}"
    rng = np.random.default_rng(1)
    docs = []
    for i in range(300):
        v2 = i >= 150
        msg = (f"fallback ranking used for query {i}" if v2 and rng.random() < 0.5
               else f"ranked {rng.integers(5, 50)} items for query {i}")
        docs.append((f"{svc}-{i}", {
            "@timestamp": (T0 + pd.Timedelta(seconds=2 * i)).isoformat(),
            "log.level": "info", "service.name": svc,
            "service.version": "2.0" if v2 else "1.0", "message": msg,
        }))
    _index(engine, namespace, docs)
    findings = run_log_anomalies(
        engine, start=T0, end=T0 + pd.Timedelta(minutes=10), namespace=namespace,
        service=svc, baseline=0.5, write=False,
    )
    drift = [f for f in findings if f.kind == "template_drift"]
    assert len(drift) == 1
    assert drift[0].subject == "1.0->2.0"
    assert drift[0].evidence["shifted_templates"][0]["template"] == (
        "fallback ranking used for query <*>"
    )


def test_template_drift_finding_is_stable_across_ranges(engine: Any, namespace: str) -> None:
    """A scheduled run over a sliding range rewrites the deploy's finding, never adds one: the
    id is keyed on the first line of the new version, not on the range read."""
    svc = f"scorer-{namespace}"
    rng = np.random.default_rng(2)
    docs = []
    for i in range(300):
        v2 = i >= 150
        msg = (f"cache miss for user {i}" if v2 and rng.random() < 0.5
               else f"scored user {i} in {rng.integers(1, 9)} ms")
        docs.append((f"{svc}-{i}", {
            "@timestamp": (T0 + pd.Timedelta(seconds=2 * i)).isoformat(),
            "log.level": "info", "service.name": svc,
            "service.version": "2.0" if v2 else "1.0", "message": msg,
        }))
    _index(engine, namespace, docs)
    deploy = T0 + pd.Timedelta(seconds=300)  # the first line of 2.0
    query = {"bool": {"filter": [{"term": {"service": svc}},
                                 {"term": {"kind": "template_drift"}}]}}
    ids = []
    for start, end in [(T0, T0 + pd.Timedelta(minutes=10)),
                       (T0 + pd.Timedelta(seconds=90), T0 + pd.Timedelta(minutes=8))]:
        findings = run_log_anomalies(engine, start=start, end=end, namespace=namespace,
                                     service=svc, baseline=0.5, write=True)
        drift = [f for f in findings if f.kind == "template_drift"]
        assert len(drift) == 1
        assert pd.Timestamp(drift[0].window_start) == deploy
        ids.append(drift[0].id)
    assert ids[0] == ids[1]
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, query) == 1


def test_empty_range_reads_nothing(engine: Any, namespace: str) -> None:
    assert read_logs(engine, start=T0, end=T0 + pd.Timedelta(minutes=1),
                     namespace=namespace).empty
    assert run_log_anomalies(engine, start=T0, end=T0 + pd.Timedelta(minutes=1),
                             namespace=namespace) == []
    empty = run_log_analysis(engine, start=T0, end=T0 + pd.Timedelta(minutes=1),
                             namespace=namespace)
    assert empty.findings == [] and empty.windows.empty
    assert list(empty.windows.columns) == list(WINDOW_COLUMNS)


def test_cli_says_when_nothing_matched(engine: Any, namespace: str) -> None:
    """Unknown index / namespace / service is "no log lines matched" with what was searched
    (exit 1), not "no anomalous windows"; lines without anomalies say how much was analysed."""
    svc = f"calm-{namespace}"
    now = pd.Timestamp.now(tz="UTC").floor("1min")
    # one line a minute from 5h ago to 4h ago: inside --from 6h --to 3h whatever the timing
    docs = [(f"{svc}-{m}", {"@timestamp": (now - pd.Timedelta(hours=5, minutes=-m)).isoformat(),
                            "log.level": "info", "service.name": svc,
                            "message": f"heartbeat {m} ok"}) for m in range(60)]
    _index(engine, namespace, docs)
    base = ["logs", "anomalies", "--url", engine.url, "--no-write"]
    runner = CliRunner()

    res = runner.invoke(main, [*base, "--namespace", namespace, "--from", "6h", "--to", "3h",
                               "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["lines"] == len(docs) and out["windows_analysed"] > 0

    res = runner.invoke(main, [*base, "--namespace", namespace, "--from", "6h", "--to", "3h"])
    assert res.exit_code == 0, res.output
    assert f"window(s) scored, {len(docs)} line(s) read" in res.output

    res = runner.invoke(main, [*base, "--namespace", namespace, "--from", "6h",
                               "--index", f"nosuchindex-{namespace}"])
    assert res.exit_code == 1
    assert f"no log lines in index 'nosuchindex-{namespace}' between " in res.output
    assert "does not exist" in res.output

    res = runner.invoke(main, [*base, "--namespace", namespace, "--from", "6h",
                               "--service", "nosuch"])
    assert res.exit_code == 1
    assert (f"no log lines of service 'nosuch' in namespace '{namespace}' "
            f"({names.stream('logs', namespace)}) between ") in res.output
    assert f"services seen: ['{svc}']" in res.output

    res = runner.invoke(main, [*base, "--namespace", f"{namespace}x", "--from", "6h"])
    assert res.exit_code == 1 and "does not exist" in res.output

    # a range that misses the lines: the range is named
    res = runner.invoke(main, [*base, "--namespace", namespace, "--from", "2h"])
    assert res.exit_code == 1 and f"no log lines in namespace '{namespace}'" in res.output
    assert "Traceback" not in res.output
