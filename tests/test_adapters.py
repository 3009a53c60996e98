"""Adapters: structlog and stdlib give identical ECS documents, trace correlation, ML events,
spans, resource metrics, the NDJSON sink; and the documents land in the real engine."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from tests.test_ecs import load_spec, validate_ecs_line

import logsight
from logsight import api, names
from logsight.adapters import MlEvents, span_to_doc
from logsight.adapters.metrics import ResourceSampler
from logsight.ecs import EventIds, Service

SERVICE = Service("payments", version="2.0", hostname="host-a")


def clock() -> float:
    return 1_700_000_000.5


class Collect:
    """An emit target that keeps documents (stands in for the shipper, not the cluster)."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, doc: Any) -> bool:
        self.docs.append((kind, dict(doc)))
        return True


def _stdlib_logger(handle: logsight.Logsight, name: str) -> logging.Logger:
    lg = logging.getLogger(name)
    lg.handlers[:] = [handle.handler]
    lg.propagate = False
    lg.setLevel(logging.DEBUG)
    return lg


def test_structlog_and_stdlib_documents_are_identical() -> None:
    from logsight.adapters.stdlib import EcsJsonFormatter, EcsShipperHandler
    from logsight.adapters.structlog import make_logger

    got_a, got_b = Collect(), Collect()
    slog = make_logger(got_a, SERVICE, "orders", clock=clock, ids=EventIds("x"))
    std = logging.getLogger("orders")
    std.handlers[:] = [EcsShipperHandler(got_b, EcsJsonFormatter(SERVICE, clock=clock,
                                                                 ids=EventIds("x")))]
    std.propagate = False
    std.setLevel(logging.DEBUG)

    slog.info("paid %s", "now", amount=12.5, user={"id": 7}, labels={"tier": "gold"})
    std.info("paid %s", "now", extra={"amount": 12.5, "user": {"id": 7},
                                      "labels": {"tier": "gold"}})
    slog.warning("slow", ms=300)
    std.warning("slow", extra={"ms": 300})
    try:
        raise RuntimeError("down")
    except RuntimeError:
        slog.exception("failed")
        std.exception("failed")
    assert len(got_a.docs) == len(got_b.docs) == 3
    for (ka, da), (kb, db) in zip(got_a.docs, got_b.docs, strict=True):
        assert ka == kb == "logs"
        assert list(da) == list(db)
        assert da == db
    assert got_a.docs[0][1]["amount"] == 12.5  # extra fields keep their type
    assert got_a.docs[2][1]["error.type"] == "RuntimeError"


def test_formatter_does_not_mutate_the_record() -> None:
    from logsight.adapters.stdlib import EcsJsonFormatter

    fmt = EcsJsonFormatter(SERVICE, clock=clock)
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "hi %s", ("x",), None)
    before = dict(record.__dict__)
    fmt.document(record)
    assert record.__dict__ == before


def test_trace_ids_follow_the_active_span() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    got = Collect()
    from logsight.adapters.structlog import make_logger

    slog = make_logger(got, SERVICE, "svc", clock=clock)
    ml = MlEvents(got, SERVICE, clock=clock)
    with tracer.start_as_current_span("root") as root:
        slog.info("in root")
        with tracer.start_as_current_span("child") as child:
            slog.info("in child")
            ml.log_prediction("m", "1", {"f": 1}, 1)
    slog.info("outside")
    root_ctx, child_ctx = root.get_span_context(), child.get_span_context()
    d_root, d_child, d_ml, d_out = (d for _, d in got.docs)
    assert d_root["trace.id"] == format(root_ctx.trace_id, "032x")
    assert d_root["span.id"] == format(root_ctx.span_id, "016x")
    assert d_root["transaction.id"] == d_root["span.id"]  # the entry span is the transaction
    assert d_child["span.id"] == format(child_ctx.span_id, "016x")
    assert d_child["trace.id"] == d_root["trace.id"]
    assert "transaction.id" not in d_child
    assert d_ml["trace.id"] == d_root["trace.id"]
    assert "trace.id" not in d_out


