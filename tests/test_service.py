"""The HTTP API against the real engine with seeded spans, ML events and findings: answers,
auth on/off, cursor pagination, and every 4xx (never a 500 for a client's mistake)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from logsight import names
from logsight.engine import Engine, connect
from logsight.findings import Finding, write_findings
from logsight.service import ServiceSettings, create_app
from logsight.service.models import decode_cursor, encode_cursor

pytestmark = pytest.mark.engine

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEYS = ("key-one-0123456789", "key-two-abcdefghij")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _ns() -> str:
    return "t" + uuid.uuid4().hex[:12]


def seed_spans(engine: Engine, namespace: str, service: str, *, start: datetime,
               traces: int = 20) -> None:
    """``traces`` requests ``GET /predict`` (100 ms): ``feature.fetch`` 5..25 ms, then
    ``db.query`` 25..95 ms, so db.query holds 70% of the critical path, feature.fetch 20%."""
    index = names.stream(names.TRACES, namespace)
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in range(traces):
        t0 = start + timedelta(seconds=30 * i)
        base_ns = int(t0.timestamp() * 1e9)
        trace_id = uuid.uuid4().hex
        root = uuid.uuid4().hex[:16]
        for span_id, parent, name, kind, a, b in (
            (root, None, "GET /predict", "server", 0, 100),
            (uuid.uuid4().hex[:16], root, "feature.fetch", "client", 5, 25),
            (uuid.uuid4().hex[:16], root, "db.query", "client", 25, 95),
        ):
            doc: dict[str, Any] = {
                "@timestamp": _iso(t0 + timedelta(milliseconds=a)), "trace.id": trace_id,
                "span.id": span_id, "service.name": service, "span.name": name,
                "span.kind": kind, "span.start_unix_nano": base_ns + a * 1_000_000,
                "span.end_unix_nano": base_ns + b * 1_000_000, "span.status": "ok",
            }
            if parent:
                doc["parent.id"] = parent
            actions.append(({"create": {"_index": index, "_id": span_id}}, doc))
    result = engine.bulk(actions, refresh=True)
    assert not result.errors, result.errors[:1]


def seed_predictions(engine: Engine, namespace: str, service: str, model: str, *,
                     reference: tuple[datetime, datetime], current: tuple[datetime, datetime],
                     n: int = 300, seed: int = 0) -> None:
    """Predictions of ``model``; feature x1 shifts by +3 sd in the current window, x0 not."""
    rng = np.random.default_rng(seed)
    index = names.stream(names.MLEVENTS, namespace)
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for w, (start, end) in enumerate((reference, current)):
        step = (end - start) / n
        for i in range(n):
            eid = uuid.uuid4().hex
            doc = {
                "@timestamp": _iso(start + step * i), "event.id": eid, "service.name": service,
                "ml.event_type": "prediction", "ml.model.name": model,
                "ml.model.version": "v1", "ml.request_id": eid, "ml.prediction": "a",
                "ml.score": float(rng.uniform(0.5, 1.0)),
                "ml.features.x0": float(rng.normal()),
                "ml.features.x1": float(rng.normal() + (3.0 if w else 0.0)),
            }
            actions.append(({"create": {"_index": index, "_id": eid}}, doc))
    result = engine.bulk(actions, refresh=True)
    assert not result.errors, result.errors[:1]


def seeded_findings(service: str, n: int = 7) -> list[Finding]:
    kinds = ("log_anomaly", "trace_bottleneck", "feature_drift")
    sev = ("low", "medium", "high", "critical")
    return [
        Finding(kind=kinds[i % 3], title=f"finding {i}", summary=f"seeded {i}",
                severity=sev[i % 4], score=float(i), service=service, subject=f"s{i}",
                window_start=NOW - timedelta(hours=i + 1), window_end=NOW - timedelta(hours=i))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, Any]:
    ns = _ns()
    svc = f"svc-{ns}"
    model = f"model-{ns}"
    seed_spans(engine, ns, svc, start=NOW - timedelta(minutes=30))
    seed_predictions(engine, ns, svc, model,
                     reference=(NOW - timedelta(hours=4), NOW - timedelta(hours=2)),
                     current=(NOW - timedelta(hours=2), NOW))
    findings = seeded_findings(svc)
    write_findings(engine, findings)
    return {"ns": ns, "service": svc, "model": model, "findings": findings}


def make_client(engine: Engine, **settings: Any) -> TestClient:
    cfg = ServiceSettings(**{"auth": False, **settings})
    app = create_app(lambda: connect(engine.url), cfg, clock=lambda: NOW)
    return TestClient(app)


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[TestClient]:
    with make_client(engine) as c:
        yield c


@pytest.fixture(scope="module")
def authed(engine: Engine) -> Iterator[TestClient]:
    with make_client(engine, auth=True, api_keys=KEYS) as c:
        yield c


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] and body["message"]
    return body


# -- health ----------------------------------------------------------------------------------
def test_health_reports_engine_and_versions(client: TestClient, engine: Engine) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["engine"]["reachable"] is True
    assert body["engine"]["version"] == engine.version
    assert body["engine"]["flavor"] == engine.flavor
    assert body["version"]
    assert body["analyses"]["bottlenecks"] is True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cluster_down_is_503_with_retry_after() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    app = create_app(lambda: connect(url, timeout=1.0),
                     ServiceSettings(auth=False, retry_after=7), clock=lambda: NOW)
    with TestClient(app) as c:
        r = c.get("/v1/findings")
        body = _error(r, 503)
        assert r.headers["Retry-After"] == "7"
        assert body["error"] == "engine_unavailable"
        h = c.get("/health")
        assert h.status_code == 503
        assert h.json()["engine"]["reachable"] is False
        assert h.json()["status"] == "degraded"


# -- bottlenecks -----------------------------------------------------------------------------
def test_bottlenecks_rank_the_seeded_critical_path(client: TestClient, world: dict[str, Any],
                                                   engine: Engine) -> None:
    r = client.get("/v1/bottlenecks", params={
        "service": world["service"], "from": "1h", "namespace": world["ns"], "top": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = body["bottlenecks"]
    assert [row["operation"] for row in rows] == ["db.query", "feature.fetch"]
    assert rows[0]["critical_path_share"] == pytest.approx(0.7, abs=1e-6)
    assert rows[1]["critical_path_share"] == pytest.approx(0.2, abs=1e-6)
    assert body["window"]["end"] == _iso(NOW)
    assert {f["subject"] for f in body["findings"]} == {"db.query", "feature.fetch"}
    # GET is read only: nothing stored (the seeded findings have other subjects)
    stored = engine.count(names.FINDINGS_INDEX, {"bool": {"filter": [
        {"term": {"service": world["service"]}},
        {"terms": {"subject": ["db.query", "feature.fetch"]}}]}})
    assert stored == 0


def test_bottlenecks_operation_filter(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/v1/bottlenecks", params={
        "service": world["service"], "operation": "GET /predict", "from": "1h",
        "namespace": world["ns"]})
    assert r.status_code == 200, r.text
    assert r.json()["bottlenecks"][0]["operation"] == "db.query"
    r = client.get("/v1/bottlenecks", params={
        "service": world["service"], "operation": "no such op", "from": "1h",
        "namespace": world["ns"]})
    assert r.status_code == 200
    assert r.json()["bottlenecks"] == []


def test_post_analysis_writes_findings_once(client: TestClient, world: dict[str, Any],
                                            engine: Engine) -> None:
    svc = world["service"]
    # a service of its own: the read-only GET test above must keep seeing none stored
    ns = _ns()
    own = f"own-{ns}"
    seed_spans(engine, ns, own, start=NOW - timedelta(minutes=30))
    body = {"from": _iso(NOW - timedelta(hours=1)), "to": _iso(NOW), "service": own}
    first = client.post("/v1/analyses/bottlenecks", json=body)
    assert first.status_code == 200, first.text
    again = client.post("/v1/analyses/bottlenecks", json=body)
    assert first.json()["written"] is True
    ids = sorted(f["id"] for f in first.json()["findings"])
    assert ids and ids == sorted(f["id"] for f in again.json()["findings"])
    query = {"bool": {"filter": [{"term": {"service": own}},
                                 {"term": {"kind": "trace_bottleneck"}}]}}
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, query) == len(ids)
    listed = client.get("/v1/findings", params={"service": own, "kind": "trace_bottleneck"})
    assert sorted(f["id"] for f in listed.json()["findings"]) == ids
    assert svc != own


def test_post_without_write_stores_nothing(client: TestClient, engine: Engine) -> None:
    ns = _ns()
    own = f"nowrite-{ns}"
    seed_spans(engine, ns, own, start=NOW - timedelta(minutes=30))
    r = client.post("/v1/analyses/bottlenecks",
                    json={"from": "1h", "service": own, "write": False})
    assert r.status_code == 200, r.text
    assert r.json()["written"] is False and r.json()["findings"]
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, {"term": {"service": own}}) == 0


# -- the other analyses ----------------------------------------------------------------------
def test_drift_finds_the_shifted_feature(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/v1/drift", params={
        "model": world["model"], "namespace": world["ns"],
        "reference_from": _iso(NOW - timedelta(hours=4)),
        "reference_to": _iso(NOW - timedelta(hours=2)), "from": "2h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["baseline"] == {"start": _iso(NOW - timedelta(hours=4)),
                                "end": _iso(NOW - timedelta(hours=2))}
    drifted = {f["feature"] for f in body["findings"] if f["kind"] == "feature_drift"}
    assert "x1" in drifted
    assert "x0" not in drifted
    assert body["written"] is False


def test_performance_and_anomalies_answer(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/v1/performance", params={"model": world["model"], "from": "2h",
                                              "namespace": world["ns"]})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "performance"
    r = client.get("/v1/anomalies", params={"from": "1h", "namespace": world["ns"]})
    assert r.status_code == 200, r.text
    assert r.json()["baseline"]["end"] == r.json()["window"]["start"]


def test_analyses_listing(client: TestClient) -> None:
    body = client.get("/v1/analyses").json()
    assert set(body) == {"bottlenecks", "trace_completion", "trace_regressions",
                         "log_anomalies", "drift", "performance", "dependencies", "canary",
                         "cost", "resource_anomalies"}
    assert body["drift"]["needs_model"] is True


# -- findings and pagination -----------------------------------------------------------------
def test_findings_pages_cover_everything_once(client: TestClient, world: dict[str, Any]) -> None:
    want = [f.id for f in world["findings"]]  # window_end newest first = seeding order
    got: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"service": world["service"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/findings", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        got += [f["id"] for f in body["findings"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert got == want
    assert pages == 3


def test_findings_filters(client: TestClient, world: dict[str, Any]) -> None:
    svc = world["service"]
    seeded = world["findings"]
    r = client.get("/v1/findings", params={"service": svc, "kind": "feature_drift"})
    assert {f["id"] for f in r.json()["findings"]} == {
        f.id for f in seeded if f.kind == "feature_drift"}
    r = client.get("/v1/findings", params=[("service", svc), ("severity", "high"),
                                           ("severity", "critical")])
    assert {f["id"] for f in r.json()["findings"]} == {
        f.id for f in seeded if f.severity in ("high", "critical")}
    r = client.get("/v1/findings", params={"service": svc, "from": "3h", "to": "now"})
    # @timestamp is the window end: ends at NOW-0h..NOW-3h fall in [NOW-3h, NOW]
    assert {f["id"] for f in r.json()["findings"]} == {f.id for f in seeded[:4]}


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor([1714560000000, "abc"])) == [1714560000000, "abc"]


# -- auth ------------------------------------------------------------------------------------
def test_auth_rejects_missing_and_wrong_keys(authed: TestClient, world: dict[str, Any]) -> None:
    params = {"service": world["service"]}
    body = _error(authed.get("/v1/findings", params=params), 401)
    assert "X-API-Key" in body["message"]
    wrong = "key-one-0123456788"
    r = authed.get("/v1/findings", params=params, headers={"X-API-Key": wrong})
    _error(r, 401)
    assert wrong not in r.text and KEYS[0] not in r.text
    assert r.headers["WWW-Authenticate"] == "ApiKey"
    _error(authed.get("/v1/findings", headers={"Authorization": f"Bearer {KEYS[0]}"}), 401)
    _error(authed.post("/v1/analyses/bottlenecks", json={}), 401)


def test_auth_accepts_both_headers_and_every_key(authed: TestClient,
                                                 world: dict[str, Any]) -> None:
    params = {"service": world["service"], "limit": 1}
    for headers in ({"X-API-Key": KEYS[0]}, {"X-API-Key": KEYS[1]},
                    {"Authorization": f"ApiKey {KEYS[1]}"}):
        r = authed.get("/v1/findings", params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert KEYS[0] not in r.text and KEYS[1] not in r.text


def test_health_is_open_when_auth_is_on(authed: TestClient) -> None:
    assert authed.get("/health").status_code == 200


def test_auth_on_without_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="no key is configured"):
        ServiceSettings(auth=True)
    assert KEYS[0] not in repr(ServiceSettings(auth=True, api_keys=KEYS))


def test_openapi_documents_security_and_routes(authed: TestClient) -> None:
    spec = authed.get("/openapi.json").json()
    assert {"ApiKeyHeader", "ApiKeyAuthorization"} <= set(spec["components"]["securitySchemes"])
    for path in ("/health", "/v1/bottlenecks", "/v1/anomalies", "/v1/drift", "/v1/performance",
                 "/v1/findings", "/v1/analyses/{kind}"):
        assert path in spec["paths"]


# -- every 4xx -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("get", "/v1/bottlenecks", {"from": "now", "to": "1h"}, 400, "bad_time"),
        ("get", "/v1/bottlenecks", {"from": "30d"}, 400, "bad_time"),
        ("get", "/v1/bottlenecks", {"from": "yesterday-ish"}, 400, "bad_time"),
        ("get", "/v1/bottlenecks", {"to": "0001-01-01"}, 400, "bad_time"),
        ("get", "/v1/bottlenecks", {"service": "no-such-service-anywhere"}, 404,
         "unknown_service"),
        ("get", "/v1/bottlenecks", {"namespace": "Bad-NS"}, 400, "bad_namespace"),
        ("get", "/v1/bottlenecks", {"top": 0}, 422, "invalid_request"),
        ("get", "/v1/bottlenecks", {"top": "many"}, 422, "invalid_request"),
        ("get", "/v1/anomalies", {"service": "no-such-service-anywhere"}, 404,
         "unknown_service"),
        ("get", "/v1/anomalies", {"baseline_from": "3h", "baseline_to": "2h"}, 400,
         "bad_request"),
        ("get", "/v1/drift", {}, 422, "invalid_request"),
        ("get", "/v1/drift", {"model": "no-such-model"}, 404, "unknown_model"),
        ("get", "/v1/drift", {"model": "m", "reference_from": "1h", "reference_to": "2h"}, 400,
         "bad_time"),
        ("get", "/v1/performance", {"model": "no-such-model"}, 404, "unknown_model"),
        ("get", "/v1/findings", {"cursor": "not-a-cursor"}, 400, "bad_cursor"),
        ("get", "/v1/findings", {"cursor": encode_cursor(["x", 1])}, 400, "bad_cursor"),
        ("get", "/v1/findings", {"from": "now", "to": "2h"}, 400, "bad_time"),
        ("get", "/v1/findings", {"kind": "nonsense"}, 422, "invalid_request"),
        ("get", "/v1/findings", {"severity": "urgent"}, 422, "invalid_request"),
        ("get", "/v1/findings", {"limit": 100000}, 422, "invalid_request"),
        ("get", "/v1/findings", {"service": "no-such-service-anywhere"}, 404,
         "unknown_service"),
        ("post", "/v1/analyses/nonsense", None, 422, "invalid_request"),
        ("post", "/v1/analyses/drift", {}, 400, "missing_model"),
        ("post", "/v1/analyses/bottlenecks", {"colour": "red"}, 422, "invalid_request"),
        ("post", "/v1/analyses/bottlenecks", {"from": "1h", "to": "2h"}, 400, "bad_time"),
        ("post", "/v1/analyses/bottlenecks", {"top": -1}, 422, "invalid_request"),
        ("get", "/v1/nowhere", {}, 404, "http_error"),
    ],
)
def test_client_mistakes_are_clear_4xx(client: TestClient, method: str, path: str,
                                       params: dict[str, Any] | None, status: int,
                                       code: str) -> None:
    r = client.get(path, params=params) if method == "get" else client.post(path, json=params)
    body = _error(r, status)
    assert body["error"] == code


def test_malformed_json_body_is_422(client: TestClient) -> None:
    r = client.post("/v1/analyses/bottlenecks", content=b"{not json",
                    headers={"content-type": "application/json"})
    _error(r, 422)


def test_request_timeout_is_504(engine: Engine) -> None:
    with make_client(engine, request_timeout=1e-6) as c:
        body = _error(c.get("/v1/findings"), 504)
        assert body["error"] == "timeout"


# -- user-test regressions: namespaces, unknown parameters, API wording, versions ------------
def seed_logs(engine: Engine, namespace: str, service: str, *, start: datetime,
              minutes: int) -> None:
    """Ten INFO lines a minute from ``start`` for ``minutes`` minutes."""
    index = names.stream(names.LOGS, namespace)
    actions = [
        ({"create": {"_index": index, "_id": f"{service}-{m}-{i}"}},
         {"@timestamp": _iso(start + timedelta(minutes=m, seconds=6 * i)),
          "log": {"level": "INFO"}, "service": {"name": service},
          "message": f"served request {m * 10 + i} in {i + 3} ms"})
        for m in range(minutes) for i in range(10)
    ]
    result = engine.bulk(actions, refresh=True)
    assert not result.errors, result.errors[:1]


def test_findings_namespace_filter_and_configured_default(engine: Engine) -> None:
    ns_a, ns_b = _ns(), _ns()
    svc = f"shared-{ns_a}"
    mine = [Finding(kind="log_anomaly", title="a", summary="a", service=svc, subject=f"a{i}",
                    namespace=ns_a, window_start=NOW - timedelta(hours=1), window_end=NOW)
            for i in range(3)]
    theirs = [Finding(kind="log_anomaly", title="b", summary="b", service=svc, subject="b",
                      namespace=ns_b, window_start=NOW - timedelta(hours=1), window_end=NOW)]
    write_findings(engine, mine + theirs)
    with make_client(engine) as c:
        r = c.get("/v1/findings", params={"service": svc, "namespace": ns_a})
        assert r.status_code == 200, r.text
        assert {f["id"] for f in r.json()["findings"]} == {f.id for f in mine}
        assert {f["namespace"] for f in r.json()["findings"]} == {ns_a}
        both = c.get("/v1/findings", params={"service": svc}).json()["findings"]
        assert {f["id"] for f in both} == {f.id for f in mine + theirs}
        assert _error(c.get("/v1/findings", params={"namespace": "Bad-NS"}),
                      400)["error"] == "bad_namespace"
    with make_client(engine, namespace=ns_b) as c:  # the service's namespace is the default
        r = c.get("/v1/findings", params={"service": svc})
        assert [f["id"] for f in r.json()["findings"]] == [theirs[0].id]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/bottlenecks", {"bogus": "1"}),
        ("/v1/anomalies", {"from": "1h", "servce": "x"}),
        ("/v1/drift", {"model": "m", "window": "1h"}),
        ("/v1/performance", {"model": "m", "versions": "v1"}),
        ("/v1/findings", {"kinds": "log_anomaly", "zz": "1"}),
        ("/v1/analyses", {"all": "yes"}),
    ],
)
def test_unknown_query_parameters_are_422_naming_them(client: TestClient, path: str,
                                                      params: dict[str, str]) -> None:
    body = _error(client.get(path, params=params), 422)
    assert body["error"] == "invalid_request"
    declared = {"from", "to", "service", "model", "kind", "namespace"}
    unknown = sorted(set(params) - declared)
    assert body["details"]["unknown"] == unknown
    for name in unknown:
        assert name in body["message"]


def test_unknown_parameters_after_auth_and_on_post(authed: TestClient,
                                                   client: TestClient) -> None:
    assert authed.get("/v1/bottlenecks", params={"bogus": "1"}).status_code == 401
    r = authed.get("/v1/bottlenecks", params={"bogus": "1"}, headers={"X-API-Key": KEYS[0]})
    assert _error(r, 422)["details"]["unknown"] == ["bogus"]
    r = client.post("/v1/analyses/bottlenecks?dry_run=1", json={"write": False})
    assert _error(r, 422)["details"] == {"unknown": ["dry_run"], "accepted": []}


def test_openapi_says_unknown_parameters_are_refused(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "unknown query parameter" in spec["info"]["description"].lower()
    assert "unknown query parameter" in (
        spec["paths"]["/v1/bottlenecks"]["get"]["responses"]["422"]["description"])
    props = spec["components"]["schemas"]["AnalysisRequest"]["properties"]
    assert "namespace" in props


def test_post_analysis_scoped_by_body_namespace_or_configured(engine: Engine) -> None:
    ns_a, ns_b = _ns(), _ns()
    svc_a, svc_b = f"ns-a-{ns_a}", f"ns-b-{ns_b}"
    seed_spans(engine, ns_a, svc_a, start=NOW - timedelta(minutes=30))
    seed_spans(engine, ns_b, svc_b, start=NOW - timedelta(minutes=30))
    with make_client(engine) as c:
        r = c.post("/v1/analyses/bottlenecks", json={"namespace": ns_a, "from": "1h"})
        assert r.status_code == 200, r.text
        assert {f["service"] for f in r.json()["findings"]} == {svc_a}
        assert {f["namespace"] for f in r.json()["findings"]} == {ns_a}
        engine.refresh(names.FINDINGS_INDEX)
        assert engine.count(names.FINDINGS_INDEX, {"term": {"service": svc_b}}) == 0
        r = c.post("/v1/analyses/bottlenecks", json={"namespace": "Bad-NS"})
        assert _error(r, 400)["error"] == "bad_namespace"
        # the service must have sent spans in the namespace asked for
        r = c.post("/v1/analyses/bottlenecks", json={"namespace": ns_a, "service": svc_b})
        assert _error(r, 404)["error"] == "unknown_service"
    with make_client(engine, namespace=ns_b) as c:  # no namespace in the body: configured one
        r = c.post("/v1/analyses/bottlenecks", json={"from": "1h", "write": False})
        assert r.status_code == 200, r.text
        assert {f["service"] for f in r.json()["findings"]} == {svc_b}
        r = c.post("/v1/analyses/bottlenecks")  # no body at all
        assert r.status_code == 200, r.text
        assert {f["namespace"] for f in r.json()["findings"]} == {ns_b}


def test_log_anomaly_errors_name_api_parameters_and_windows(engine: Engine) -> None:
    ns = _ns()
    svc = f"logs-{ns}"
    seed_logs(engine, ns, svc, start=NOW - timedelta(minutes=30), minutes=30)
    with make_client(engine) as c:
        r = c.get("/v1/anomalies", params={"namespace": ns, "from": "1h"})
        body = _error(r, 400)
    msg = body["message"]
    assert "--" not in msg
    assert "baseline_from" in msg
    assert _iso(NOW - timedelta(hours=2)) in msg and _iso(NOW - timedelta(hours=1)) in msg
    assert ns in msg


def test_job_errors_are_answered_by_kind_in_the_routes_words() -> None:
    """One mapping: a bad parameter is 400 naming the route's parameter, no data 400, an
    unknown name 404, no free slot 503 with Retry-After; placeholders take the route's names."""
    from logsight.errors import BadRequest, Busy, NoData, NotFound
    from logsight.service.errors import api_error

    names_ = {"baseline.start": "reference_from", "window.start": "from"}
    bad = api_error(BadRequest("baseline.start", "{baseline.start} is after {window.start}"),
                    names_)
    assert (bad.status, bad.code, bad.message) == (400, "bad_request",
                                                   "reference_from is after from")
    assert bad.details == {"parameter": "reference_from"}
    empty = api_error(NoData("nothing in {window.start}..", parameters=("window",)), names_)
    assert (empty.status, empty.code, empty.message) == (400, "no_data", "nothing in from..")
    assert api_error(NotFound("model", "m", "unknown model 'm'")).status == 404
    busy = api_error(Busy("all slots busy", retry_after=7))
    assert (busy.status, busy.headers) == (503, {"Retry-After": "7"})
    # a dict repr in a message is no placeholder
    assert api_error(BadRequest(None, "bad {'a': 1}")).message == "bad {'a': 1}"


def test_unknown_version_is_404_listing_versions(client: TestClient,
                                                 world: dict[str, Any]) -> None:
    params = {"model": world["model"], "namespace": world["ns"], "from": "2h"}
    body = _error(client.get("/v1/performance", params={**params, "version": "9.9"}), 404)
    assert body["error"] == "unknown_version"
    assert body["details"]["versions"] == ["v1"]
    assert "'9.9'" in body["message"] and "['v1']" in body["message"]
    r = client.get("/v1/performance", params={**params, "version": "v1"})
    assert r.status_code == 200, r.text
    r = client.post("/v1/analyses/performance", json={
        "model": world["model"], "version": "9.9", "namespace": world["ns"], "write": False})
    assert _error(r, 404)["error"] == "unknown_version"


def test_unknown_model_lists_models_seen(client: TestClient, world: dict[str, Any]) -> None:
    body = _error(client.get("/v1/drift", params={"model": "nosuch",
                                                  "namespace": world["ns"]}), 404)
    assert body["error"] == "unknown_model"
    assert body["details"]["models"] == [world["model"]]
