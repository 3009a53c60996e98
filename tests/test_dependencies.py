"""The service dependency map: known edges from toy traces (client/server pairs, a server span
right under its caller, peer.service to an uninstrumented database), new and vanished edges as
findings; against the real engine through the job, the CLI and the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from logsight import names
from logsight.analysis.traces.dependencies import compare_edges, dependency_edges, span_calls
from logsight.cli import main
from logsight.jobs import dependencies as J
from logsight.sources.traces import spans_frame

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _span(trace: int, sid: int, parent: int | None, service: str, name: str, kind: str,
          start_ms: float, dur_ms: float, *, error: bool = False, peer: str | None = None,
          base: datetime = T0) -> dict[str, Any]:
    start = int((base.timestamp() * 1000 + start_ms) * 1e6)
    doc: dict[str, Any] = {
        "trace.id": f"{trace:032x}", "span.id": f"{sid:016x}", "service.name": service,
        "span.name": name, "span.kind": kind, "span.start_unix_nano": start,
        "span.end_unix_nano": start + int(dur_ms * 1e6),
        "span.status": "error" if error else "ok", "@timestamp": base.isoformat()}
    if parent is not None:
        doc["parent.id"] = f"{parent:016x}"
    if peer:
        doc["attributes.peer.service"] = peer
    return doc


def traces(n: int, *, callee: str = "model", base: datetime = T0,
           first: int = 1) -> list[dict[str, Any]]:
    """``n`` traces: gateway -> (client span) -> callee server span -> postgres (peer only);
    every 10th call to the callee fails; the callee's latency is 10 + i % 10 ms."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        t = first + i
        at = i * 1000.0  # one trace a second
        lat = 10.0 + i % 10
        out += [
            _span(t, 1, None, "gateway", "GET /predict", "server", at, lat + 5, base=base),
            _span(t, 2, 1, "gateway", "call " + callee, "client", at + 1, lat + 2, base=base),
            _span(t, 3, 2, callee, "predict", "server", at + 2, lat, error=i % 10 == 0,
                  base=base),
            _span(t, 4, 3, callee, "SELECT", "client", at + 3, 2.0, peer="postgres",
                  base=base),
        ]
    return out


def test_edges_have_known_counts_rates_errors_and_latency() -> None:
    edges = {(e.source, e.target): e for e in dependency_edges(
        span_calls(spans_frame(traces(100))), window_seconds=100.0)}
    assert set(edges) == {("gateway", "model"), ("model", "postgres")}
    g = edges[("gateway", "model")]
    assert g.calls == 100 and g.errors == 10 and g.error_rate == pytest.approx(0.1)
    assert g.rate_per_s == pytest.approx(1.0) and g.via == "span"
    lat = 10.0 + np.arange(100) % 10
    assert g.latency_p95_ms == pytest.approx(float(np.quantile(lat, 0.95)))
    assert g.latency_p50_ms == pytest.approx(float(np.quantile(lat, 0.5)))
    db = edges[("model", "postgres")]
    assert db.via == "peer" and db.calls == 100 and db.errors == 0
    assert db.latency_p95_ms == pytest.approx(2.0)


def test_a_server_span_right_under_its_caller_is_an_edge_once() -> None:
    spans = [_span(1, 1, None, "a", "root", "server", 0, 10),
             _span(1, 2, 1, "b", "handle", "server", 1, 5),  # no client span in between
             _span(1, 3, 1, "a", "local", "internal", 1, 1)]
    (edge,) = dependency_edges(span_calls(spans_frame(spans)))
    assert (edge.source, edge.target, edge.calls) == ("a", "b", 1)
    assert edge.rate_per_s != edge.rate_per_s  # no window: NaN, not a made-up rate


def test_new_and_vanished_edges_need_min_calls() -> None:
    before = dependency_edges(span_calls(spans_frame(traces(20, callee="legacy"))))
    after = dependency_edges(span_calls(spans_frame(traces(20, callee="model") + traces(
        2, callee="rare", first=500))))
    changes = {(c.change, c.edge.source, c.edge.target) for c in
               compare_edges(before, after, min_calls=5)}
    assert changes == {("new", "gateway", "model"), ("vanished", "gateway", "legacy"),
                       ("new", "model", "postgres"), ("vanished", "legacy", "postgres")}