def test_ml_event_shapes() -> None:
    got = Collect()
    ml = MlEvents(got, SERVICE, clock=clock, ids=EventIds("id"))
    rid = ml.log_prediction("churn", "3", {"age": 41, "plan": "pro", "vip": True,
                                           "bad": float("nan"), "a.b": 2.0},
                            "yes", score=0.8, probabilities={"yes": 0.8, "no": 0.2},
                            latency_ms=12)
    ml.log_feedback(rid, 1, model="churn", version="3")
    ml.log_kpi("conversion", 0.031, model="churn", labels={"region": "eu"})
    (k1, pred), (_, fb), (_, kpi) = got.docs
    assert k1 == "mlevents"
    assert pred["ml.event_type"] == "prediction"
    assert pred["ml.model.name"] == "churn" and pred["ml.model.version"] == "3"
    assert pred["ml.features.age"] == 41.0 and pred["ml.features.plan"] == "pro"
    assert pred["ml.features.vip"] == 1.0 and pred["ml.features.a_b"] == 2.0
    assert "ml.features.bad" not in pred
    assert pred["ml.prediction"] == "yes" and "ml.prediction_value" not in pred
    assert pred["ml.probabilities.no"] == 0.2 and pred["ml.latency_ms"] == 12.0
    assert fb["ml.request_id"] == rid == pred["ml.request_id"]
    assert fb["ml.label"] == "1" and fb["ml.label_value"] == 1.0
    assert kpi["ml.kpi.name"] == "conversion" and kpi["ml.kpi.value"] == 0.031
    assert kpi["labels.region"] == "eu"
    assert pred["@timestamp"] == "2023-11-14T22:13:20.500Z"


def test_ml_garbage_never_raises() -> None:
    got = Collect()
    ml = MlEvents(got, SERVICE, clock=clock)
    ml.log_prediction("m", None, {"x": object(), "y": b"\xff"}, object(), score="high",
                      probabilities=[float("inf"), 0.5], latency_ms=None)
    (_, doc), = got.docs
    assert doc["ml.features.y"] == "\ufffd"
    assert "ml.score" not in doc and doc["ml.probabilities.1"] == 0.5


def test_span_documents() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "api",
                                                        "service.version": "9"}))
    mem = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("t")
    attrs = {"http.route": "/x", "db.system": "pg", "db.system.name": "pg"}
    with (tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER, attributes=attrs) as root,
          tracer.start_as_current_span("query") as child):
        child.set_status(Status(StatusCode.ERROR, "timeout"))
    child_span, root_span = mem.get_finished_spans()
    doc = span_to_doc(child_span)
    rdoc = span_to_doc(root_span)
    assert doc is not None and rdoc is not None
    assert doc["parent.id"] == rdoc["span.id"] == format(root.get_span_context().span_id, "016x")
    assert "parent.id" not in rdoc
    assert rdoc["span.kind"] == "server" and doc["span.kind"] == "internal"
    assert doc["span.status"] == "error" and doc["event.outcome"] == "failure"
    assert rdoc["service.name"] == "api" and rdoc["service.version"] == "9"
    assert rdoc["attributes.http.route"] == "/x"
    assert rdoc["attributes.db.system_value"] == "pg"  # a value and an object cannot share
    assert rdoc["attributes.db.system.name"] == "pg"
    assert doc["span.duration_ms"] == pytest.approx(
        (child_span.end_time - child_span.start_time) / 1e6)
    assert doc["event.id"] == f"{doc['trace.id']}-{doc['span.id']}"


