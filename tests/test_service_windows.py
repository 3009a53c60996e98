"""How the API resolves the windows of one request: every time against one reading of the
clock, baselines that end where the window starts, minute-aligned POST runs (re-running
overwrites), overlapping reference windows refused, unknown namespaces a 404, and the
service's own logs kept out of the analysed namespace."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from tests.test_service import _iso, _ns, seed_logs, seed_predictions, seed_spans

from logsight import names
from logsight.cli import main
from logsight.cli.serve_cmd import worker_env
from logsight.engine import Engine, connect
from logsight.findings import Finding
from logsight.jobs import JobParams as Params
from logsight.jobs import run_job
from logsight.service import ServiceSettings, create_app

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class TickingClock:
    """A clock that moves 1 ms on every reading: a request that reads it twice would resolve
    the same age to two instants."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


Recorded = list[tuple[str, Params]]


def recording(calls: Recorded) -> Callable[[Engine, str, Params], Any]:
    def runner(engine: Engine, kind: str, params: Params) -> Any:
        calls.append((kind, params))
        return run_job(engine, kind, params)
    return runner


def client_for(engine: Engine, clock: Callable[[], datetime], calls: Recorded | None = None,
               **settings: Any) -> TestClient:
    cfg = ServiceSettings(**{"auth": False, **settings})
    kw: dict[str, Any] = {"runner": recording(calls)} if calls is not None else {}
    return TestClient(create_app(lambda: connect(engine.url), cfg, clock=clock, **kw))


@pytest.fixture(scope="module")
def logs_world(engine: Engine) -> dict[str, str]:
    ns = _ns()
    svc = f"api-{ns}"
    seed_logs(engine, ns, svc, start=NOW - timedelta(hours=3), minutes=180)
    return {"ns": ns, "service": svc}