def _write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_cli_on_files(tmp_path: Path) -> None:
    cur = _write(tmp_path / "cur.ndjson", traces(30, callee="model-v2"))
    base = _write(tmp_path / "base.ndjson", traces(30, callee="model"))
    r = CliRunner().invoke(main, ["dependencies", "--input", str(cur), "--baseline-input",
                                  str(base), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {(e["source"], e["target"]) for e in out["edges"]} == {
        ("gateway", "model-v2"), ("model-v2", "postgres")}
    assert {(c["change"], c["target"]) for c in out["changes"]} >= {
        ("new", "model-v2"), ("vanished", "model")}


@pytest.mark.engine
def test_job_cli_and_api_on_the_cluster(engine: Any, namespace: str) -> None:
    from fastapi.testclient import TestClient

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app

    base_t = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    cur_t = base_t + timedelta(hours=1)
    docs = traces(30, callee="legacy", base=base_t) + traces(30, callee="model", base=cur_t,
                                                             first=1000)
    stream = names.stream(names.TRACES, namespace)
    result = engine.bulk(({"create": {"_index": stream, "_id": d["trace.id"] + d["span.id"]}},
                          d) for d in docs)
    assert result.ok == len(docs)
    engine.refresh(stream)
    window = J.Window(cur_t, cur_t + timedelta(hours=1))
    baseline = J.Window(base_t, cur_t, name="baseline")
    res = J.dependencies(J.DependencyRequest(window, J.Scope(namespace=namespace), baseline),
                         J.ClusterSpans(engine, namespace), writer=J.ClusterWriter(engine))
    assert {(e.source, e.target) for e in res.edges} == {("gateway", "model"),
                                                         ("model", "postgres")}
    kinds = sorted((f.kind, f.subject) for f in res.findings)
    assert ("dependency_new", "gateway->model") in kinds
    assert ("dependency_vanished", "gateway->legacy") in kinds
    engine.refresh(names.DEPENDENCIES_INDEX)
    stored = engine.search(names.DEPENDENCIES_INDEX, {"query": {"term": {
        "namespace": namespace}}})["hits"]["hits"]
    assert {(h["_source"]["source"]["service"], h["_source"]["target"]["service"])
            for h in stored} == {("gateway", "model"), ("model", "postgres")}

    r = CliRunner().invoke(main, [
        "dependencies", "--url", engine.url, "--namespace", namespace, "--from",
        window.start.isoformat(), "--to", window.end.isoformat(), "--no-write", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {(c["change"], c["target"]) for c in out["changes"]} >= {("new", "model"),
                                                                     ("vanished", "legacy")}

    app = create_app(lambda: connect(engine.url), ServiceSettings(auth=False, scheduler=False))
    with TestClient(app) as client:
        resp = client.get("/v1/dependencies", params={
            "from": window.start.isoformat(), "to": window.end.isoformat(),
            "namespace": namespace})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    edge = next(e for e in body["edges"] if e["target"] == "model")
    assert edge["calls"] == 30 and edge["errors"] == 3
    assert {f["kind"] for f in body["findings"]} == {"dependency_new", "dependency_vanished"}


def test_mesh_access_logs_are_calls() -> None:
    from logsight.envoy import parse_line
    from logsight.sources.mesh import mesh_frame

    line = ('[2026-03-01T12:00:01.000Z] "POST /score HTTP/2" {code} - - - "-" 120 91 {ms} - '
            '"-" "httpx" "a1b2" "model:9080" "10.1.2.4:9080" '
            'outbound|9080||model.default.svc.cluster.local 10.1.0.5:40122 10.96.0.12:9080 '
            '10.1.0.5:57830 - default')
    docs = []
    for i in range(20):
        d = parse_line(line.format(code=503 if i < 2 else 200, ms=10 + i))
        d["service.name"] = "gateway"
        docs.append(d)
    (edge,) = dependency_edges(mesh_frame(docs), window_seconds=10.0)
    assert (edge.source, edge.target, edge.via) == ("gateway", "model", "mesh")
    assert edge.calls == 20 and edge.errors == 2 and edge.rate_per_s == pytest.approx(2.0)
    assert edge.latency_p95_ms == pytest.approx(float(np.quantile(10 + np.arange(20), 0.95)))


@pytest.mark.engine
def test_mesh_edges_from_the_cluster(engine: Any, namespace: str, tmp_path: Path) -> None:
    from logsight.ingest import ingest_file

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    lines = [json.dumps({
        "start_time": (at + timedelta(seconds=i)).isoformat(), "method": "GET",
        "path": "/r", "protocol": "HTTP/1.1", "response_code": 200, "duration": 5 + i,
        "upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local",
        "downstream_peer_uri_san": "spiffe://cluster.local/ns/default/sa/productpage"})
        for i in range(12)]
    path = tmp_path / "mesh.log"
    path.write_text("\n".join(lines) + "\n")
    report = ingest_file(engine, path, fmt="envoy", service="reviews-proxy",
                         namespace=namespace, refresh=True)
    assert report.indexed == 12
    res = J.dependencies(J.DependencyRequest(J.Window(at - timedelta(minutes=1),
                                                      at + timedelta(minutes=5))),
                         J.ClusterSpans(engine, namespace), mesh=J.ClusterMesh(engine, namespace))
    (edge,) = res.edges
    assert (edge.source, edge.target, edge.via, edge.calls) == (
        "productpage", "reviews", "mesh", 12)
