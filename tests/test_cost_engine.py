"""The cost job against the real engine: the simulated fleet's metrics and predictions through
the ingest pipelines, priced to the cent from the cluster, the cost rows stored in
logsight-cost (re-runs overwrite), the findings stored; the same job over NDJSON files."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from logsight import names
from logsight.demo import fleet
from logsight.jobs import JobParams, run_job
from logsight.jobs import cost as J
from logsight.writer import ClusterWriter

START, END = fleet.START, fleet.START + timedelta(hours=4)


def _ship(engine: Any, namespace: str) -> None:
    for kind, docs in ((names.METRICS, fleet.metrics_documents()),
                       (names.MLEVENTS, fleet.prediction_documents())):
        index = names.stream(kind, namespace)
        result = engine.bulk(((({"create": {"_index": index, "_id": d["event.id"]}}), d)
                              for d in docs), refresh="wait_for")
        assert not result.errors, result.errors[:1]


def _model(tmp_path: Path) -> Path:
    p = tmp_path / "cost.yaml"
    p.write_text(fleet.COST_MODEL_YAML)
    return p


def _request(tmp_path: Path, namespace: str | None, **kw: Any) -> J.CostRequest:
    return J.CostRequest(J.Window(START, END), J.Scope(namespace=namespace),
                         cost_model=J.load_cost_model(_model(tmp_path)),
                         rightsizing_min_hours=4, **kw)


def _total(result: J.CostResult, service: str) -> float:
    return round(next(s.total_cost for s in result.report.by_service
                      if s.key["service"] == service), 2)


@pytest.mark.engine
def test_cost_from_the_cluster_to_the_cent_and_stored(engine: Any, namespace: str,
                                                      tmp_path: Path) -> None:
    _ship(engine, namespace)
    source = J.ClusterMetrics(engine, namespace)
    result = J.cost(_request(tmp_path, namespace), source, ClusterWriter(engine))
    assert result.samples == 600
    assert (_total(result, "trainer"), _total(result, "scorer"),
            _total(result, "featurizer")) == (2.69, 1.88, 0.24)
    assert result.report.total is not None and round(result.report.total.total_cost, 2) == 4.81
    assert result.report.total.predictions == 3000
    kinds = sorted((f.kind, f.service) for f in result.findings)
    assert kinds == [("cost_per_prediction_increase", "scorer"), ("idle_gpu", "scorer"),
                     ("overprovisioned_memory", "scorer")]
    engine.refresh(names.COST_INDEX)
    q = {"term": {"namespace": namespace}}
    assert engine.count(names.COST_INDEX, q) == len(result.report.rows) == 10
    agg = engine.search(names.COST_INDEX, {"size": 0, "query": q, "aggs": {
        "stage": {"terms": {"field": "stage"}, "aggs": {"c": {"sum": {"field": "total_cost"}}}},
        "v": {"filter": {"term": {"model_version": "2"}},
              "aggs": {"p": {"sum": {"field": "predictions"}}}}}})["aggregations"]
    by_stage = {b["key"]: round(b["c"]["value"], 2) for b in agg["stage"]["buckets"]}
    assert by_stage == {"training": 2.69, "inference": 2.12}
    assert agg["v"]["p"]["value"] == 1000
    # a re-run overwrites the same rows and findings
    J.cost(_request(tmp_path, namespace), source, ClusterWriter(engine))
    engine.refresh(names.COST_INDEX)
    assert engine.count(names.COST_INDEX, q) == 10
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, {"bool": {"filter": [
        {"term": {"namespace": namespace}},
        {"terms": {"kind": ["cost_per_prediction_increase", "idle_gpu",
                            "overprovisioned_memory"]}}]}}) == 3


@pytest.mark.engine
def test_cost_job_by_name_and_a_window_without_metrics(engine: Any, namespace: str,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _ship(engine, namespace)
    monkeypatch.setenv(J.COST_MODEL_ENV, str(_model(tmp_path)))
    result = run_job(engine, "cost", JobParams(start=START, end=END, namespace=namespace,
                                               write=False))
    assert isinstance(result, J.CostResult) and result.cost_model == str(_model(tmp_path))
    assert round(sum(r["total_cost"] for r in result.rows()), 2) == 4.81
    # the scheduler's call: an empty window is an empty answer, not an error
    empty = run_job(engine, "cost", JobParams(start=END + timedelta(days=1),
                                              end=END + timedelta(days=2), namespace=namespace))
    assert empty.rows() == [] and isinstance(empty, J.CostResult) and empty.empty_reason
    with pytest.raises(J.NoData, match="no resource metrics"):
        J.cost(J.CostRequest(J.Window(END + timedelta(days=1), END + timedelta(days=2)),
                             J.Scope(namespace=namespace)), J.ClusterMetrics(engine, namespace))


def test_cost_over_files(tmp_path: Path) -> None:
    metrics, events = tmp_path / "metrics.ndjson", tmp_path / "events.ndjson"
    metrics.write_text("".join(json.dumps(d) + "\n" for d in fleet.metrics_documents()))
    events.write_text("".join(json.dumps(d) + "\n" for d in fleet.prediction_documents()))
    result = J.cost(_request(tmp_path, None), J.MetricsFiles(metrics, events))
    assert result.report.total is not None and round(result.report.total.total_cost, 2) == 4.81
    open_ended = J.cost(J.CostRequest(cost_model=J.load_cost_model(_model(tmp_path))),
                        J.MetricsFiles(metrics, events))
    assert open_ended.report.total is not None
    assert round(open_ended.report.total.total_cost, 2) == 4.81
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"@timestamp": "2026-12-01T00:00:00Z"}\nnot json\n')
    with pytest.raises(J.BadRequest, match=r"bad.ndjson:2: not a JSON object"):
        J.cost(J.CostRequest(), J.MetricsFiles(bad))


def test_the_bundled_default_cost_model_loads() -> None:
    model = J.load_cost_model(J.DEFAULT_COST_MODEL)
    assert model.prices["on_demand"].gpu("NVIDIA A100-SXM4-80GB") == 3.67
    assert model.rates("spot")[1]
