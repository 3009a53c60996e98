"""The accuracy estimate (CBPE) through the API against the real engine: ML events from the
real adapter, a labelled reference window and a window whose labels have not landed; the API
answers with the estimate per version and an ``estimated_performance_drop`` finding for the
shifted version, stored with ``write``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.test_performance_estimate import calibrated_events

from logsight import names
from logsight.engine import Engine, connect
from logsight.findings import read_findings
from logsight.service import ServiceSettings, create_app

pytestmark = pytest.mark.engine

NOW = datetime(2026, 12, 3, tzinfo=UTC)
T0 = NOW - timedelta(days=2)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_api_estimates_accuracy_before_labels(engine: Engine) -> None:
    ns = f"est{uuid.uuid4().hex[:8]}"
    model, service = f"m-{ns}", f"svc-{ns}"
    index = names.stream(names.MLEVENTS, ns)
    docs = json.loads(json.dumps(calibrated_events(seed=11, t0=T0, model=model,
                                                   service=service), default=str))
    result = engine.bulk([({"create": {"_index": index, "_id": d["event.id"]}}, d)
                          for d in docs], refresh=True)
    assert not result.errors, result.errors[:1]
    app = create_app(lambda: connect(engine.url), ServiceSettings(auth=False), clock=lambda: NOW)
    window = {"from": _iso(T0 + timedelta(days=1)), "to": _iso(NOW),
              "baseline_from": _iso(T0), "baseline_to": _iso(T0 + timedelta(days=1))}
    with TestClient(app) as client:
        r = client.get("/v1/performance", params={"model": model, "namespace": ns,
                                                  "estimate": "true", **window})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        est = body["results"][0]["estimate"]
        by = {v["version"]: v for v in est["versions"]}
        assert set(by) == {"v1", "v2"} and est["reference_n"] == 800
        assert not by["v1"]["drop"] and by["v2"]["drop"]
        assert by["v2"]["realised"] is None  # no labels yet
        assert [f["kind"] for f in body["findings"]] == ["estimated_performance_drop"]
        # without estimate: no estimate and no such finding
        plain = client.get("/v1/performance", params={"model": model, "namespace": ns,
                                                      **window}).json()
        assert "estimate" not in plain["results"][0] and not plain["findings"]
        bad = client.get("/v1/performance", params={"model": model, "namespace": ns,
                                                    "estimate": "maybe", **window})
        assert bad.status_code in (400, 422), bad.text
        w = client.post("/v1/analyses/performance", json={
            "model": model, "namespace": ns, "estimate": True, "write": True, **window})
        assert w.status_code == 200, w.text
    engine.refresh(names.FINDINGS_INDEX)
    stored = read_findings(engine, kind="estimated_performance_drop", service=service)[0]
    assert [d["model_version"] for d in stored] == ["v2"]
