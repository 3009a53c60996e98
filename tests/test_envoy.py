"""Envoy / Istio access logs into ECS: known lines parse into the documented fields (Envoy's
default format, Istio's text and JSON formats, mTLS peer identities); malformed lines say why;
``logsight ingest --format envoy`` indexes them and dead-letters a malformed one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from logsight import names
from logsight.cli import main
from logsight.envoy import parse_line, upstream_service

ENVOY = ('[2026-03-01T12:00:00.123Z] "GET /api/v1/predict?model=a HTTP/1.1" 200 - 12 345 27 25 '
         '"10.0.0.9" "curl/8.0" "5f3c-11" "gateway.example" "10.1.2.3:8080"')
ISTIO = ('[2026-03-01T12:00:01.000Z] "POST /score HTTP/2" 503 UF,URX upstream_reset_before_'
         'response_started{connection_failure} - "delayed connect error: 111" 120 91 3 - '
         '"-" "python-httpx/0.27" "a1b2" "model:9080" "10.1.2.4:9080" '
         'outbound|9080||model.default.svc.cluster.local 10.1.0.5:40122 10.96.0.12:9080 '
         '10.1.0.5:57830 - default')
ISTIO_JSON = json.dumps({
    "start_time": "2026-03-01T12:00:02.500Z", "method": "GET", "path": "/reviews/0",
    "protocol": "HTTP/1.1", "response_code": 404, "response_flags": "-",
    "response_code_details": "via_upstream", "bytes_received": 0, "bytes_sent": 58,
    "duration": 9, "upstream_service_time": "8", "x_forwarded_for": None,
    "user_agent": "Mozilla/5.0", "request_id": "r-77", "authority": "reviews:9080",
    "upstream_host": "10.1.3.7:9080",
    "upstream_cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
    "downstream_remote_address": "10.1.0.8:33110",
    "downstream_peer_uri_san": "spiffe://cluster.local/ns/default/sa/productpage",
    "upstream_peer_uri_san": "spiffe://cluster.local/ns/default/sa/reviews",
    "route_name": "default"})


def test_envoy_default_format() -> None:
    d = parse_line(ENVOY)
    assert d["@timestamp"].startswith("2026-03-01T12:00:00.123")
    assert d["http.request.method"] == "GET" and d["http.version"] == "1.1"
    assert d["url.path"] == "/api/v1/predict" and d["url.query"] == "model=a"
    assert d["url.original"] == "/api/v1/predict?model=a"
    assert d["http.response.status_code"] == 200 and d["event.outcome"] == "success"
    assert d["http.request.body.bytes"] == 12 and d["http.response.body.bytes"] == 345
    assert d["event.duration"] == 27_000_000 and d["envoy.upstream_service_time_ms"] == 25.0
    assert d["envoy.response_flags"] == []
    assert d["network.forwarded_ip"] == "10.0.0.9" and d["user_agent.original"] == "curl/8.0"
    assert d["http.request.id"] == "5f3c-11" and d["url.domain"] == "gateway.example"
    assert (d["destination.ip"], d["destination.port"]) == ("10.1.2.3", 8080)
    assert d["log.level"] == "info"


def test_istio_text_format() -> None:
    d = parse_line(ISTIO)
    assert d["http.response.status_code"] == 503 and d["event.outcome"] == "failure"
    assert d["log.level"] == "error"
    assert d["envoy.response_flags"] == ["UF", "URX"]
    assert d["envoy.response_code_details"].startswith("upstream_reset_before")
    assert d["envoy.upstream_transport_failure_reason"] == "delayed connect error: 111"
    assert d["envoy.upstream.cluster"] == "outbound|9080||model.default.svc.cluster.local"
    assert d["service.target.name"] == "model"
    assert (d["source.ip"], d["source.port"]) == ("10.1.0.5", 57830)
    assert d["http.version"] == "2" and "envoy.upstream_service_time_ms" not in d
    assert "network.forwarded_ip" not in d  # "-" is absent, not a value


def test_istio_json_with_mtls_peers() -> None:
    d = parse_line(ISTIO_JSON)
    assert d["http.response.status_code"] == 404 and d["log.level"] == "warn"
    assert d["service.target.name"] == "reviews"
    assert d["tls.established"] is True
    assert d["tls.client.x509.alternative_names"] == [
        "spiffe://cluster.local/ns/default/sa/productpage"]
    assert d["service.origin.name"] == "productpage"
    assert d["tls.server.x509.alternative_names"] == [
        "spiffe://cluster.local/ns/default/sa/reviews"]
    assert d["envoy.duration_ms"] == 9.0


@pytest.mark.parametrize("line, why", [
    ("hello world", "fields"),
    ('[2026-03-01T12:00:00Z] "GET / HTTP/1.1" abc - 1 2 3 4 "-" "-" "-" "-" "-"', "not a number"),
    ('[yesterday] "GET / HTTP/1.1" 200 - 1 2 3 4 "-" "-" "-" "-" "-"', "ISO-8601"),
    ('{"method": "GET"}', "start_time"),
    ('{"start_time": "2026-03-01T12:00:00Z"', "not JSON"),
])
def test_malformed_lines_say_why(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_line(line)


def test_upstream_cluster_names() -> None:
    assert upstream_service("outbound|80||ratings.prod.svc.cluster.local") == "ratings"
    assert upstream_service("inbound|9080||") is None
    assert upstream_service("payments_backend") == "payments_backend"


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_value_error(line: str) -> None:
    try:
        doc = parse_line(line)
    except ValueError:
        return
    assert isinstance(doc["http.response.status_code"], int)


@pytest.mark.engine
def test_ingest_envoy_file(engine: Any, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("\n".join([ENVOY, ISTIO, ISTIO_JSON, "garbage line"]) + "\n")
    r = CliRunner().invoke(main, ["ingest", str(path), "--url", engine.url, "--format", "envoy",
                                  "--service", "mesh", "--namespace", namespace, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["indexed"] == 3 and report["dead_lettered"] == 1
    assert any("Envoy" in k for k in report["reasons"])
    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    hits = engine.search(index, {"query": {"term": {"http.response.status_code": 503}}})
    (src,) = [h["_source"] for h in hits["hits"]["hits"]]
    assert src["service"]["name"] == "mesh" and src["service"]["target"]["name"] == "model"
    assert src["envoy"]["response_flags"] == ["UF", "URX"]
    assert src["log"]["level"] == "error" and src["source"]["ip"] == "10.1.0.5"
    # re-ingesting the file sends nothing twice
    r = CliRunner().invoke(main, ["ingest", str(path), "--url", engine.url, "--format", "envoy",
                                  "--namespace", namespace, "--json"])
    assert json.loads(r.output)["duplicates"] == 4
