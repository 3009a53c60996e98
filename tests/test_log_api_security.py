"""The API's ``model`` field (an ML model name) must never reach the log analysis's saved-model
loader: a saved log model is a joblib pickle, and unpickling a caller-chosen server file runs
code. Against the real engine, through the real app."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.test_logs_integration import T0, _docs, _index

from logsight.engine import connect
from logsight.jobs import JobParams as Params
from logsight.jobs import run_job
from logsight.service import ServiceSettings, create_app

pytestmark = pytest.mark.engine


class _Trap:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _trap(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.joblib"
    path.write_bytes(pickle.dumps(_Trap(marker)))
    return path, marker


def test_model_field_never_loads_a_pickle_via_service(
    engine: Any, namespace: str, tmp_path: Path
) -> None:
    svc_a, svc_b = f"shop-{namespace}", f"search-{namespace}"
    _index(engine, namespace, _docs(svc_a, svc_b))
    path, marker = _trap(tmp_path)
    end = T0 + pd.Timedelta(minutes=14)
    params = Params(start=T0 + pd.Timedelta(minutes=10), end=end,
                    baseline_start=T0, baseline_end=T0 + pd.Timedelta(minutes=10),
                    model=str(path), namespace=namespace, write=False)
    findings = run_job(engine, "log_anomalies", params).findings
    assert not marker.exists()
    # the analysis ran normally (baseline learned, burst flagged) instead of scoring a model
    anomalies = [f for f in findings if f.kind == "log_anomaly"]
    assert [(f.service, pd.Timestamp(f.window_start)) for f in anomalies] == [
        (svc_a, T0 + pd.Timedelta(minutes=12))
    ]


@pytest.mark.parametrize("which", ["etc_passwd", "pickle"])
def test_post_log_anomalies_with_model_path(
    engine: Any, namespace: str, tmp_path: Path, which: str
) -> None:
    svc_a, svc_b = f"shop-{namespace}", f"search-{namespace}"
    _index(engine, namespace, _docs(svc_a, svc_b))
    path, marker = _trap(tmp_path)
    model = "/etc/passwd" if which == "etc_passwd" else str(path)
    app = create_app(lambda: connect(engine.url), ServiceSettings(auth=False),
                     clock=lambda: (T0 + pd.Timedelta(minutes=14)).to_pydatetime())
    with TestClient(app) as client:
        r = client.post("/v1/analyses/log_anomalies", json={
            "model": model, "namespace": namespace, "write": False,
            "from": T0.isoformat(), "to": (T0 + pd.Timedelta(minutes=14)).isoformat(),
        })
    assert not marker.exists()
    # either refused as a client error (no such ML model) or ignored: never a server error
    # from unpickling
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        kinds = {f["kind"] for f in r.json()["findings"]}
        assert kinds <= {"log_anomaly", "template_drift"}
