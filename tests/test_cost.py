"""The cost arithmetic: the simulated fleet (logsight.demo.fleet) priced by hand, to the cent;
the cost model's validation; prices by GPU model, capacity and instance type; the findings
(cost per 1k predictions after a deploy, idle GPU, over-provisioned memory); and properties
(splitting a service's cost over versions never creates or loses money)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.analysis import cost as C
from logsight.demo import fleet

START = fleet.START
END = START + timedelta(hours=4)


def _model(text: str = fleet.COST_MODEL_YAML) -> C.CostModel:
    return C.CostModel.from_mapping(yaml.safe_load(text))


def _predictions() -> pd.DataFrame:
    docs = fleet.prediction_documents()
    return pd.DataFrame({"timestamp": [d["@timestamp"] for d in docs],
                         "service": [d["service.name"] for d in docs],
                         "model": [d["ml.model.name"] for d in docs],
                         "model_version": [d["ml.model.version"] for d in docs]})


def _report(**kw: object) -> tuple[C.CostReport, pd.DataFrame]:
    usage = C.usage_frame(pd.DataFrame(fleet.metrics_documents()))
    return C.cost_report(usage, _predictions(), _model(), bucket="1h", start=START, end=END,
                         **kw)  # type: ignore[arg-type]  # keyword passthrough in a test helper


def _by(summaries: list[C.CostSummary], **key: str) -> C.CostSummary:
    found = [s for s in summaries if all(s.key.get(k) == v for k, v in key.items())]
    assert len(found) == 1, (key, [s.key for s in summaries])
    return found[0]


def test_fleet_costs_equal_the_hand_calculation_to_the_cent() -> None:
    report, _ = _report()
    # trainer, spot, 2 h: 8 cores x 0.012 + 32 GiB x 0.0015 + 1 A100 x 1.20 = 1.344 / h
    trainer = _by(report.by_service, service="trainer")
    assert round(trainer.cpu_cost, 2) == 0.19  # 2 x 8 x 0.012 = 0.192
    assert round(trainer.memory_cost, 3) == 0.096  # 2 x 32 x 0.0015
    assert round(trainer.gpu_cost, 2) == 2.40
    assert round(trainer.total_cost, 2) == 2.69  # 2.688
    # scorer, on demand, 4 h: max(2 requested, 0.5 used) x 0.04 + 8 GiB x 0.005 + T4 0.35
    scorer = _by(report.by_service, service="scorer")
    assert round(scorer.total_cost, 2) == 1.88  # 4 x 0.47
    assert round(scorer.gpu_cost, 2) == 1.40
    # featurizer: 1 core x 0.04 + 4 GiB (the limit, above its usage) x 0.005 = 0.06 / h
    assert round(_by(report.by_service, service="featurizer").total_cost, 2) == 0.24
    assert report.total is not None and round(report.total.total_cost, 2) == 4.81  # 4.808
    assert round(_by(report.by_stage, stage="training").total_cost, 2) == 2.69
    assert round(_by(report.by_stage, stage="inference").total_cost, 2) == 2.12
    assert round(_by(report.by_team, team="research").total_cost, 2) == 2.69
    assert round(_by(report.by_team, team="serving").total_cost, 2) == 2.12
    assert report.total.predictions == 3000


def test_cost_per_model_version_and_per_1000_predictions() -> None:
    report, _ = _report()
    v1 = _by(report.by_model_version, model="churn", model_version="1", stage="inference")
    v2 = _by(report.by_model_version, model="churn", model_version="2", stage="inference")
    # the scorer's 0.47 / h: hours 0-1 served v1 (2,000 predictions), hours 2-3 v2 (1,000)
    assert round(v1.total_cost, 2) == 0.94 and v1.predictions == 2000
    assert round(v2.total_cost, 2) == 0.94 and v2.predictions == 1000
    assert v1.cost_per_1k_predictions == pytest.approx(0.47)
    assert v2.cost_per_1k_predictions == pytest.approx(0.94)
    train = _by(report.by_model_version, model="churn", model_version="2", stage="training")
    assert round(train.total_cost, 2) == 2.69 and train.cost_per_1k_predictions is None


def test_per_window_rows() -> None:
    report, _ = _report()
    scorer = [r for r in report.rows if r.service == "scorer"]
    assert [r.window_start.hour for r in scorer] == [12, 13, 14, 15]
    assert [r.model_version for r in scorer] == ["1", "1", "2", "2"]
    assert all(round(r.total_cost, 2) == 0.47 for r in scorer)
    assert [r.predictions for r in scorer] == [1000, 1000, 500, 500]
    trainer = [r for r in report.rows if r.service == "trainer"]
    assert [r.window_start.hour for r in trainer] == [12, 13]
    assert all(r.window_end - r.window_start == timedelta(hours=1) for r in report.rows)


def test_window_bounds_select_samples_by_the_interval_they_cover() -> None:
    usage = C.usage_frame(pd.DataFrame(fleet.metrics_documents()))
    report, _ = C.cost_report(usage, None, _model(), bucket="1h", start=START,
                              end=START + timedelta(hours=1))
    assert report.total is not None
    # one hour of each service: 1.344 + 0.47 + 0.06
    assert round(report.total.total_cost, 3) == 1.874


def test_findings_of_the_fleet() -> None:
    report, priced = _report()
    inc = C.cost_per_prediction_findings(report.rows, window_start=START, window_end=END)
    assert len(inc) == 1
    f = inc[0]
    assert (f.service, f.model, f.model_version) == ("scorer", "churn", "2")
    assert f.score == pytest.approx(100.0) and f.severity == "high"
    assert f.window_start == START + timedelta(hours=2)  # the deploy
    idle = C.idle_gpu_findings(priced, window_start=START, window_end=END)
    assert [x.service for x in idle] == ["scorer"]
    assert idle[0].evidence["mean_utilization_pct"] == pytest.approx(2.0)
    assert idle[0].evidence["gpu_hours"] == pytest.approx(4.0)
    assert round(idle[0].evidence["gpu_cost"], 2) == 1.40
    mem = C.overprovisioned_memory_findings(priced, _model(), window_start=START,
                                            window_end=END, min_hours=4)
    assert [x.service for x in mem] == ["scorer"]
    ev = mem[0].evidence
    # p95 1.5 GiB < 30% of 8 GiB; 1.5 x 1.3 = 1.95 -> 2.0 GiB (next 1/8 GiB)
    assert ev["p95_gb"] == pytest.approx(1.5) and ev["suggested_gb"] == 2.0
    assert round(ev["saved"], 2) == 0.12  # (8 - 2) GiB x 4 h x 0.005
    assert round(ev["saved_per_30d"], 2) == 21.60  # x 720 h / 4 h
    assert "2 GiB" in mem[0].summary
    # a week is the default period: four hours say nothing yet
    assert C.overprovisioned_memory_findings(priced, _model(), window_start=START,
                                             window_end=END) == []


def test_gpu_prices_by_model_name() -> None:
    p = _model().prices["on_demand"]
    assert p.gpu("Tesla T4") == 0.35
    assert p.gpu("NVIDIA A100-SXM4-40GB") == 3.00  # "A100" is contained in the name
    assert p.gpu("NVIDIA H100") == 2.50  # default
    assert _model().prices["spot"].gpu("Tesla T4") is None  # spot has its own table, no default


def test_missing_spot_prices_fall_back_with_a_note() -> None:
    m = _model("on_demand: {cpu_hour: 1.0, memory_gb_hour: 0.0}\n"
               "default: {capacity: spot}\n")
    usage = C.usage_frame(pd.DataFrame([
        {"@timestamp": "2026-12-01T01:00:00Z", "service.name": "a", "metricset.period": 3600000,
         "container.cpu.pct": 100.0, "container.memory.usage_bytes": 0.0}]))
    report, _ = C.cost_report(usage, None, m)
    assert report.total is not None and report.total.total_cost == pytest.approx(1.0)
    assert report.notes == ["no spot prices: on_demand prices used"]


def test_instance_type_charges_the_instance_hour() -> None:
    m = _model("on_demand: {cpu_hour: 1.0, memory_gb_hour: 1.0}\n"
               "instance_types: {m5.xlarge: {on_demand: 0.192, spot: 0.0672}}\n"
               "services: {web: {instance_type: m5.xlarge, capacity: spot}}\n")
    usage = C.usage_frame(pd.DataFrame([
        {"@timestamp": f"2026-12-01T0{h}:00:00Z", "service.name": "web",
         "metricset.period": 3600000, "container.cpu.pct": 300.0} for h in (1, 2, 3)]))
    report, _ = C.cost_report(usage, None, m)
    assert report.total is not None
    assert round(report.total.total_cost, 4) == round(3 * 0.0672, 4)
    assert report.total.cpu_cost == 0.0 and round(report.total.instance_cost, 4) == 0.2016


def test_missing_period_uses_the_gap_between_samples() -> None:
    usage = C.usage_frame(pd.DataFrame([
        {"@timestamp": f"2026-12-01T00:{m:02d}:00Z", "service.name": "a", "host.name": "h",
         "process.cpu.pct": 100.0} for m in (0, 10, 20)]))
    assert list(usage["hours"]) == pytest.approx([10 / 60] * 3)


@pytest.mark.parametrize(("text", "match"), [
    ("spot: {cpu_hour: 1}", "on_demand prices are required"),
    ("on_demand: {cpu_hour: -1, memory_gb_hour: 0}", r"on_demand.cpu_hour must be a finite"),
    ("on_demand: {cpu_hour: 'x', memory_gb_hour: 0}", r"on_demand.cpu_hour must be a number"),
    ("on_demand: {memory_gb_hour: 0}", r"on_demand.cpu_hour is required"),
    ("on_demand: {cpu_hour: 1, memory_gb_hour: 0}\nprices: {}", r"unknown key\(s\) \['prices'\]"),
    ("on_demand: {cpu_hour: 1, memory_gb_hour: 0}\nservices: {a: {capacity: reserved}}",
     r"services.a.capacity must be one of"),
    ("on_demand: {cpu_hour: 1, memory_gb_hour: 0}\nservices: {a: {instance_type: big}}",
     r"services.a.instance_type 'big' is not under instance_types"),
])
def test_cost_model_errors_name_the_key(text: str, match: str) -> None:
    with pytest.raises(C.CostModelError, match=match) as e:
        _model(text)
    assert e.value.parameter == "cost_model"


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b"]),
                          st.floats(0, 800), st.floats(0, 64)), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b"]),
                          st.sampled_from(["1", "2", "3"])), max_size=40))
def test_splitting_over_versions_conserves_cost(samples: list[tuple[int, str, float, float]],
                                                preds: list[tuple[int, str, str]]) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    usage = C.usage_frame(pd.DataFrame([
        {"@timestamp": (t0 + timedelta(minutes=30 * i + 30)).isoformat(), "service.name": s,
         "metricset.period": 1_800_000, "container.cpu.pct": cpu,
         "container.memory.usage_bytes": mem * C.GIB} for i, s, cpu, mem in samples]))
    p = pd.DataFrame({"timestamp": [(t0 + timedelta(minutes=30 * i)).isoformat()
                                    for i, _, _ in preds],
                      "service": [s for _, s, _ in preds], "model": "m",
                      "model_version": [v for _, _, v in preds]})
    report, priced = C.cost_report(usage, p if preds else None, _model(), bucket="1h")
    assert report.total is not None
    assert report.total.total_cost == pytest.approx(float(priced["total_cost"].sum()), abs=1e-9)
    assert sum(s.total_cost for s in report.by_service) == pytest.approx(
        report.total.total_cost, abs=1e-9)
    # predictions count where their service has samples in the same hour (else no cost)
    covered = {(pd.Timestamp(t).floor("1h"), s) for t, s in
               zip(priced["start"], priced["service"], strict=True)}
    expected = sum(1 for i, s, _ in preds
                   if (pd.Timestamp(t0 + timedelta(minutes=30 * i)).floor("1h"), s) in covered)
    assert report.total.predictions == expected
