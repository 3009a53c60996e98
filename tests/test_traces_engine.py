"""Trace analysis against the real engine: span documents in the traces stream, bottlenecks and
regressions read back with PIT paging, findings and critical-path aggregates written once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from tests.cluster_jobs import run_bottlenecks, run_trace_regressions

from logsight import names
from logsight.cli import main
from logsight.findings import read_findings
from logsight.sources.traces import operation_stats, read_spans

pytestmark = pytest.mark.engine

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
MS = 1_000_000


def ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 10**9 + ts.microsecond * 1000


def span_doc(trace: str, span: str, parent: str | None, service: str, name: str,
             start: int, end: int, *, status: str = "ok", version: str = "1.0") -> dict[str, Any]:
    """A traces-stream document in the documented shape (docs/DEVELOPING.md)."""
    doc: dict[str, Any] = {
        "@timestamp": datetime.fromtimestamp(start / 1e9, UTC).isoformat().replace("+00:00", "Z"),
        "trace.id": trace,
        "span.id": span,
        "service.name": service,
        "service.version": version,
        "span.name": name,
        "span.kind": "server" if parent is None else "internal",
        "span.start_unix_nano": start,
        "span.end_unix_nano": end,
        "span.status": status,
    }
    if parent is not None:
        doc["parent.id"] = parent
    return doc


def request_docs(i: int, *, api: str, model: str, t0: datetime, infer_ms: float,
                 version: str = "1.0") -> list[dict[str, Any]]:
    """GET /predict -> auth (3 ms), then features (8 ms) || cache (2 ms), then infer."""
    trace = uuid.uuid4().hex
    s = ns(t0) + i * 500 * MS
    a_end = s + 4 * MS
    f_end = a_end + 8 * MS
    i_end = f_end + int(infer_ms * MS)
    return [
        span_doc(trace, "r" * 16, None, api, "GET /predict", s, i_end + MS, version=version,
                 status="error" if i % 10 == 0 else "ok"),
        span_doc(trace, "a" * 16, "r" * 16, api, "auth.check", s + MS, a_end, version=version),
        span_doc(trace, "f" * 16, "r" * 16, api, "features.lookup", a_end, f_end,
                 version=version),
        span_doc(trace, "c" * 16, "r" * 16, api, "cache.get", a_end, a_end + 2 * MS,
                 version=version),
        span_doc(trace, "m" * 16, "r" * 16, model, "model.infer", f_end, i_end, version=version),
    ]


def index_docs(engine: Any, namespace: str, docs: list[Mapping[str, Any]]) -> None:
    stream = names.stream(names.TRACES, namespace)
    result = engine.bulk(
        [({"create": {"_index": stream, "_id": f"{d['trace.id']}-{d['span.id']}"}}, d)
         for d in docs],
        refresh="wait_for",
    )
    assert not result.errors, result.errors[:3]


@pytest.fixture
def services() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"api-{uid}", f"model-{uid}"


def test_bottlenecks_from_the_cluster(engine: Any, namespace: str,
                                      services: tuple[str, str]) -> None:
    api, model = services
    docs = [d for i in range(40) for d in request_docs(i, api=api, model=model, t0=T0,
                                                         infer_ms=60 + i % 5)]
    index_docs(engine, namespace, docs)
    start, end = T0, T0 + timedelta(hours=1)

    spans = read_spans(engine, start=start, end=end, namespace=namespace)
    assert len(spans) == len(docs)
    rows, findings = run_bottlenecks(engine, start=start, end=end, namespace=namespace)
    assert (rows[0]["service"], rows[0]["operation"]) == (model, "model.infer")
    assert rows[0]["critical_path_share"] > 0.6
    assert rows[0]["latency_source"] == "engine"
    assert rows[0]["latency_p50_ms"] == pytest.approx(62, abs=1.5)
    cache = next(r for r in rows if r["operation"] == "cache.get")
    assert cache["on_critical_path_ratio"] == 0
    root = next(r for r in rows if r["operation"] == "GET /predict")
    assert root["error_rate"] == pytest.approx(0.1)
    assert [f.subject for f in findings] == ["model.infer"]

    # findings and aggregates are written under stable ids: a re-run overwrites them
    run_bottlenecks(engine, start=start, end=end, namespace=namespace)
    stored, _ = read_findings(engine, kind="trace_bottleneck", service=model)
    assert len(stored) == 1 and stored[0]["subject"] == "model.infer"
    assert stored[0]["namespace"] == namespace
    engine.refresh(names.CRITICAL_PATH_INDEX)
    query = {"term": {"entry_service": api}}
    assert engine.count(names.CRITICAL_PATH_INDEX, query) == 5
    hits = engine.search(names.CRITICAL_PATH_INDEX, {"query": query, "size": 10,
                                                     "sort": [{"rank": "asc"}]})["hits"]["hits"]
    top = hits[0]["_source"]
    assert (top["service.name"], top["span.name"], top["entry_point"]) == (
        model, "model.infer", "GET /predict"
    )
    assert top["traces"] == 40 and top["count"] == 40 and top["service.version"] == "1.0"
    assert {h["_source"]["namespace"] for h in hits} == {namespace}
    assert sum(h["_source"]["critical_path_share"] for h in hits) == pytest.approx(1.0)


def test_entry_point_filter_and_pushed_down_percentiles(engine: Any, namespace: str,
                                                        services: tuple[str, str]) -> None:
    api, model = services
    docs = [d for i in range(10) for d in request_docs(i, api=api, model=model, t0=T0,
                                                         infer_ms=30)]
    trace = uuid.uuid4().hex
    other = ns(T0) + 60 * 10**9
    docs.append(span_doc(trace, "b" * 16, None, api, "nightly.batch", other, other + 900 * MS))
    index_docs(engine, namespace, docs)
    start, end = T0, T0 + timedelta(hours=1)
    only = read_spans(engine, start=start, end=end, namespace=namespace, service=api,
                      operation="GET /predict")
    assert len(only) == 50 and "nightly.batch" not in set(only["name"])
    rows, _ = run_bottlenecks(engine, start=start, end=end, namespace=namespace, service=api,
                              operation="GET /predict", write=False)
    assert rows[0]["operation"] == "model.infer" and rows[0]["latency_source"] == "spans"
    stats = operation_stats(engine, start=start, end=end, namespace=namespace)
    infer = stats[stats["operation"] == "model.infer"].iloc[0]
    assert infer["count"] == 10
    assert infer["latency_p95_ms"] == pytest.approx(30.0)
    root = stats[stats["operation"] == "GET /predict"].iloc[0]
    assert root["errors"] == 1


def test_regression_between_two_windows(engine: Any, namespace: str,
                                        services: tuple[str, str]) -> None:
    api, model = services
    later = T0 + timedelta(hours=1)
    docs = [d for i in range(30) for d in request_docs(i, api=api, model=model, t0=T0,
                                                         infer_ms=20 + i % 4)]
    docs += [d for i in range(30) for d in request_docs(i, api=api, model=model, t0=later,
                                                          infer_ms=70 + i % 4, version="2.0")]
    index_docs(engine, namespace, docs)
    results, findings = run_trace_regressions(
        engine, start=later, end=later + timedelta(hours=1), baseline_start=T0,
        baseline_end=later, namespace=namespace,
    )
    assert [(f.service, f.subject) for f in findings] == [(model, "model.infer")]
    assert findings[0].kind == "trace_regression"
    run_trace_regressions(engine, start=later, end=later + timedelta(hours=1),
                          baseline_start=T0, baseline_end=later, namespace=namespace)
    stored, _ = read_findings(engine, kind="trace_regression", service=model)
    assert len(stored) == 1
    assert stored[0]["namespace"] == namespace and findings[0].namespace == namespace
    root = next(r for r in results if r.operation == "GET /predict")
    assert root.downstream and not root.regressed


def test_spans_exported_through_the_otel_sdk(engine: Any, namespace: str,
                                             services: tuple[str, str]) -> None:
    pytest.importorskip("opentelemetry.sdk")  # an optional dependency may be absent...
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, use_span

    from logsight.adapters import otel  # ...but a broken logsight module must fail

    api, model = services
    exported: list[dict[str, Any]] = []

    def emit(kind: str, doc: Mapping[str, Any]) -> bool:
        assert kind == "traces"
        exported.append(dict(doc))
        return True

    def provider(service: str) -> TracerProvider:
        p = TracerProvider(resource=Resource.create({"service.name": service,
                                                     "service.version": "3.1"}))
        p.add_span_processor(SimpleSpanProcessor(otel.EcsSpanExporter(emit)))
        return p

    api_tracer = provider(api).get_tracer("test-app")
    model_tracer = provider(model).get_tracer("test-app")
    base = ns(T0)

    def timed(tracer: Any, name: str, a: int, b: int, **kw: Any) -> None:
        span = tracer.start_span(name, start_time=base + a * MS, **kw)
        span.end(end_time=base + b * MS)

    def handle(i: int, infer_ms: int) -> None:
        """One request of the instrumented app; model.infer is the deliberately slow step."""
        t = i * 1000
        root = api_tracer.start_span("GET /predict", kind=SpanKind.SERVER, start_time=base + t * MS)
        with use_span(root, end_on_exit=False):
            timed(api_tracer, "auth.check", t + 1, t + 4)
            timed(api_tracer, "features.lookup", t + 4, t + 12)
            timed(api_tracer, "cache.get", t + 4, t + 6)
            timed(model_tracer, "model.infer", t + 12, t + 12 + infer_ms, kind=SpanKind.CLIENT)
        if i % 5 == 0:
            root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end(end_time=base + (t + 13 + infer_ms) * MS)

    for i in range(25):
        handle(i, 50 + i % 3)
    assert len(exported) == 125
    index_docs(engine, namespace, exported)
    rows, findings = run_bottlenecks(engine, start=T0, end=T0 + timedelta(hours=1),
                                     namespace=namespace, write=False)
    assert (rows[0]["service"], rows[0]["operation"]) == (model, "model.infer")
    root_row = next(r for r in rows if r["operation"] == "GET /predict")
    assert root_row["error_rate"] == pytest.approx(0.2)
    assert [f.subject for f in findings] == ["model.infer"]



def test_critical_path_aggregates_are_kept_per_namespace(engine: Any, namespace: str,
                                                         services: tuple[str, str]) -> None:
    """User test: two runs over the same window in two namespaces overwrote each other's
    aggregates (same _id, no namespace field)."""
    api, model = services
    other = namespace + "b"
    for ns_, infer_ms in ((namespace, 40.0), (other, 90.0)):
        index_docs(engine, ns_, [d for i in range(10) for d in request_docs(
            i, api=api, model=model, t0=T0, infer_ms=infer_ms)])
        _, findings = run_bottlenecks(engine, start=T0, end=T0 + timedelta(hours=1),
                                      namespace=ns_)
        assert findings and {f.namespace for f in findings} == {ns_}
    engine.refresh(names.CRITICAL_PATH_INDEX)
    for ns_, infer_ms in ((namespace, 40.0), (other, 90.0)):
        query = {"bool": {"filter": [{"term": {"entry_service": api}},
                                     {"term": {"namespace": ns_}},
                                     {"term": {"span.name": "model.infer"}}]}}
        hits = engine.search(names.CRITICAL_PATH_INDEX, {"query": query})["hits"]["hits"]
        assert len(hits) == 1
        # each namespace keeps its own numbers: neither run overwrote the other
        assert hits[0]["_source"]["latency_p95_ms"] == pytest.approx(infer_ms)
    assert engine.count(names.CRITICAL_PATH_INDEX, {"term": {"entry_service": api}}) == 10


def test_cli_says_what_it_searched_when_nothing_matches(engine: Any, namespace: str,
                                                         services: tuple[str, str]) -> None:
    api, model = services
    index_docs(engine, namespace, [d for i in range(3) for d in request_docs(
        i, api=api, model=model, t0=T0, infer_ms=20)])
    window = ["--from", T0.isoformat(), "--to", (T0 + timedelta(hours=1)).isoformat(),
              "--url", engine.url]
    missing = namespace + "none"
    res = CliRunner().invoke(main, ["traces", "bottlenecks", "--namespace", missing, *window])
    assert res.exit_code == 1, res.output
    assert f"traces-logsight-{missing} (namespace '{missing}')" in res.output
    assert "2024-03-01T10:00:00Z and 2024-03-01T11:00:00Z" in res.output
    assert "namespaces with spans in that window" in res.output
    res = CliRunner().invoke(main, ["traces", "bottlenecks", "--namespace", namespace,
                                    "--service", "nosuch", "--no-write", *window])
    assert res.exit_code == 1, res.output
    assert "root span of service 'nosuch'" in res.output
    assert f"entry (root span) services seen: ['{api}']" in res.output
    res = CliRunner().invoke(main, ["traces", "bottlenecks", "--namespace", namespace,
                                    "--service", api, "--operation", "GET /nosuch",
                                    "--no-write", *window])
    assert res.exit_code == 1, res.output
    assert f"root operations of service '{api}' seen: ['GET /predict']" in res.output
    res = CliRunner().invoke(main, ["traces", "regressions", "--namespace", missing,
                                    "--no-write", *window])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: current window: no traces in")
    res = CliRunner().invoke(main, ["traces", "regressions", "--namespace", missing,
                                    "--service", model, "--baseline-version", "1.0",
                                    "--version", "2.0", "--no-write", *window])
    assert res.exit_code == 1, res.output
    assert f"no spans of service '{model}'" in res.output and missing in res.output
    ok = CliRunner().invoke(main, ["traces", "bottlenecks", "--namespace", namespace,
                                   "--no-write", *window])
    assert ok.exit_code == 0, ok.output
