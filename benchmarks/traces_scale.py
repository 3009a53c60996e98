"""Trace bottlenecks at scale: the trace-completion job, then bottleneck questions answered from
its stored documents, next to today's raw recompute in the same run.

1. Ingest ``--spans`` spans through the traces pipeline (``_bulk`` into a fresh namespace's
   stream: the default pipeline runs), traces of a lognormal number of spans (a heavy tail of
   traces with hundreds of spans), a few services and operations, an injected slow operation.
2. Run the completion job over what was ingested: spans/s (read + analyse + write documents).
3. Check the stored answer against the raw recompute (same ranking, shares within 1e-6).
4. ``GET /v1/bottlenecks`` against a ``logsight serve`` this script starts, ``--clients``
   concurrent clients for ``--duration`` s, every request a new question (its own window end,
   so the result cache never answers): p50/p99. The peer: the raw recompute (the job with the
   raw span source, what /v1/bottlenecks did before), called in-process by the same number of
   concurrent threads (no HTTP in front of it, which flatters the peer), ``--raw-requests``
   requests in all. Prints the ratio.

    python benchmarks/traces_scale.py --spans 100000 --clients 20 --duration 20

Everything (server, load generator, engine) shares this machine: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import _PATHS, load, start_server  # noqa: E402  # a sibling script, not a package

from logsight import names  # noqa: E402
from logsight.assets import install  # noqa: E402
from logsight.engine import Engine, connect  # noqa: E402
from logsight.jobs import stored_traces as S  # noqa: E402
from logsight.jobs import traces as J  # noqa: E402
from logsight.jobs.trace_completion import (  # noqa: E402
    ClusterWriter,
    CompletionRequest,
    StoredTraces,
    complete_traces,
)

MS = 1_000_000
SERVICES = [f"svc{i}" for i in range(8)]
OPS = [f"op{i}" for i in range(24)]


def _iso_ns(t: int) -> str:
    return datetime.fromtimestamp(t / 1e9, UTC).isoformat().replace("+00:00", "Z")


def generate(n_spans: int, *, t0: datetime, span: timedelta, seed: int = 0
             ) -> list[dict[str, Any]]:
    """Traces until ``n_spans`` spans: a root, calls under it (each either parallel with the
    previous one or after it) and calls inside those; svc3's op7 is made slow (the injected
    bottleneck) and svc5's op2 long but parallel (a decoy); a few children stick out of their
    parent (clock skew, repaired by clipping)."""
    rng = np.random.default_rng(seed)
    docs: list[dict[str, Any]] = []
    base = int(t0.timestamp() * 1e9)
    width = int(span.total_seconds() * 1e9)

    def dur(svc: str, op: str) -> int:
        d = int(rng.lognormal(1.5, 0.7) * MS)
        return d * 12 if (svc, op) == ("svc3", "op7") else d

    while len(docs) < n_spans:
        trace = uuid.uuid4().hex
        size = int(min(max(2, rng.lognormal(2.6, 0.8)), 600, n_spans - len(docs)))
        start = base + int(rng.integers(0, width))
        root_id = uuid.uuid4().hex[:16]
        spans: list[tuple[str, str | None, str, str, int, int]] = []
        cursor = prev = start + MS
        while len(spans) < size - 1:
            svc = SERVICES[int(rng.integers(0, len(SERVICES)))]
            op = OPS[int(rng.integers(0, len(OPS)))]
            s = prev if rng.random() < 0.4 else cursor  # parallel with the previous call
            d = dur(svc, op)
            sid = uuid.uuid4().hex[:16]
            spans.append((sid, root_id, svc, op, s, s + d))
            prev, cursor = s, max(cursor, s + d)
            for _ in range(int(rng.integers(0, 4))):  # calls inside this one
                if len(spans) >= size - 1:
                    break
                svc2 = SERVICES[int(rng.integers(0, len(SERVICES)))]
                op2 = OPS[int(rng.integers(0, len(OPS)))]
                gs = s + int(rng.random() * d * 0.5)
                skew = MS if rng.random() < 0.02 else 0
                spans.append((uuid.uuid4().hex[:16], sid, svc2, op2, gs,
                              min(gs + dur(svc2, op2), s + d) + skew))
        if rng.random() < 0.3:  # the decoy: long, parallel, finishes before the last call
            spans.append((uuid.uuid4().hex[:16], root_id, "svc5", "op2", start + MS,
                          start + MS + max(cursor - start - 3 * MS, MS)))
        root = "POST /checkout" if rng.random() < 0.6 else "GET /search"
        spans.insert(0, (root_id, None, "gateway", root, start, cursor + MS))
        for sid, pid, svc, op, s, e in spans:
            doc: dict[str, Any] = {
                "@timestamp": _iso_ns(s), "trace.id": trace, "span.id": sid,
                "service.name": svc, "service.version": "1.0", "span.name": op,
                "span.kind": "server" if pid is None else "internal",
                "span.start_unix_nano": s, "span.end_unix_nano": e, "span.status": "ok",
            }
            if pid is not None:
                doc["parent.id"] = pid
            docs.append(doc)
    return docs


def ingest(engine: Engine, namespace: str, docs: list[dict[str, Any]], batch: int = 5000
           ) -> float:
    stream = names.stream(names.TRACES, namespace)
    bodies = []
    for i in range(0, len(docs), batch):
        lines = []
        for d in docs[i : i + batch]:
            lines.append(json.dumps({"create": {"_index": stream}}))
            lines.append(json.dumps(d))
        bodies.append("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for result in pool.map(engine.bulk_ndjson, bodies):
            if result.errors:
                raise SystemExit(f"ingest failed: {result.errors[0]}")
    engine.refresh(stream)
    return time.perf_counter() - t0


def raw_peer(engine: Engine, request: J.BottlenecksRequest, namespace: str, clients: int,
             requests: int) -> dict[str, float]:
    def one(i: int) -> float:
        t0 = time.perf_counter()
        J.bottlenecks(request, J.ClusterSpans(engine, namespace))
        return time.perf_counter() - t0

    with ThreadPoolExecutor(clients) as pool:
        lat = np.asarray(list(pool.map(one, range(requests)))) * 1000.0
    return {"requests": float(len(lat)), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("LOGSIGHT_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of stored-path load")
    ap.add_argument("--raw-requests", type=int, default=20,
                    help="raw recompute requests in all (0: skip the peer)")
    ap.add_argument("--analysis-threads", type=int, default=None,
                    help="the server's analysis slots (default: --clients; the service's own "
                    "default is 4, more concurrent questions are shed with 503)")
    ap.add_argument("--step", type=float, default=15.0, help="completion step (s of ingest)")
    args = ap.parse_args()

    engine = connect(args.url)
    install(engine)
    namespace = "bench" + uuid.uuid4().hex[:10]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    window = J.Window(t0, t0 + timedelta(hours=1, minutes=5))
    g0 = time.perf_counter()
    docs = generate(args.spans, t0=t0, span=timedelta(hours=1))
    print(f"generated {len(docs)} spans in {time.perf_counter() - g0:.1f} s "
          f"(namespace {namespace})")
    ingest_from = datetime.now(UTC) - timedelta(seconds=2)
    took = ingest(engine, namespace, docs)
    print(f"ingest: {len(docs)} spans in {took:.1f} s = {len(docs) / took:,.0f} spans/s "
          "(through the traces pipeline)")
    del docs
    time.sleep(1.5)  # the ingest timestamps of the last batch are behind us

    c0 = time.perf_counter()
    done = complete_traces(
        CompletionRequest(now=datetime.now(UTC), namespace=namespace,
                          settle=timedelta(0), since=ingest_from,
                          step=timedelta(seconds=args.step)),
        StoredTraces(engine, namespace), ClusterWriter(engine, refresh=False))
    ctook = time.perf_counter() - c0
    engine.refresh(names.CRITICAL_PATH_INDEX)
    print(f"completion: {done.spans} spans, {done.traces} traces, {done.documents} documents "
          f"in {ctook:.1f} s = {done.spans / ctook:,.0f} spans/s ({done.steps} steps, "
          f"{done.late_spans} late spans re-read; repairs {done.stats})")

    request = J.BottlenecksRequest(window, J.Scope(namespace=namespace), top=10)
    q0 = time.perf_counter()
    stored = S.bottlenecks(request, StoredTraces(engine, namespace),
                           J.ClusterSpans(engine, namespace))
    one_stored = time.perf_counter() - q0
    q0 = time.perf_counter()
    raw = J.bottlenecks(request, J.ClusterSpans(engine, namespace))
    one_raw = time.perf_counter() - q0
    same = [(r["service"], r["operation"]) for r in stored.bottlenecks] == [
        (r["service"], r["operation"]) for r in raw.bottlenecks]
    worst = max(abs(a["critical_path_share"] - b["critical_path_share"])
                for a, b in zip(stored.bottlenecks, raw.bottlenecks, strict=False))
    print(f"answers: from {stored.answered_from}; same ranking: {same}; largest share "
          f"difference {worst:.2e} (goal < 1e-6); top: {stored.bottlenecks[0]['service']} "
          f"{stored.bottlenecks[0]['operation']} {stored.bottlenecks[0]['critical_path_share']:.3f}")
    print(f"single question, one client: stored {one_stored * 1000:.0f} ms, raw "
          f"{one_raw * 1000:.0f} ms ({one_raw / one_stored:.0f}x)")

    key = "bench-key-" + uuid.uuid4().hex
    log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in the finally below
    slots = args.analysis_threads or args.clients
    proc, base = start_server(args.url, key, log, ["--analysis-threads", str(slots)])
    try:
        _PATHS["stored"] = "/v1/bottlenecks"
        end_ms = int(window.closed[1].timestamp() * 1000)

        def params(i: int) -> dict[str, Any]:
            # a new question every time: its own window end (1 ms apart), never cached
            end = datetime.fromtimestamp((end_ms + i) / 1000, UTC)
            return {"from": window.closed[0].isoformat(), "to": end.isoformat(),
                    "namespace": namespace}

        res = asyncio.run(load([("stored", "GET", params, {"X-API-Key": key}, None)], base,
                               args.clients, args.duration))["stored"]
        print(f"/v1/bottlenecks (stored), {args.clients} clients, {slots} analysis slots, "
              f"{args.duration:.0f} s: "
              f"{res['requests']} requests, {res['rps']:.1f}/s, p50 {res['p50_ms']:.0f} ms, "
              f"p99 {res['p99_ms']:.0f} ms, statuses {res['status']}, cache hits {res['hits']}")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    if args.raw_requests:
        peer = raw_peer(engine, request, namespace, args.clients, args.raw_requests)
        print(f"raw recompute (peer, in-process), {args.clients} threads, "
              f"{int(peer['requests'])} requests: p50 {peer['p50_ms']:.0f} ms, p99 "
              f"{peer['p99_ms']:.0f} ms")
        print(f"ratio raw/stored: p50 {peer['p50_ms'] / res['p50_ms']:.1f}x, p99 "
              f"{peer['p99_ms'] / res['p99_ms']:.1f}x (goal >= 20x; p99 goal < 300 ms)")
    engine.close()


if __name__ == "__main__":
    main()
