"""Bounded load against a ``logsight serve`` this script starts itself (free loopback port).

Seeds a namespace of its own with spans and findings, then runs ``--clients`` concurrent
clients for ``--duration`` seconds against each endpoint in turn: ``GET /v1/findings`` (one
page of 50), ``GET /v1/bottlenecks`` (the seeded service, last hour: every client asks the
same question, as during an incident, so the result cache and single flight answer most) and
``bottlenecks-miss`` (the same analysis, but each request asks a different ``top``: every one
a cache miss, spans read and the critical path computed per request), and prints requests/s,
p50/p99 latency and the ``X-Logsight-Cache`` hits. The peers: the same findings page asked
of the cluster directly (``POST logsight-findings/_search``) with the same concurrency, so the
ratio shows what the API layer (HTTP, auth, validation, JSON models) costs on top of the
engine; and ``bottlenecks-miss`` for ``bottlenecks`` (what the cache saves).

    python benchmarks/api_load.py --clients 50 --duration 30

Everything (server, load generator, engine) shares this machine: figures are for comparison
between runs and against the peer, not absolute capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import httpx
import numpy as np

from logsight import names
from logsight.engine import Engine, connect
from logsight.findings import Finding, write_findings


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(engine: Engine, namespace: str, service: str, *, traces: int, findings: int,
         now: datetime, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    index = names.stream(names.TRACES, namespace)
    ops = ("feature.fetch", "model.predict", "db.query", "cache.get")
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in range(traces):
        t0 = now - timedelta(minutes=50) + timedelta(seconds=2700 * i / traces)
        base = int(t0.timestamp() * 1e9)
        trace_id = uuid.uuid4().hex
        root = uuid.uuid4().hex[:16]
        spans: list[tuple[str, str | None, str, str, float, float]] = [
            (root, None, "POST /predict", "server", 0.0, 0.0)]
        cursor = 1.0
        for op in ops:
            dur = float(rng.gamma(2.0, {"db.query": 15.0}.get(op, 4.0)))
            spans.append((uuid.uuid4().hex[:16], root, op, "client", cursor, cursor + dur))
            cursor += dur
        spans[0] = (root, None, "POST /predict", "server", 0.0, cursor + 1.0)
        for sid, parent, name, kind, a, b in spans:
            doc: dict[str, Any] = {
                "@timestamp": _iso(t0 + timedelta(milliseconds=a)), "trace.id": trace_id,
                "span.id": sid, "service.name": service, "span.name": name, "span.kind": kind,
                "span.start_unix_nano": base + int(a * 1e6),
                "span.end_unix_nano": base + int(b * 1e6), "span.status": "ok",
            }
            if parent:
                doc["parent.id"] = parent
            actions.append(({"create": {"_index": index, "_id": sid}}, doc))
    for start in range(0, len(actions), 5000):
        res = engine.bulk(actions[start:start + 5000], refresh=True)
        if res.errors:
            raise SystemExit(f"seeding spans failed: {res.errors[0]}")
    kinds = ("trace_bottleneck", "log_anomaly", "feature_drift")
    write_findings(engine, [
        Finding(kind=kinds[i % 3], title=f"bench {i}", summary="benchmark finding",
                severity=("low", "medium", "high")[i % 3], score=float(i), service=service,
                subject=f"s{i}", window_start=now - timedelta(minutes=i + 1),
                window_end=now - timedelta(minutes=i), namespace=namespace)
        for i in range(findings)
    ])


def start_server(url: str, key: str, log: IO[bytes],
                 extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, LOGSIGHT_URL=url, LOGSIGHT_API_KEYS=key)
    # the server's stderr goes to a file: an unread pipe would block it once full
    proc = subprocess.Popen(
        [sys.executable, "-c", "from logsight.cli import main; main()", "serve", "--port",
         str(port), "--no-scheduler", "--no-self-log", "--no-access-log", "--log-level",
         "warning", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"logsight serve exited: {log.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("logsight serve did not answer /health within 60 s")


# label, method, params (or params of the n-th request), headers, body
Target = tuple[str, str, dict[str, Any] | Callable[[int], dict[str, Any]], dict[str, str], Any]


async def load(targets: list[Target], base: str, clients: int, duration: float, *,
               pinned: bool = False) -> dict[str, dict[str, Any]]:
    """Each client asks the targets in turn (``pinned``: client w only target w mod n)."""
    lat: dict[str, list[float]] = {t[0]: [] for t in targets}
    status: dict[str, dict[int, int]] = {t[0]: {} for t in targets}
    hits: dict[str, int] = {t[0]: 0 for t in targets}
    sent = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as http:
        stop = time.monotonic() + duration

        async def worker(w: int) -> None:
            i = w
            while time.monotonic() < stop:
                label, method, params, headers, body = targets[i % len(targets)]
                i += 0 if pinned else 1
                query = params(next(sent)) if callable(params) else params
                t0 = time.perf_counter()
                try:
                    r = await http.request(method, _path(label), params=query,
                                           headers=headers, json=body)
                    code = r.status_code
                    hits[label] += r.headers.get("X-Logsight-Cache") == "hit"
                except httpx.HTTPError:
                    code = -1
                lat[label].append(time.perf_counter() - t0)
                status[label][code] = status[label].get(code, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.monotonic() - started
    out: dict[str, dict[str, Any]] = {}
    for label, xs in lat.items():
        a = np.asarray(xs) * 1000.0
        out[label] = {
            "requests": len(xs), "rps": len(xs) / elapsed,
            "p50_ms": float(np.percentile(a, 50)) if len(a) else float("nan"),
            "p99_ms": float(np.percentile(a, 99)) if len(a) else float("nan"),
            "status": status[label], "hits": hits[label],
        }
    return out


_PATHS: dict[str, str] = {}


def _path(label: str) -> str:
    return _PATHS[label]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("LOGSIGHT_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load per endpoint")
    ap.add_argument("--peer-duration", type=float, default=10.0,
                    help="seconds of direct-cluster load for the peer (0: skip)")
    ap.add_argument("--traces", type=int, default=500, help="seeded traces (5 spans each)")
    ap.add_argument("--findings", type=int, default=300, help="seeded findings")
    ap.add_argument("--keep", action="store_true", help="keep the seeded data")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    args = ap.parse_args()
    if args.clients < 1 or args.duration <= 0:
        ap.error("--clients must be >= 1 and --duration > 0")

    engine = connect(args.url)
    namespace = "bench" + uuid.uuid4().hex[:10]
    service = f"bench-{namespace}"
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    seed(engine, namespace, service, traces=args.traces, findings=args.findings, now=now)
    print(f"seeded {args.traces} traces ({args.traces * 5} spans) and {args.findings} findings "
          f"in {time.perf_counter() - t0:.1f} s (namespace {namespace})")
    key = "bench-" + uuid.uuid4().hex
    server_log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in the finally below
    proc, base = start_server(args.url, key, server_log,
                              ["--workers", str(args.workers)] if args.workers != 1 else [])
    auth = {"X-API-Key": key}
    _PATHS.update({"findings": "/v1/findings", "bottlenecks": "/v1/bottlenecks",
                   "bottlenecks-miss": "/v1/bottlenecks"})
    question = {"service": service, "from": "1h", "namespace": namespace, "top": 10}
    try:
        targets: list[Target] = [
            ("findings", "GET", {"service": service, "limit": 50}, auth, None),
            ("bottlenecks", "GET", question, auth, None),
            # top 11..1000 in turn: a new cache key each request (4 operations: same rows)
            ("bottlenecks-miss", "GET", lambda n: {**question, "top": 11 + n % 990}, auth,
             None),
        ]
        # warm up (imports, connection pools, the known-service cache)
        for label, _, params, headers, _b in targets:
            if callable(params):
                continue  # the miss target asks what `bottlenecks` warmed up, with a new top
            r = httpx.get(base + _path(label), params=params, headers=headers, timeout=60)
            r.raise_for_status()
        api: dict[str, dict[str, Any]] = {}
        for target in targets:
            api.update(asyncio.run(load([target], base, args.clients, args.duration)))
        # cheap requests while analyses compute: half the clients keep the analysis pool
        # busy with misses, the other half page findings and probe /health
        _PATHS.update({"findings+load": "/v1/findings", "health+load": "/health",
                       "miss (mixed)": "/v1/bottlenecks"})
        mixed: list[Target] = [
            ("miss (mixed)", "GET", lambda n: {**question, "top": 11 + (n + 495) % 990}, auth,
             None),
            ("findings+load", "GET", {"service": service, "limit": 50}, auth, None),
            ("miss (mixed)", "GET", lambda n: {**question, "top": 11 + (n + 495) % 990}, auth,
             None),
            ("health+load", "GET", {}, {}, None),
        ]
        api.update(asyncio.run(load(mixed, base, args.clients, args.duration, pinned=True)))
        print(f"\nAPI: {args.clients} clients, {args.duration:g} s per endpoint "
              f"({args.workers} uvicorn worker process(es), pid {proc.pid}, loopback {base})")
        _table(api)
        b, m = api["bottlenecks"], api["bottlenecks-miss"]
        print(f"\nratio bottlenecks (one question, cached) / bottlenecks-miss (every request "
              f"computed): throughput {b['rps'] / m['rps']:.1f}x, p50 "
              f"{b['p50_ms'] / m['p50_ms']:.3f}x, p99 {b['p99_ms'] / m['p99_ms']:.3f}x")
        if args.peer_duration > 0:
            _PATHS["peer"] = f"/{names.FINDINGS_INDEX}/_search"
            body = {"size": 50, "sort": [{"@timestamp": "desc"}, {"id": "asc"}],
                    "query": {"bool": {"filter": [{"terms": {"service": [service]}}]}}}
            peer = asyncio.run(load([("peer", "POST", {}, {}, body)], args.url.rstrip("/"),
                                    args.clients, args.peer_duration))
            print(f"\npeer: the same findings page from the cluster directly "
                  f"(POST {_PATHS['peer']}), {args.clients} clients, {args.peer_duration:g} s")
            _table(peer)
            f, p = api["findings"], peer["peer"]
            print(f"\nratio API/peer for the findings page: throughput {f['rps'] / p['rps']:.2f}x, "
                  f"p50 {f['p50_ms'] / p['p50_ms']:.2f}x, p99 {f['p99_ms'] / p['p99_ms']:.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server_log.seek(0)
        warnings = [ln for ln in server_log.read().decode(errors="replace").splitlines()
                    if "WARNING" in ln or "ERROR" in ln]
        if warnings:
            print(f"\nserver logged {len(warnings)} warning/error line(s); first: {warnings[0]}")
        server_log.close()
        if not args.keep:
            engine.delete_index(names.stream(names.TRACES, namespace))
            engine.delete_by_query(names.FINDINGS_INDEX, {"term": {"service": service}})
            engine.delete_by_query(names.CRITICAL_PATH_INDEX,
                                   {"term": {"entry_service": service}})
        engine.close()


def _table(stats: dict[str, dict[str, Any]]) -> None:
    print(f"{'endpoint':<17} {'requests':>9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'hits':>7}  status")
    for label, s in stats.items():
        print(f"{label:<17} {s['requests']:>9d} {s['rps']:>9.1f} {s['p50_ms']:>9.1f} "
              f"{s['p99_ms']:>9.1f} {s['hits']:>7d}  {s['status']}")


if __name__ == "__main__":
    main()