def test_metrics_sample_fields() -> None:
    got = Collect()
    sampler = ResourceSampler(got, SERVICE, clock=clock, interval=60)
    doc = sampler.sample()
    for f in ("system.cpu.pct", "system.memory.used_bytes", "system.memory.pct",
              "process.cpu.pct", "process.memory.rss_bytes", "system.network.in_bytes",
              "system.network.out_bytes", "event.id"):
        assert f in doc, f
    assert doc["process.memory.rss_bytes"] > 0
    assert 0 <= doc["system.memory.pct"] <= 100
    assert ("gpu.utilization_pct" in doc) == sampler.gpu_present


def test_ndjson_sink_lines_pass_the_spec() -> None:
    spec = load_spec()
    buf = io.StringIO()
    ls = logsight.configure("sinky", sink=buf, use_spool=False, flush_interval=0.05)
    ls.logger("a").info("one", k=1)
    lg = _stdlib_logger(ls, "sink-test")
    lg.error("two")
    ls.log_kpi("acc", 0.5)
    assert ls.flush(5)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    for line in lines[:2]:
        data = validate_ecs_line(line, spec)
        assert data["data_stream"]["type"] == "logs"
    assert json.loads(lines[2])["data_stream"]["type"] == "mlevents"
    ls.close()


def test_module_level_functions_use_the_latest_handle() -> None:
    buf = io.StringIO()
    ls = logsight.configure("mod", sink=buf, use_spool=False, flush_interval=0.05)
    rid = logsight.log_prediction("m", "1", {"x": 1.0}, 0.3)
    logsight.log_feedback(rid, 0)
    logsight.log_kpi("k", 1.0)
    assert ls.flush(5)
    assert len(buf.getvalue().splitlines()) == 3
    ls.close()
    with pytest.raises(RuntimeError, match="configure"):
        logsight.log_kpi("k", 1.0)


@pytest.mark.engine
def test_every_kind_lands_in_its_stream(engine: Any, namespace: str, tmp_path: Path) -> None:
    service = "adapters-" + uuid.uuid4().hex[:8]
    ls = logsight.configure(service, engine.url, namespace=namespace, spool_dir=tmp_path,
                            flush_interval=0.1)
    ls.logger("x").info("hello", n=1)
    lg = _stdlib_logger(ls, "adapters-it")
    lg.warning("std hello", extra={"n": 2})
    rid = ls.log_prediction("m", "1", {"f": 1.5, "g": "a"}, 0.4, score=0.4)
    ls.log_feedback(rid, 1)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(ls.span_exporter()))
    with provider.get_tracer("t").start_as_current_span("op"):
        ls.logger("x").info("inside span")
    provider.force_flush()
    sampler = ls.start_resource_metrics(interval=3600)
    ls.emit(names.METRICS, sampler.sample())
    assert ls.flush(30)
    c = ls.counters
    assert c.sent == 7 and c.dropped == 0 and c.dead_lettered == 0
    for kind, expected in ((names.LOGS, 3), (names.MLEVENTS, 2), (names.TRACES, 1),
                           (names.METRICS, 1)):
        index = names.stream(kind, namespace)
        engine.refresh(index)
        assert engine.count(index) == expected, kind
    logs = {h["_source"]["message"]: h["_source"] for h in
            engine.search(names.stream(names.LOGS, namespace), {"size": 10})["hits"]["hits"]}
    span = engine.search(names.stream(names.TRACES, namespace), {"size": 1})["hits"]["hits"][0]
    assert logs["inside span"]["trace"]["id"] == span["_source"]["trace"]["id"]
    assert logs["std hello"]["n"] == 2
    provider.shutdown()
    ls.close()


