"""Drift and performance against the real engine: predictions and late feedback in the
mlevents stream, one shifted feature and one worse version: exactly two findings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from tests import cluster_jobs as J

from logsight import names
from logsight import writer as W
from logsight.cli import main
from logsight.findings import read_findings
from logsight.sources import mlevents as M

pytestmark = pytest.mark.engine

T0 = datetime(2024, 3, 1, tzinfo=UTC)
REF = (T0, T0 + timedelta(days=1))
CUR = (T0 + timedelta(days=1), T0 + timedelta(days=2))
FEATURES = ("x0", "x1", "x2", "x3")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


Log = Callable[..., None]


def _simulate(log_prediction: Log, log_feedback: Log, model: str, seed: int = 0) -> None:
    """Reference day: v1 only. Current day: v1 (70%) and v2 (30%), x1 shifted by +2 sd;
    v1 is right 90% of the time, v2 70%. Feedback arrives 6 hours after each prediction."""
    rng = np.random.default_rng(seed)
    for day, (start, _) in enumerate((REF, CUR)):
        n = 600
        for i in range(n):
            ts = start + timedelta(seconds=int(i * 86_400 / n))
            version = "v2" if day == 1 and rng.random() < 0.3 else "v1"
            feats = {f: float(rng.normal()) for f in FEATURES}
            feats["region"] = str(rng.choice(["eu", "us", "apac"]))
            if day == 1:
                feats["x1"] += 2.0
            label = str(rng.choice(["a", "b"]))
            acc = 0.9 if version == "v1" else 0.7
            pred = label if rng.random() < acc else ("b" if label == "a" else "a")
            score = float(rng.uniform(0.55, 0.99))
            rid = f"{model}-{day}-{i}"
            log_prediction(model=model, version=version, features=feats, prediction=pred,
                           score=score, request_id=rid, timestamp=ts)
            log_feedback(request_id=rid, label=label, model=model,
                         timestamp=ts + timedelta(hours=6))


def _bulk_writer(engine: Any, namespace: str, service: str) -> tuple[Log, Log, Callable[[], None]]:
    """Documents in the shape of docs/DEVELOPING.md, sent with {"create": ...} actions."""
    index = names.stream("mlevents", namespace)
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def base(kind: str, ts: datetime, model: str, version: str | None) -> dict[str, Any]:
        doc = {"@timestamp": _iso(ts), "event.id": uuid.uuid4().hex, "service.name": service,
               "ml.event_type": kind, "ml.model.name": model}
        if version:
            doc["ml.model.version"] = version
        return doc

    def log_prediction(*, model: str, version: str, features: dict[str, Any], prediction: str,
                       score: float, request_id: str, timestamp: datetime) -> None:
        doc = base("prediction", timestamp, model, version)
        doc.update({"ml.request_id": request_id, "ml.prediction": prediction,
                    "ml.score": score})
        doc.update({f"ml.features.{k}": v for k, v in features.items()})
        actions.append(({"create": {"_index": index, "_id": doc["event.id"]}}, doc))

    def log_feedback(*, request_id: str, label: str, model: str, timestamp: datetime) -> None:
        doc = base("feedback", timestamp, model, None)
        doc.update({"ml.request_id": request_id, "ml.label": label})
        actions.append(({"create": {"_index": index, "_id": doc["event.id"]}}, doc))

    def flush() -> None:
        for i in range(0, len(actions), 2000):
            res = engine.bulk(actions[i:i + 2000])
            assert not res.errors, res.errors[:1]
        engine.refresh(index)

    return log_prediction, log_feedback, flush


def _check_findings(engine: Any, namespace: str, model: str) -> None:
    results, drift_findings = J.run_drift(engine, model=model, reference=REF, current=CUR,
                                          namespace=namespace)
    report, perf_findings = J.run_performance(engine, model=model, start=CUR[0], end=CUR[1],
                                              reference=REF, namespace=namespace)
    got = sorted((f.kind, f.subject) for f in drift_findings + perf_findings)
    assert got == [("feature_drift", "x1"), ("version_regression", "v2")]
    by_name = {r.feature: r for r in results}
    assert set(by_name) >= {*FEATURES, "region", "score", "prediction"}
    assert by_name["x1"].method == "binned"
    # late labels: every prediction of the window is labelled (feedback 6 h later)
    assert report.label_coverage == pytest.approx(1.0)
    assert {v.version for v in report.versions} == {"v1", "v2"}
    stored = read_findings(engine, kind=["feature_drift", "version_regression"],
                           service=f"svc-{namespace}", size=50)[0]
    assert sorted((d["kind"], d["subject"]) for d in stored) == got
    # re-running never duplicates
    J.run_performance(engine, model=model, start=CUR[0], end=CUR[1], reference=REF,
                      namespace=namespace)
    again = read_findings(engine, kind=["feature_drift", "version_regression"],
                          service=f"svc-{namespace}", size=50)[0]
    assert len(again) == len(stored)


def test_drift_and_version_regression_from_bulk_documents(engine, namespace) -> None:  # type: ignore[no-untyped-def]
    model = "churn"
    lp, lf, flush = _bulk_writer(engine, namespace, f"svc-{namespace}")
    _simulate(lp, lf, model)
    flush()
    _check_findings(engine, namespace, model)

    # aggregation-based drift agrees with the raw-row computation (docs/drift.md tolerances)
    binned = {r.feature: r for r in J.run_drift(engine, model=model, reference=REF,
                                                current=CUR, namespace=namespace,
                                                write=False, outliers=False)[0]}
    raw = {r.feature: r for r in J.run_drift_raw(engine, model=model, reference=REF,
                                                 current=CUR, namespace=namespace)}
    for name in FEATURES:
        b, r = binned[name], raw[name]
        assert b.drifted == r.drifted
        assert b.psi == pytest.approx(r.psi, abs=0.05)
        assert b.js_distance == pytest.approx(r.js_distance, abs=0.03)
        assert abs(b.ks_statistic - r.ks_statistic) <= b.ks_error_bound + 0.02
        assert b.wasserstein == pytest.approx(r.wasserstein, abs=0.05)
    assert binned["region"].chisquare == pytest.approx(raw["region"].chisquare)

    # a stored profile gives the same verdicts, and so does the CLI against the cluster
    prof, fields = M.profile_from_cluster(engine, model=model, start=REF[0], end=REF[1],
                                          namespace=namespace)
    pid = W.store_profile(engine, prof, model=model, name=f"ref-{namespace}", fields=fields,
                          window=REF, namespace=namespace)
    from_stored, _ = J.run_drift(engine, model=model, reference=pid, current=CUR,
                                 namespace=namespace, write=False)
    assert [r.feature for r in from_stored if r.drifted] == ["x1"]
    res = CliRunner().invoke(main, [
        "drift", "--model", model, "--namespace", namespace, "--url", engine.url,
        "--reference-from", _iso(REF[0]), "--reference-to", _iso(REF[1]),
        "--current-from", _iso(CUR[0]), "--current-to", _iso(CUR[1]), "--json", "--no-write",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [f["feature"] for f in out["features"] if f["drifted"]] == ["x1"]
    perf = CliRunner().invoke(main, [
        "performance", "--model", model, "--namespace", namespace, "--url", engine.url,
        "--from", _iso(CUR[0]), "--to", _iso(CUR[1]), "--no-write",
    ])
    assert perf.exit_code == 0, perf.output
    assert "version_regression" in perf.output
    bad = CliRunner().invoke(main, [
        "drift", "--model", model, "--url", engine.url, "--current-from", "yesterday-ish",
        "--current-to", _iso(CUR[1]), "--reference-from", _iso(REF[0]),
        "--reference-to", _iso(REF[1]),
    ])
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_same_through_the_ml_adapter(engine, namespace) -> None:  # type: ignore[no-untyped-def]
    # plain imports: a broken logsight module must fail the test, never skip it
    from logsight import adapters, ecs

    index = names.stream("mlevents", namespace)
    docs: list[dict[str, Any]] = []

    def emit(kind: str, doc: Any) -> bool:
        assert kind == "mlevents"
        docs.append(dict(doc))
        return True

    ml = adapters.MlEvents(emit, ecs.Service(name=f"svc-{namespace}"), trace=False)
    model = "churn-adapter"
    _simulate(ml.log_prediction, lambda **kw: ml.log_feedback(
        kw.pop("request_id"), kw.pop("label"), **kw), model, seed=1)
    res = engine.bulk([({"create": {"_index": index, "_id": d["event.id"]}}, d) for d in docs])
    assert not res.errors, res.errors[:1]
    engine.refresh(index)
    _check_findings(engine, namespace, model)