@pytest.mark.engine
@pytest.mark.parametrize("variant", ["ages", "absolute", "ages_with_baseline_to", "post"])
def test_log_anomaly_baseline_from_works_in_every_spelling(
        engine: Engine, logs_world: dict[str, str], variant: str) -> None:
    ns, svc = logs_world["ns"], logs_world["service"]
    clock = TickingClock(NOW + timedelta(seconds=20))
    calls: Recorded = []
    params: dict[str, Any] = {"service": svc, "namespace": ns}
    if variant == "ages":
        params.update({"from": "30m", "baseline_from": "2h"})
    elif variant == "absolute":
        params.update({"from": _iso(NOW - timedelta(minutes=30)),
                       "to": _iso(NOW), "baseline_from": _iso(NOW - timedelta(hours=2))})
    elif variant == "ages_with_baseline_to":
        params.update({"from": "30m", "baseline_from": "2h", "baseline_to": "30m"})
    with client_for(engine, clock, calls) as c:
        if variant == "post":
            r = c.post("/v1/analyses/log_anomalies", json={
                "from": "30m", "baseline_from": "2h", "service": svc, "namespace": ns,
                "write": False})
        else:
            r = c.get("/v1/anomalies", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["baseline"]["end"] == body["window"]["start"]
    [(kind, p)] = calls
    assert kind == "log_anomalies" and p.baseline_end == p.start
    assert p.baseline_start is not None
    assert p.start - p.baseline_start == pytest.approx(timedelta(minutes=90),
                                                       abs=timedelta(minutes=1))


@pytest.mark.engine
def test_log_anomaly_baseline_ending_elsewhere_is_400_saying_so(
        engine: Engine, logs_world: dict[str, str]) -> None:
    with client_for(engine, TickingClock(NOW)) as c:
        r = c.get("/v1/anomalies", params={"namespace": logs_world["ns"], "from": "30m",
                                           "baseline_from": "2h", "baseline_to": "1h"})
    assert r.status_code == 400
    assert r.json()["error"] == "bad_request"
    assert "baseline_to" in r.json()["message"] and "defaults to from" in r.json()["message"]


@pytest.mark.engine
def test_rerunning_an_age_window_within_the_minute_overwrites(engine: Engine) -> None:
    ns = _ns()
    svc = f"rerun-{ns}"
    seed_spans(engine, ns, svc, start=NOW - timedelta(minutes=30))
    clock = TickingClock(NOW + timedelta(seconds=10))
    with client_for(engine, clock) as c:
        first = c.post("/v1/analyses/bottlenecks", json={"from": "1h", "namespace": ns})
        clock.now += timedelta(seconds=6)
        again = c.post("/v1/analyses/bottlenecks", json={"from": "1h", "namespace": ns})
    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    assert first.json()["window"] == {"start": _iso(NOW - timedelta(hours=1)),
                                      "end": _iso(NOW), "aligned": "1m"}
    ids = sorted(f["id"] for f in first.json()["findings"])
    assert ids and ids == sorted(f["id"] for f in again.json()["findings"])
    engine.refresh(names.FINDINGS_INDEX)
    query = {"bool": {"filter": [{"term": {"service": svc}},
                                 {"term": {"kind": "trace_bottleneck"}}]}}
    assert engine.count(names.FINDINGS_INDEX, query) == len(ids)
    # absolute times are taken as given
    with client_for(engine, clock) as c:
        r = c.post("/v1/analyses/bottlenecks", json={
            "from": "2024-05-01T11:00:30Z", "to": "2024-05-01T12:00:30Z", "namespace": ns,
            "write": False})
    assert r.json()["window"] == {"start": "2024-05-01T11:00:30Z", "end": "2024-05-01T12:00:30Z"}


@pytest.fixture(scope="module")
def model_world(engine: Engine) -> dict[str, str]:
    ns = _ns()
    model = f"m-{ns}"
    seed_predictions(engine, ns, f"svc-{ns}", model,
                     reference=(NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
                     current=(NOW - timedelta(hours=1), NOW), n=100)
    return {"ns": ns, "model": model}


@pytest.mark.engine
def test_drift_reference_defaults_to_end_where_the_window_starts(
        engine: Engine, model_world: dict[str, str]) -> None:
    with client_for(engine, lambda: NOW) as c:
        r = c.get("/v1/drift", params={"model": model_world["model"], "from": "1h",
                                       "reference_from": "2h", "namespace": model_world["ns"]})
        assert r.status_code == 200, r.text
        assert r.json()["baseline"] == {"start": _iso(NOW - timedelta(hours=2)),
                                        "end": _iso(NOW - timedelta(hours=1))}
        r = c.get("/v1/drift", params={"model": model_world["model"], "from": "1h",
                                       "reference_from": "2h", "reference_to": "now",
                                       "namespace": model_world["ns"]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "overlapping_windows"
    assert "reference_from/reference_to" in body["message"] and "from/to" in body["message"]


@pytest.mark.engine
def test_unknown_namespace_is_404_on_analyses_but_findings_stay_200(
        engine: Engine, model_world: dict[str, str]) -> None:
    missing = "nosuchns" + uuid.uuid4().hex[:8]
    with client_for(engine, lambda: NOW) as c:
        for method, path, params in (
            ("get", "/v1/bottlenecks", {"namespace": missing}),
            ("get", "/v1/anomalies", {"namespace": missing}),
            ("get", "/v1/drift", {"namespace": missing, "model": model_world["model"]}),
            ("post", "/v1/analyses/bottlenecks", {"namespace": missing}),
        ):
            r = (c.get(path, params=params) if method == "get"
                 else c.post(path, json=params))
            assert r.status_code == 404, (path, r.text)
            body = r.json()
            assert body["error"] == "unknown_namespace" and missing in body["message"]
            assert isinstance(body["details"]["namespaces"], list)
        r = c.get("/v1/findings", params={"namespace": missing})
        assert r.status_code == 200 and r.json()["findings"] == []
        # a namespace with data, though none of this stream: known, an honest empty answer
        r = c.get("/v1/bottlenecks", params={"namespace": model_world["ns"]})
        assert r.status_code == 200 and r.json()["bottlenecks"] == []


def test_self_logs_go_to_their_own_namespace() -> None:
    cfg = ServiceSettings(auth=False, namespace="ut2")
    assert cfg.self_log_namespace == "logsight" != cfg.namespace
    env = worker_env(cfg.with_(self_log_namespace="ops"), None, self_log=True)
    assert env["LOGSIGHT_SELF_LOG_NAMESPACE"] == "ops"
    assert ServiceSettings.from_env(env).self_log_namespace == "ops"
    with pytest.raises(ValueError, match="invalid namespace"):
        ServiceSettings(auth=False, self_log_namespace="Bad-NS")
    result = CliRunner().invoke(main, ["serve", "--no-auth", "--self-log-namespace", "Bad-NS"])
    assert result.exit_code == 2 and "invalid namespace" in result.output


def test_findings_have_stable_ids_per_window() -> None:
    w = (NOW - timedelta(hours=1), NOW)
    a = Finding(kind="trace_bottleneck", title="t", summary="s", service="svc", subject="op",
                window_start=w[0], window_end=w[1], namespace="ns")
    b = Finding(kind="trace_bottleneck", title="t2", summary="s2", service="svc", subject="op",
                window_start=w[0], window_end=w[1], namespace="ns")
    assert a.id == b.id