def test_garbage_through_the_loggers_never_raises() -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        __repr__ = __str__

    def exploding(logger: Any, method: str, event: Any) -> Any:
        raise ValueError("a user processor failed")

    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    buf = io.StringIO()
    ls = logsight.configure("garbage", sink=buf, use_spool=False, flush_interval=0.05)
    log = ls.logger("g")
    log.info(Bad(), obj=Bad(), cyc=cyclic, nan=float("nan"), raw=b"\x00\xff")
    log.info("m" * 100_000)
    log.info(b"bytes message")
    ls.logger("bad", processors=[exploding]).info("dropped, not raised")
    lg = _stdlib_logger(ls, "garbage-std")
    lg.info("bad args %d", "not a number")
    lg.info("obj", extra={"obj": Bad(), "inf": float("inf")})
    assert ls.flush(10)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(lines) == 5
    assert lines[0]["message"] == "<unprintable Bad>" and lines[0]["nan"] is None
    assert lines[1]["message"].endswith("[truncated 68050 chars]")  # 100,000 - 31,950 kept
    assert lines[1]["event"]["original"] == "m" * 100_000
    assert lines[2]["message"] == "bytes message"
    assert lines[3]["message"].startswith("'bad args %d'")
    assert lines[4]["inf"] is None and lines[4]["obj"] == "<unprintable Bad>"
    ls.close()


