"""What the OTLP receiver tests share: a receiver served on a free port in this process, spans
from the real SDK, and OTLP/JSON bodies built from the SDK's own encoder."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "receiver did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_spans(service: str, traces: int, *, version: str = "1.0",
               prefix: str = "op") -> list[ReadableSpan]:
    """``traces`` traces of three spans (server -> client -> internal) from the real SDK, with
    attributes, an exception event, a link and resource attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "service.version": version,
        "deployment.environment.name": "test", "host.name": "h1"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otlp-test", "0.1")
    for t in range(traces):
        with tracer.start_as_current_span(f"{prefix}-root", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/predict", "n": t}) as root:
            with tracer.start_as_current_span("call-db", kind=SpanKind.CLIENT,
                                              attributes={"peer.service": "db",
                                                          "db.system": "pg"}):
                pass
            with tracer.start_as_current_span(
                    "score", links=[Link(root.get_span_context())]) as inner:
                if t % 5 == 0:
                    inner.record_exception(ValueError("bad input"))
                    inner.set_status(Status(StatusCode.ERROR, "bad input"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _b64_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                and isinstance(v, str) else _b64_to_hex(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_b64_to_hex(x) for x in node]
    return node


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON body of ``spans`` (hex ids, as the spec says), from the SDK's encoder."""
    return _b64_to_hex(json_format.MessageToDict(encode_spans(spans)))
