"""Late labels against the real engine: predictions at T, feedback arriving hours later (in
simulated time, with a later @timestamp). ``windows_with_late_labels`` lists exactly the
prediction windows that got new labels since a given time, and re-running ``run_performance``
on such a window updates its metrics and its finding in place (same id, no duplicate); KPI
events of the window come back per version with a ``kpi_change`` finding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from tests import cluster_jobs as J

from logsight import names
from logsight.cli import main
from logsight.findings import read_findings
from logsight.sources import mlevents as M

pytestmark = pytest.mark.engine

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
W1 = (T0, T0 + timedelta(hours=1))
W2 = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
W3 = (T0 + timedelta(hours=2), T0 + timedelta(hours=3))


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class Stream:
    """mlevents documents in the shape of docs/DEVELOPING.md, sent with ``create`` actions."""

    def __init__(self, engine: Any, namespace: str, service: str, model: str) -> None:
        self.engine, self.service, self.model = engine, service, model
        self.index = names.stream(names.MLEVENTS, namespace)
        self.actions: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def _doc(self, kind: str, ts: datetime, **fields: Any) -> None:
        doc = {"@timestamp": _iso(ts), "event.id": uuid.uuid4().hex,
               "service.name": self.service, "ml.event_type": kind,
               "ml.model.name": self.model, **fields}
        self.actions.append(({"create": {"_index": self.index, "_id": doc["event.id"]}}, doc))

    def prediction(self, rid: str, ts: datetime, version: str, prediction: str) -> None:
        self._doc("prediction", ts, **{"ml.request_id": rid, "ml.model.version": version,
                                       "ml.prediction": prediction, "ml.features.x": 1.0})

    def feedback(self, rid: str, ts: datetime, label: str) -> None:
        self._doc("feedback", ts, **{"ml.request_id": rid, "ml.label": label})

    def kpi(self, rid: str, ts: datetime, name: str, value: float) -> None:
        self._doc("kpi", ts, **{"ml.request_id": rid, "ml.kpi.name": name,
                                "ml.kpi.value": value})

    def flush(self) -> None:
        res = self.engine.bulk(self.actions, refresh="wait_for")
        assert not res.errors, res.errors[:1]
        self.actions = []


def test_late_labels_recompute_the_window_in_place(engine: Any, namespace: str) -> None:
    service, model = f"svc-{namespace}", "ranker"
    s = Stream(engine, namespace, service, model)
    rng = np.random.default_rng(0)
    truth: dict[str, tuple[datetime, str, str, str]] = {}  # rid -> (time, version, label, pred)
    # W1: 200 predictions per version, v1 right 90% of the time, v2 60%; W2, W3: 50 of v1 each
    for w, (start, _), per_version in ((1, W1, 200), (2, W2, 50), (3, W3, 50)):
        versions = ("v1", "v2") if w == 1 else ("v1",)
        for i in range(per_version * len(versions)):
            v = versions[i % len(versions)]
            ts = start + timedelta(seconds=int(i * 3600 / (per_version * len(versions))))
            label = str(rng.choice(["a", "b"]))
            right = rng.random() < (0.9 if v == "v1" else 0.6)
            rid = f"w{w}-{i}"
            pred = label if right else ("b" if label == "a" else "a")
            s.prediction(rid, ts, v, pred)
            truth[rid] = (ts, v, label, pred)
    # first labels, 2 h after each prediction: every other W1 request, all of W2, none of W3
    first = [r for r in truth if (r.startswith("w1-") and int(r[3:]) % 4 < 2)
             or r.startswith("w2-")]
    for rid in first:
        ts, _, label, _ = truth[rid]
        s.feedback(rid, ts + timedelta(hours=2), label)
    # a conversion KPI per W1 request, in the window (KPIs are read by their own time):
    # v2's conversion is lower
    for rid, (ts, v, _, _) in truth.items():
        if rid.startswith("w1-"):
            conv = float(rng.random() < (0.30 if v == "v1" else 0.10))
            s.kpi(rid, ts + timedelta(seconds=1), "conversion", conv)
    s.flush()

    report, findings = J.run_performance(engine, model=model, start=W1[0], end=W1[1],
                                         namespace=namespace, baseline_version="v1")
    assert report.label_coverage == pytest.approx(0.5)
    assert report.n_labelled == 200
    [reg] = [f for f in findings if f.kind == "version_regression"]
    assert reg.subject == "v2" and reg.evidence["label_coverage"] == pytest.approx(0.5)
    kpis = {k.version: k for k in report.kpis}
    assert set(kpis) == {"v1", "v2"} and kpis["v1"].n == 200
    [kc] = [f for f in findings if f.kind == "kpi_change"]
    assert kc.subject == "conversion:v2" and kc.evidence["kpi_change"]["baseline"] == "v1"
    assert report.kpi_accuracy_correlation["conversion"]["n"] == 1  # one hour: no rho
    assert report.kpi_accuracy_correlation["conversion"]["rho"] is None
    stored = read_findings(engine, kind="version_regression", service=service)[0]
    assert [d["id"] for d in stored] == [reg.id]

    # simulated time: one day later the rest of W1's labels arrive, plus a few of W3's
    now = T0 + timedelta(days=1)
    late = [r for r in truth if r.startswith("w1-") and r not in first]
    late += [f"w3-{i}" for i in range(10)]
    for j, rid in enumerate(late):
        s.feedback(rid, now + timedelta(seconds=j), truth[rid][2])
    s.flush()

    assert M.windows_with_late_labels(engine, model=model, since=now,
                                      namespace=namespace) == [W1, W3]
    # since the start every labelled window is listed; after the last label none is
    assert M.windows_with_late_labels(engine, model=model, since=T0,
                                      namespace=namespace) == [W1, W2, W3]
    assert M.windows_with_late_labels(engine, model=model, since=now + timedelta(hours=1),
                                      namespace=namespace) == []
    assert M.windows_with_late_labels(engine, model="another", since=now,
                                      namespace=namespace) == []

    report2, findings2 = J.run_performance(engine, model=model, start=W1[0], end=W1[1],
                                           namespace=namespace, baseline_version="v1")
    assert report2.label_coverage == pytest.approx(1.0) and report2.n_labelled == 400
    for v in report2.versions:  # metrics now over every prediction of the window
        rows = [t for r, t in truth.items() if r.startswith("w1-") and t[1] == v.version]
        assert v.n_labelled == 200
        assert v.metrics.accuracy == pytest.approx(np.mean([t[2] == t[3] for t in rows]))
    [reg2] = [f for f in findings2 if f.kind == "version_regression"]
    assert reg2.id == reg.id  # the same finding, updated
    stored2 = read_findings(engine, kind="version_regression", service=service)[0]
    assert len(stored2) == 1 and stored2[0]["id"] == reg.id
    assert stored2[0]["evidence"]["label_coverage"] == pytest.approx(1.0)
    assert stored2[0]["evidence"]["comparison"]["n_candidate"] == 200
    kpi_stored = read_findings(engine, kind="kpi_change", service=service)[0]
    assert [d["subject"] for d in kpi_stored] == ["conversion:v2"]

    # the CLI shows the KPI per version and its correlation with accuracy
    res = CliRunner().invoke(main, [
        "performance", "--model", model, "--namespace", namespace, "--url", engine.url,
        "--from", _iso(W1[0]), "--to", _iso(W1[1]), "--baseline-version", "v1", "--no-write",
    ])
    assert res.exit_code == 0, res.output
    assert "kpi_change" in res.output and "conversion vs accuracy" in res.output
