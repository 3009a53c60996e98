"""The OTLP/HTTP receiver: the real SDK's exporter (protobuf, gzip) and OTLP/JSON bodies in,
the same documents our own exporter writes out; bad payloads 400, bad records dead-lettered,
auth and size limits; an engine outage in the middle loses and duplicates nothing."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from logsight import names
from logsight.adapters.otel import span_to_doc
from logsight.otlp import OtlpReceiver, ReceiverSettings
from logsight.otlp.decode import decode, parse
from logsight.service.otlp import create_otlp_app
from otlp_support import free_port, make_spans, otlp_json, served


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _message(r: httpx.Response) -> str:
    """The message of an OTLP error answer (google.rpc.Status, JSON or protobuf)."""
    from google.rpc import status_pb2

    if r.headers["content-type"].startswith("application/json"):
        return str(r.json()["message"])
    return str(status_pb2.Status.FromString(r.content).message)


def _receiver(url: str, tmp_path: Path, **kw: Any) -> OtlpReceiver:
    return OtlpReceiver(url, ReceiverSettings(spool_dir=tmp_path / "spool", **kw))


# -- one mapping ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_received_spans_are_the_documents_our_exporter_writes(encoding: str) -> None:
    spans = make_spans("map-svc", 4)
    if encoding == "protobuf":
        msg = parse("traces", encode_spans(spans).SerializeToString(), "application/x-protobuf")
    else:
        msg = parse("traces", json.dumps(otlp_json(spans)).encode(), "application/json")
    decoded = decode("traces", msg, now_ns=time.time_ns)
    assert decoded.rejected == []
    got = {d["event.id"]: d for d in decoded.documents}
    want = {d["event.id"]: d for d in (span_to_doc(s) for s in spans) if d is not None}
    assert got == want
    errors = [d for d in want.values() if d["span.status"] == "error"]
    assert len(errors) == 1 and errors[0]["error.type"] == "ValueError"
    one = next(iter(want.values()))
    assert one["service.name"] == "map-svc" and one["service.version"] == "1.0"
    assert one["service.environment"] == "test"
    assert one["resource.attributes.host.name"] == "h1"
    assert one["otel.scope.name"] == "otlp-test"


# -- the HTTP face, no cluster needed: every answer here comes before a store -------------------
def test_bad_payloads_are_4xx_saying_what_is_wrong(tmp_path: Path) -> None:
    receiver = _receiver(_dead_url(), tmp_path)
    with TestClient(create_otlp_app(receiver)) as client:
        pb = {"Content-Type": "application/x-protobuf"}
        r = client.post("/v1/traces", content=b"\xff\xff\xff not protobuf", headers=pb)
        assert r.status_code == 400 and "ExportTraceServiceRequest" in _message(r)
        r = client.post("/v1/traces", content=b"{nope", headers={"Content-Type":
                                                                  "application/json"})
        assert r.status_code == 400 and "not JSON" in _message(r)
        r = client.post("/v1/traces", content=b'{"resourceSpans": [{"scopeSpans": [{"spans": '
                        b'[{"traceId": "zz", "spanId": "00"}]}]}]}',
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not hex" in _message(r)
        r = client.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "Content-Type" in _message(r)
        r = client.post("/v1/traces", content=b"not gzip",
                        headers={**pb, "Content-Encoding": "gzip"})
        assert r.status_code == 400 and "gzip" in _message(r)
        r = client.post("/v1/profiles", content=b"", headers=pb)
        assert r.status_code in (404, 405)
    assert receiver.counters.bad_requests == 5
    assert receiver.counters.indexed == 0 and receiver.counters.spooled == 0


def test_auth_and_size_limit(tmp_path: Path) -> None:
    receiver = _receiver(_dead_url(), tmp_path, max_body_bytes=2048)
    body = json.dumps(otlp_json(make_spans("auth-svc", 1))).encode()
    js = {"Content-Type": "application/json"}
    with TestClient(create_otlp_app(receiver, api_keys=["s3cret"])) as client:
        assert client.post("/v1/traces", content=body, headers=js).status_code == 401
        r = client.post("/v1/traces", content=body,
                        headers={**js, "Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "s3cret" not in r.text
        big = json.dumps({"resourceSpans": [], "pad": "x" * 4096}).encode()
        r = client.post("/v1/traces", content=big,
                        headers={**js, "Authorization": "Bearer s3cret"})
        assert r.status_code == 413
        # a small gzip body that inflates past the limit is refused too (no gzip bomb)
        r = client.post("/v1/traces", content=gzip.compress(big),
                        headers={**js, "Authorization": "Bearer s3cret",
                                 "Content-Encoding": "gzip"})
        assert r.status_code == 413
    receiver.close(timeout=1)


def test_no_spool_and_no_cluster_is_503_with_retry_after(tmp_path: Path) -> None:
    receiver = _receiver(_dead_url(), tmp_path, spool_max_bytes=1)
    body = encode_spans(make_spans("full-svc", 1)).SerializeToString()
    with TestClient(create_otlp_app(receiver)) as client:
        r = client.post("/v1/traces", content=body,
                        headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert receiver.counters.throttled == 1


# -- against the real engine ------------------------------------------------------------------------
def _event_ids(engine: Any, index: str) -> dict[str, int]:
    engine.refresh(index)
    counts: dict[str, int] = {}
    for hit in engine.scan(index):
        eid = hit["_source"]["event"]["id"]
        counts[eid] = counts.get(eid, 0) + 1
    return counts


def _post_json(url: str, body: dict[str, Any], *, attempts: int = 20) -> httpx.Response:
    """Send like an SDK does: retry 429/503 after Retry-After."""
    for _ in range(attempts):
        r = httpx.post(url + "/v1/traces", content=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"}, timeout=30)
        if r.status_code not in (429, 503):
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    return r


@pytest.mark.engine
def test_sdk_exporter_and_json_into_the_streams(engine: Any, namespace: str,
                                                tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    receiver = _receiver(engine.url, tmp_path, namespace=namespace)
    with served(create_otlp_app(receiver)) as url:
        sdk_spans = make_spans("sdk-svc", 10)
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", compression=Compression.Gzip)
        assert exporter.export(sdk_spans) == SpanExportResult.SUCCESS
        assert exporter.export(sdk_spans) == SpanExportResult.SUCCESS  # an SDK retry
        exporter.shutdown()
        json_spans = make_spans("json-svc", 10)
        body = otlp_json(json_spans)
        # one bad span among good ones: the rest is stored, it is dead-lettered with why
        bad = json.loads(json.dumps(body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]))
        bad["spanId"] = "0000000000000000"
        body["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad)
        r = _post_json(url, body)
        assert r.status_code == 200
        partial = r.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "1" and "span_id" in partial["errorMessage"]
    receiver.close(timeout=10)
    ids = _event_ids(engine, names.stream(names.TRACES, namespace))
    assert len(ids) == 60 and set(ids.values()) == {1}
    engine.refresh(names.DEADLETTER_INDEX)
    dead = engine.search(names.DEADLETTER_INDEX, {"query": {"bool": {"filter": [
        {"term": {"failure.stream": names.stream(names.TRACES, namespace)}},
        {"term": {"failure.stage": "otlp"}}]}}})["hits"]["hits"]
    assert len(dead) == 1 and "all zeros" in dead[0]["_source"]["failure"]["message"]
    # the pipeline ran: the spans are queryable like exported ones
    hits = engine.search(names.stream(names.TRACES, namespace), {"query": {"bool": {"filter": [
        {"term": {"service.name": "sdk-svc"}}, {"term": {"span.kind": "client"}}]}}},
        size=100)["hits"]["hits"]
    assert len(hits) == 10
    src = hits[0]["_source"]
    assert src["attributes"]["peer"]["service"] == "db"
    assert receiver.counters.duplicates == 30


@pytest.mark.engine
def test_logs_and_metrics_over_otlp(engine: Any, namespace: str, tmp_path: Path) -> None:
    receiver = _receiver(engine.url, tmp_path, namespace=namespace)
    now = time.time_ns()
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": "otlp-logs"}}]}
    logs = {"resourceLogs": [{"resource": res, "scopeLogs": [{"scope": {"name": "app.db"},
            "logRecords": [
                {"timeUnixNano": str(now), "severityNumber": 17, "body": {"stringValue":
                 "connection refused"}, "traceId": "5b8efff798038103d269b633813fc60c",
                 "spanId": "eee19b7ec3c1b174",
                 "attributes": [{"key": "db.host", "value": {"stringValue": "pg1"}}]},
                {"timeUnixNano": str(now + 1), "severityText": "WARN",
                 "body": {"stringValue": "slow query"}}]}]}]}
    metrics = {"resourceMetrics": [{"resource": res, "scopeMetrics": [{"metrics": [
        {"name": "queue.depth", "unit": "1", "gauge": {"dataPoints": [
            {"timeUnixNano": str(now), "asInt": "7"}, {"timeUnixNano": str(now + 1),
                                                       "asDouble": 8.5}]}},
        {"name": "latency", "unit": "ms", "histogram": {"dataPoints": [
            {"timeUnixNano": str(now), "count": "4", "sum": 10.0}]}}]}]}]}
    with TestClient(create_otlp_app(receiver)) as client:
        js = {"Content-Type": "application/json"}
        for path, body in (("/v1/logs", logs), ("/v1/metrics", metrics)):
            r = client.post(path, content=json.dumps(body).encode(), headers=js)
            assert r.status_code == 200, r.text
            assert r.json() == {}  # nothing rejected
    receiver.close(timeout=10)
    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    docs = sorted((h["_source"] for h in engine.scan(index)), key=lambda d: d["message"])
    assert [d["message"] for d in docs] == ["connection refused", "slow query"]
    assert [d["log"]["level"] for d in docs] == ["error", "warn"]
    assert docs[0]["trace"]["id"] == "5b8efff798038103d269b633813fc60c"
    assert docs[0]["service"]["name"] == "otlp-logs" and docs[0]["log"]["logger"] == "app.db"
    index = names.stream(names.METRICS, namespace)
    engine.refresh(index)
    points = list(engine.scan(index))
    values = sorted(h["_source"]["metric"].get("value", 0.0) for h in points)
    assert values == [2.5, 7.0, 8.5]


@pytest.mark.engine
def test_an_engine_outage_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Our own node (never the shared one): the SDK exporter (protobuf) and JSON posts send
    spans, the node stops in the middle and starts again: every span is stored once."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from logsight.assets import install
    from logsight.engine import connect
    from logsight.local import LocalEngine

    node = LocalEngine(tmp_path / "node", port=free_port(), heap="512m")
    node.start(timeout=300)
    try:
        install(connect(node.url))
        receiver = _receiver(node.url, tmp_path, namespace="outage")
        batches = [make_spans(f"outage-{i}", 20, prefix=f"b{i}") for i in range(6)]
        with served(create_otlp_app(receiver)) as url:
            exporter = OTLPSpanExporter(endpoint=url + "/v1/traces")

            def send(i: int) -> None:
                if i % 2:
                    assert _post_json(url, otlp_json(batches[i])).status_code == 200
                else:
                    assert exporter.export(batches[i]) == SpanExportResult.SUCCESS

            send(0)
            send(1)
            assert receiver.counters.indexed == 120
            node.stop()
            send(2)
            send(3)
            assert receiver.counters.spooled == 120  # acknowledged from the disk spool
            node.start(timeout=300)
            send(4)
            send(5)
            send(1)  # a client's retry of an export stored before the outage
            assert receiver.flush(timeout=120)
            exporter.shutdown()
        receiver.close(timeout=10)
        engine = connect(node.url)
        ids = _event_ids(engine, names.stream(names.TRACES, "outage"))
        assert len(ids) == 6 * 60 and set(ids.values()) == {1}
        engine.close()
    finally:
        node.stop()


def test_partial_success_body_is_otlp() -> None:
    from logsight.otlp.decode import encode_response, response

    msg = response("traces", 2, "two bad")
    back = ExportTraceServiceResponse.FromString(encode_response(msg, "application/x-protobuf"))
    assert back.partial_success.rejected_spans == 2
    assert json_format.MessageToDict(back) == json.loads(encode_response(msg,
                                                                         "application/json"))


@pytest.mark.engine
def test_logsight_serve_runs_the_receiver_on_its_own_port(engine: Any, namespace: str,
                                                          tmp_path: Path) -> None:
    """End to end: ``logsight serve --otlp-port``; the API and the receiver answer on their own
    ports, the receiver with its own key; the SDK exporter's spans land in the namespace."""
    import os
    import subprocess
    import sys

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    api, otlp = free_port(), free_port()
    env = dict(os.environ, LOGSIGHT_URL=engine.url, LOGSIGHT_OTLP_API_KEYS="otlp-key",
               LOGSIGHT_SPOOL_DIR=str(tmp_path / "spool"))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from logsight.cli import main; main()", "serve", "--port",
         str(api), "--otlp-port", str(otlp), "--otlp-namespace", namespace, "--no-auth",
         "--no-scheduler", "--no-self-log", "--no-access-log", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"logsight serve exited {proc.returncode}: {out}")
            try:
                httpx.get(f"http://127.0.0.1:{otlp}/health", timeout=1.0)
                httpx.get(f"http://127.0.0.1:{api}/health", timeout=1.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        spans = make_spans("served-svc", 5)
        endpoint = f"http://127.0.0.1:{otlp}/v1/traces"
        denied = OTLPSpanExporter(endpoint=endpoint, timeout=5)
        assert denied.export(spans) == SpanExportResult.FAILURE  # no key: 401, not retried
        denied.shutdown()
        exporter = OTLPSpanExporter(endpoint=endpoint,
                                    headers={"Authorization": "Bearer otlp-key"})
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert httpx.get(f"http://127.0.0.1:{api}/v1/traces", timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ids = _event_ids(engine, names.stream(names.TRACES, namespace))
    assert len(ids) == 15 and set(ids.values()) == {1}
