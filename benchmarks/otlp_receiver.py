"""Spans/s through the OTLP/HTTP receiver: the real SDK exporter (protobuf) -> HTTP ->
receiver (decode, map, durable ``_bulk``) -> the engine, against the peer: the same span
documents sent straight to ``_bulk`` (what the receiver must at least do), same batch size.

    python benchmarks/otlp_receiver.py --spans 30000 --batch 512 --rounds 2   # needs the engine

The receiver runs in this process (uvicorn in a thread), so the exporter and the receiver
share one GIL: a conservative figure for a receiver on its own process.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("LOGSIGHT_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--spans", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import uvicorn
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from logsight import names
    from logsight.adapters.otel import span_to_doc
    from logsight.assets import install
    from logsight.engine import connect
    from logsight.otlp import OtlpReceiver, ReceiverSettings
    from logsight.service.otlp import create_otlp_app
    from logsight.shipper.transport import BulkTransport
    from otlp_support import make_spans

    engine = connect(args.url)
    install(engine)
    spans = make_spans("bench-svc", max(1, args.spans // 3))
    batches = [spans[i:i + args.batch] for i in range(0, len(spans), args.batch)]
    print(f"{len(spans)} spans in {len(batches)} exports of <= {args.batch}; engine {engine}")

    for rnd in range(1, args.rounds + 1):
        ns_recv, ns_peer = f"bench{uuid.uuid4().hex[:8]}", f"bench{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as spool:
            receiver = OtlpReceiver(args.url, ReceiverSettings(namespace=ns_recv,
                                                               spool_dir=Path(spool)))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(create_otlp_app(receiver), port=port,
                                                   log_level="warning", access_log=False))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.01)
            exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
            t0 = time.perf_counter()
            for b in batches:
                exporter.export(b)
            recv_s = time.perf_counter() - t0
            exporter.shutdown()
            server.should_exit = True
            thread.join()
            receiver.close()
        transport = BulkTransport(engine=engine, namespace=ns_peer)
        t0 = time.perf_counter()
        for b in batches:
            records = [transport.encode(names.TRACES, d) for d in map(span_to_doc, b) if d]
            engine.bulk_ndjson(b"".join(records))
        peer_s = time.perf_counter() - t0
        for ns in (ns_recv, ns_peer):
            engine.refresh(names.stream(names.TRACES, ns))
        got = engine.count(names.stream(names.TRACES, ns_recv))
        want = engine.count(names.stream(names.TRACES, ns_peer))
        n = len(spans)
        print(f"round {rnd}: receiver {n / recv_s:,.0f} spans/s ({got} stored), direct _bulk "
              f"{n / peer_s:,.0f} spans/s ({want} stored), ratio {peer_s / recv_s:.2f}x of "
              "the peer's rate")
        for ns in (ns_recv, ns_peer):
            engine.delete_index(names.stream(names.TRACES, ns))
    engine.close()


if __name__ == "__main__":
    main()