# -- logsight never ships its own logs (the _bulk feedback loop) -----------------------------
def _record(name: str, msg: str = "m", level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_handler_drops_the_transports_loggers_and_their_children() -> None:
    from logsight.adapters.stdlib import (
        DEFAULT_EXCLUDED_LOGGERS,
        EcsJsonFormatter,
        EcsShipperHandler,
    )

    got = Collect()
    handler = EcsShipperHandler(got, EcsJsonFormatter(SERVICE, clock=clock))
    dropped = ["opensearch", "opensearch.trace", "elasticsearch", "elastic_transport.transport",
               "urllib3", "urllib3.connectionpool", "logsight.shipper",
               "logsight.shipper.metrics", "logsight.engine", "logsight.engine.client"]
    # a name is matched by whole dotted components, and logsight's other loggers do ship
    kept = ["app", "urllib3x", "opensearch_app", "myapp.urllib3", "logsight.service",
            "logsight"]
    for name in dropped + kept:
        handler.handle(_record(name, f"from {name}"))
    assert [doc["log.logger"] for _, doc in got.docs] == kept
    assert all(handler.excludes(n) for n in dropped)
    assert not any(handler.excludes(n) for n in kept)
    assert handler.exclude_loggers == DEFAULT_EXCLUDED_LOGGERS


def test_exclude_loggers_and_level_are_configurable_and_checked() -> None:
    buf = io.StringIO()
    ls = logsight.configure("excl", sink=buf, use_spool=False, flush_interval=0.05,
                            level="info", exclude_loggers=("noisy",))
    for name, level in (("noisy", logging.INFO), ("noisy.sub", logging.ERROR),
                        ("urllib3", logging.INFO), ("excl-app", logging.DEBUG),
                        ("excl-app", logging.WARNING)):
        lg = logging.getLogger(name)
        saved = lg.handlers[:], lg.level, lg.propagate
        lg.handlers[:], lg.propagate = [ls.handler], False
        lg.setLevel(logging.DEBUG)  # the handler's level (level="info") filters
        try:
            lg.log(level, "%s-%d", name, level)
        finally:
            lg.handlers[:], lg.propagate = saved[0], saved[2]
            lg.setLevel(saved[1])
    assert ls.flush(5)
    # the default list was replaced: urllib3 logged on an application thread ships
    assert [json.loads(line)["message"] for line in buf.getvalue().splitlines()] == [
        "urllib3-20", "excl-app-30"]
    ls.close()
    with pytest.raises(ValueError, match="not the string"):
        logsight.configure("excl", sink=io.StringIO(), exclude_loggers="urllib3")
    with pytest.raises(ValueError, match="not a logger name"):
        logsight.configure("excl", sink=io.StringIO(), exclude_loggers=("ok", ""))
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        logsight.configure("excl", sink=io.StringIO(), level="loud")
    with pytest.raises(ValueError, match="unknown log level"):
        logsight.configure("excl", sink=io.StringIO(), stdlib="verbose")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _ChattyTransport:
    """An NDJSON transport whose send logs, on the sender thread, through a logger that is not
    excluded by name and through structlog: only the thread guard keeps these out."""

    def __init__(self, buf: io.StringIO) -> None:
        from logsight.shipper import FileTransport

        self.inner = FileTransport(buf)
        self.slog: Any = None
        self.sends = 0

    def encode(self, kind: str, doc: Any) -> bytes:
        return self.inner.encode(kind, doc)

    def send(self, records: Any) -> Any:
        self.sends += 1
        logging.getLogger("chatty.lib").warning("sent %d records", len(records))
        if self.slog is not None:
            self.slog.warning("sent", n=len(records))
        return self.inner.send(records)

    def deadletter(self, failure: Any, clock: Any) -> bytes | None:
        return None

    def close(self) -> None:
        self.inner.close()


def test_records_logged_on_logsight_threads_are_never_shipped() -> None:
    from logsight.shipper import Shipper, internal, is_internal

    buf = io.StringIO()
    transport = _ChattyTransport(buf)
    shipper = Shipper(transport, use_spool=False, flush_interval=0.05, senders=2)
    ls = logsight.Logsight(Service("chatty"), shipper)
    transport.slog = ls.logger("chatty.struct")
    lg = logging.getLogger("chatty.lib")
    watcher = _ListHandler()
    lg.handlers[:] = [ls.handler, watcher]
    lg.propagate = False
    lg.setLevel(logging.DEBUG)
    try:
        for i in range(3):
            lg.info("app line %d", i)
            assert ls.flush(5)  # one send per line: the transport logs after each
        with internal():
            assert is_internal()
            lg.info("inside internal()")
            ls.logger("app").info("inside internal() too")
            with internal():  # re-entrant: the outer block is still internal after it
                pass
            assert is_internal()
        assert not is_internal()
        lg.info("app line 3")
        assert ls.flush(5)
        messages = [json.loads(line)["message"] for line in buf.getvalue().splitlines()]
        assert messages == [f"app line {i}" for i in range(4)]
        assert ls.counters.enqueued == 4
        # the transport did log on the sender thread, and other handlers saw it
        assert transport.sends >= 4 and watcher.messages.count("sent 1 records") == transport.sends
    finally:
        lg.handlers[:] = []
        ls.close()


def test_shipper_diagnostics_are_logged_but_never_shipped(
        caplog: pytest.LogCaptureFixture) -> None:
    from logsight.shipper import FileTransport, Shipper

    buf = io.StringIO()
    # one sender: it is sender 0 that logs the counters, after a send once the interval passed
    shipper = Shipper(FileTransport(buf), use_spool=False, flush_interval=0.05,
                      stats_interval=0.05, senders=1)
    ls = logsight.Logsight(Service("diag"), shipper)
    ls.attach()  # the root logger, as configure(stdlib=True) does
    caplog.set_level(logging.INFO, logger="logsight.shipper")

    def counters_logged() -> bool:
        return any(r.name == "logsight.shipper" and "counters" in r.getMessage()
                   for r in caplog.records)

    sent: list[str] = []
    try:
        deadline = time.monotonic() + 30  # a wait for the periodic log, not a speed check
        while not counters_logged() and time.monotonic() < deadline:
            sent.append(f"app line {len(sent)}")
            logging.getLogger("diag.app").warning(sent[-1])
            assert ls.flush(5)
            time.sleep(0.02)
        assert counters_logged()  # visible through the application's logging config
        assert ls.flush(5)
        lines = [json.loads(line) for line in buf.getvalue().splitlines()]
        assert [line["message"] for line in lines] == sent
    finally:
        ls.close()
    assert ls.handler not in logging.getLogger().handlers


_LOOP_APP = """
import json, logging, os, sys
logging.basicConfig(level=logging.DEBUG)  # the client's request lines are logged too
import logsight
ls = logsight.configure(service_name=os.environ["APP_SERVICE"], url=os.environ["LOGSIGHT_URL"],
                        namespace=os.environ["APP_NAMESPACE"], spool_dir=os.environ["APP_SPOOL"],
                        stdlib=os.environ["APP_SETUP"] == "configure", flush_interval=0.1)
if os.environ["APP_SETUP"] == "add_handler":  # the docs/adapters.md recipe
    logging.getLogger().addHandler(ls.handler)
for i in range(4):
    logging.warning("app line %d", i)
logging.getLogger("app.db").debug("query took %d ms", 12)
flushed = ls.flush(timeout=20)
print(json.dumps({"flushed": flushed, "counters": ls.counters.as_dict()}))
"""


@pytest.mark.engine
@pytest.mark.parametrize("setup", ["configure", "add_handler"])
def test_the_clients_own_logs_never_loop_back(engine: Any, namespace: str, tmp_path: Path,
                                              setup: str) -> None:
    import os
    import subprocess
    import sys

    service = "loop-" + uuid.uuid4().hex[:8]
    env = {**os.environ, "PYTHONPATH": "src", "LOGSIGHT_URL": engine.url,
           "APP_SERVICE": service, "APP_NAMESPACE": namespace,
           "APP_SPOOL": str(tmp_path / "spool"), "APP_SETUP": setup}
    # a generous bound: the bug made flush() run to its timeout and the exit hook wait again
    proc = subprocess.run([sys.executable, "-c", _LOOP_APP], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["flushed"] is True
    assert out["counters"]["enqueued"] == 5 and out["counters"]["sent"] == 5
    # the scenario really happened: the client logged its _bulk requests, to stderr
    assert "_bulk" in proc.stderr
    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    assert engine.count(index) == 5
    aggs = engine.search(index, {"size": 0, "aggs": {"loggers": {
        "terms": {"field": "log.logger"}}}})["aggregations"]["loggers"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in aggs} == {"root": 4, "app.db": 1}


# -- review regressions: handles are independent, the convenience functions explicit -------
def test_two_handles_are_independent_and_close_falls_back() -> None:
    first, second = io.StringIO(), io.StringIO()
    a = logsight.configure("svc-a", sink=first, use_spool=False, flush_interval=0.05)
    b = logsight.configure("svc-b", sink=second, use_spool=False, flush_interval=0.05)
    a.log_kpi("only-a", 1.0)
    logsight.log_kpi("latest", 2.0)  # the most recent open handle: b
    assert a.flush(5) and b.flush(5)
    lines_a = [json.loads(x) for x in first.getvalue().splitlines()]
    lines_b = [json.loads(x) for x in second.getvalue().splitlines()]
    assert [d["service"]["name"] for d in lines_a] == ["svc-a"]
    assert [d["service"]["name"] for d in lines_b] == ["svc-b"]
    b.close()
    assert api.current() is a  # b is closed: back to the previous open handle
    logsight.log_kpi("after-b", 3.0)
    assert a.flush(5)
    assert len(first.getvalue().splitlines()) == 2
    assert len(second.getvalue().splitlines()) == 1
    a.close()
    with pytest.raises(RuntimeError, match="configure"):
        api.current()


def test_structlog_global_is_restored_on_close() -> None:
    import structlog

    structlog.reset_defaults()
    sentinel = [structlog.processors.KeyValueRenderer()]
    structlog.configure(processors=sentinel)
    buf = io.StringIO()
    ls = logsight.configure("glob", sink=buf, use_spool=False, flush_interval=0.05,
                            structlog_global=True)
    assert structlog.get_config()["processors"] is not sentinel
    structlog.get_logger("g").info("shipped")
    assert ls.flush(5)
    assert json.loads(buf.getvalue().splitlines()[0])["message"] == "shipped"
    ls.close()
    assert structlog.get_config()["processors"] == sentinel
    # never configured before: close goes back to structlog's defaults
    structlog.reset_defaults()
    ls = logsight.configure("glob", sink=io.StringIO(), use_spool=False, structlog_global=True)
    assert structlog.is_configured()
    ls.close()
    assert not structlog.is_configured()


@pytest.mark.engine
def test_clashing_deep_and_huge_events_land_with_nothing_lost(engine: Any, namespace: str,
                                                              tmp_path: Path) -> None:
    ls = logsight.configure("clash-" + uuid.uuid4().hex[:8], engine.url, namespace=namespace,
                            spool_dir=tmp_path, flush_interval=0.1)
    log = ls.logger("clash")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(30):
        node["d"] = {}
        node = node["d"]
    text = "".join(chr(97 + i % 26) for i in range(40_000))
    log.info("svc", service="other", error=["e"], level="error", message="dup")
    log.info("deep", nested=deep, process=deep)
    log.info(text)
    assert ls.flush(30)
    c = ls.counters
    assert c.sent == 3 and c.dead_lettered == 0 and c.dropped == 0
    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    hits = engine.search(index, {"size": 10})["hits"]["hits"]
    docs = {h["_source"]["message"][:5]: h["_source"] for h in hits}
    svc = docs["svc"]
    assert svc["service"]["name"] == ls.service.name and svc["log"]["level"] == "info"
    assert svc["labels"]["service"] == "other" and svc["labels"]["level"] == "error"
    assert svc["labels"]["message"] == "dup"
    assert svc["logsight"]["extra"]["error"] == ["e"]
    assert "[truncated: nesting deeper than 15]" in json.dumps(docs["deep"]["nested"])
    big = docs[text[:5]]
    assert big["message"] == text[:31_950] + "...[truncated 8050 chars]"
    assert big["event"]["original"] == text
    ls.close()


def test_formatter_works_from_dictconfig() -> None:
    import logging.config

    buf = io.StringIO()
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"ecs": {"()": "logsight.adapters.EcsJsonFormatter", "service": "myapp",
                               "service_version": "3.1", "environment": "staging"}},
        "handlers": {"buf": {"class": "logging.StreamHandler", "stream": buf,
                             "formatter": "ecs"}},
        "loggers": {"dictcfg-test": {"handlers": ["buf"], "level": "INFO",
                                     "propagate": False}},
    })
    lg = logging.getLogger("dictcfg-test")
    try:
        lg.info("configured", extra={"n": 1})
    finally:
        for h in list(lg.handlers):
            lg.removeHandler(h)
    # checked without the ECS spec file (that is what test_ndjson_sink_lines_pass_the_spec is
    # for), so this test runs everywhere: the ECS logging essentials, in their order
    line = json.loads(buf.getvalue().strip())
    assert list(line)[:3] == ["@timestamp", "log.level", "message"]
    datetime.strptime(line["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert line["log.level"] == "info" and line["ecs.version"]
    assert line["log"]["logger"] == "dictcfg-test"
    assert line["service"] == {"name": "myapp", "version": "3.1", "environment": "staging"}
    assert line["message"] == "configured" and line["n"] == 1
    with pytest.raises(ValueError, match="service must be"):
        logsight.adapters.EcsJsonFormatter(123)  # type: ignore[arg-type]  # the bad input


def test_structlog_level_and_message_kwargs_never_override() -> None:
    buf = io.StringIO()
    ls = logsight.configure("kwargs", sink=buf, use_spool=False, flush_interval=0.05)
    log = ls.logger("k")
    log.info("real", level="error", message="dup")
    log.warning("same", message="same")
    assert ls.flush(10)
    first, second = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert first["log.level"] == "info" and first["message"] == "real"
    assert first["labels"] == {"level": "error", "message": "dup"}
    assert second["log.level"] == "warning" and "labels" not in second
    ls.close()
