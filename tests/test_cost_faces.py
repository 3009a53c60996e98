"""``logsight cost`` and ``GET /v1/cost`` end to end: the simulated fleet priced to the cent
through the CLI (files and cluster) and the API (real engine), errors named by each face."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from logsight import names
from logsight.cli import main
from logsight.demo import fleet
from logsight.engine import connect
from logsight.service import ServiceSettings, create_app

START, END = fleet.START, fleet.START + timedelta(hours=4)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    m, e, c = tmp_path / "m.ndjson", tmp_path / "e.ndjson", tmp_path / "cost.yaml"
    m.write_text("".join(json.dumps(d) + "\n" for d in fleet.metrics_documents()))
    e.write_text("".join(json.dumps(d) + "\n" for d in fleet.prediction_documents()))
    c.write_text(fleet.COST_MODEL_YAML)
    return m, e, c


def _ship(engine: Any, namespace: str) -> None:
    for kind, docs in ((names.METRICS, fleet.metrics_documents()),
                       (names.MLEVENTS, fleet.prediction_documents())):
        index = names.stream(kind, namespace)
        res = engine.bulk((({"create": {"_index": index, "_id": d["event.id"]}}, d)
                           for d in docs), refresh="wait_for")
        assert not res.errors


def _by(rows: list[dict[str, Any]], **key: str) -> dict[str, Any]:
    [row] = [r for r in rows if all(r.get(k) == v for k, v in key.items())]
    return row


def test_cli_cost_on_files_json(tmp_path: Path) -> None:
    m, e, c = _files(tmp_path)
    res = CliRunner().invoke(main, ["cost", "--metrics", str(m), "--events", str(e),
                                    "--cost-model", str(c), "--rightsizing-min-hours", "4",
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert round(out["total"]["total_cost"], 2) == 4.81
    assert round(_by(out["by_stage"], stage="training")["total_cost"], 2) == 2.69
    v2 = _by(out["by_model_version"], model_version="2", stage="inference")
    assert v2["cost_per_1k_predictions"] == pytest.approx(0.94)
    assert len(out["windows"]) == 10 and out["cost_model"] == str(c)
    assert sorted(f["kind"] for f in out["findings"]) == [
        "cost_per_prediction_increase", "idle_gpu", "overprovisioned_memory"]


def test_cli_cost_table_and_errors(tmp_path: Path) -> None:
    m, e, c = _files(tmp_path)
    res = CliRunner().invoke(main, ["cost", "--metrics", str(m), "--events", str(e),
                                    "--cost-model", str(c), "--by", "stage"])
    assert res.exit_code == 0, res.output
    assert "training" in res.output and "total 4.81 USD over 600 samples" in res.output
    assert "[high] cost_per_prediction_increase" in res.output
    bad = CliRunner().invoke(main, ["cost", "--metrics", str(m), "--bucket", "soon"])
    assert bad.exit_code == 2 and "--bucket" in bad.output
    c.write_text("on_demand: {cpu_hour: 1}\n")
    bad = CliRunner().invoke(main, ["cost", "--metrics", str(m), "--cost-model", str(c)])
    assert bad.exit_code == 2 and "--cost-model" in bad.output
    assert "on_demand.memory_gb_hour is required" in bad.output
    bad = CliRunner().invoke(main, ["cost", "--events", str(e)])
    assert bad.exit_code == 2 and "--events needs --metrics" in bad.output


@pytest.mark.engine
def test_cli_cost_on_the_cluster_stores_rows(engine: Any, namespace: str,
                                              tmp_path: Path) -> None:
    _, _, c = _files(tmp_path)
    _ship(engine, namespace)
    res = CliRunner().invoke(main, ["cost", "--url", engine.url, "--namespace", namespace,
                                    "--from", START.isoformat(), "--to", END.isoformat(),
                                    "--cost-model", str(c), "--json"])
    assert res.exit_code == 0, res.output
    assert round(json.loads(res.output)["total"]["total_cost"], 2) == 4.81
    engine.refresh(names.COST_INDEX)
    assert engine.count(names.COST_INDEX, {"term": {"namespace": namespace}}) == 10
    empty = CliRunner().invoke(main, ["cost", "--url", engine.url, "--namespace", namespace,
                                      "--from", END.isoformat(),
                                      "--to", (END + timedelta(hours=1)).isoformat()])
    assert empty.exit_code == 1 and "no resource metrics" in empty.output


@pytest.mark.engine
def test_api_cost(engine: Any, namespace: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, c = _files(tmp_path)
    monkeypatch.setenv("LOGSIGHT_COST_MODEL", str(c))
    _ship(engine, namespace)
    app = create_app(lambda: connect(engine.url), ServiceSettings(auth=False, scheduler=False),
                     clock=lambda: END + timedelta(hours=2))
    with TestClient(app) as client:
        r = client.get("/v1/cost", params={"from": START.isoformat(), "to": END.isoformat(),
                                           "namespace": namespace})
        assert r.status_code == 200, r.text
        body = r.json()
        assert round(body["total"]["total_cost"], 2) == 4.81
        assert round(_by(body["by_service"], service="scorer")["gpu_cost"], 2) == 1.40
        assert round(_by(body["by_team"], team="research")["total_cost"], 2) == 2.69
        assert body["cost_model"] == str(c) and body["samples"] == 600
        assert {f["kind"] for f in body["findings"]} == {"cost_per_prediction_increase",
                                                         "idle_gpu"}  # 4 h < a week
        r = client.get("/v1/cost", params={"namespace": namespace, "service": "scorer",
                                           "from": START.isoformat(), "to": END.isoformat(),
                                           "bucket": "2h"})
        assert r.status_code == 200 and len(r.json()["windows"]) == 2
        r = client.get("/v1/cost", params={"namespace": namespace, "bucket": "never"})
        assert r.status_code == 400 and "bucket" in r.text
        r = client.get("/v1/cost", params={"namespace": namespace, "service": "nope-svc"})
        assert r.status_code == 404
        r = client.get("/v1/cost", params={"namespace": namespace, "buckets": "1h"})
        assert r.status_code == 422
        r = client.get("/v1/cost", params={"namespace": namespace})  # the last hour: no data
        assert r.status_code == 200 and r.json()["total"] is None
        assert "no resource metrics" in r.json()["empty_reason"]
