"""Hot-path cost of one log call: logsight's structlog logger vs plain structlog with
JSONRenderer writing to a null stream (the peer), same event. Goal: <= 1.5x the peer's time.

Two logsight figures are printed:
* "app thread": the shipper's worker is kept asleep (huge batch size, long flush interval),
  so only the application thread's work is timed: the ECS dict, the trace lookup, the enqueue;
* "with worker": the normal configuration, where the worker drains and serialises on another
  thread during the run (it competes for the GIL, so this includes part of its cost);
* with ``--url``, also "with worker, _bulk": the same, shipping to that cluster (HTTP and the
  response parsing compete for the GIL too; the log calls outrun the cluster, so the senders
  are busy the whole time: a worst case); its namespace is deleted afterwards.

The worker's own serialisation cost per event (nesting + JSON, one record) is printed too.

    python benchmarks/adapter_hot_path.py [--n 200000] [--repeat 5] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

import logsight
from logsight import names
from logsight.adapters.structlog import EcsProcessor
from logsight.engine import connect
from logsight.shipper import BulkTransport, FileTransport


def peer_logger() -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(open(os.devnull, "w")),  # noqa: SIM115  # lives for the run
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(20),
    ).bind(logger="bench")


def timed(fn: Callable[[], None], n: int, repeat: int) -> float:
    """Best-of-``repeat`` seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--url", default=None, help="also ship to this cluster with _bulk")
    args = ap.parse_args()
    n, repeat = args.n, args.repeat

    peer = peer_logger()

    def run_peer() -> None:
        for i in range(n):
            peer.info("user logged in", user_id=i, path="/login")

    spool = tempfile.mkdtemp()
    asleep = logsight.configure("bench", sink=os.devnull, spool_dir=spool + "/a",
                                batch_size=10**9, max_queue=10**9, flush_interval=3600)
    log_asleep = asleep.logger("bench")

    def run_asleep() -> None:
        for i in range(n):
            log_asleep.info("user logged in", user_id=i, path="/login")
        asleep.shipper._queue.clear()  # keep memory flat between repeats (benchmark only)

    normal = logsight.configure("bench", sink=os.devnull, spool_dir=spool + "/b",
                                max_queue=10**7)
    log_normal = normal.logger("bench")

    def run_normal() -> None:
        for i in range(n):
            log_normal.info("user logged in", user_id=i, path="/login")

    t_peer = timed(run_peer, n, repeat)
    t_app = timed(run_asleep, n, repeat)
    t_norm = timed(run_normal, n, repeat)
    normal.flush(60)
    t_bulk = None
    if args.url:
        namespace = "benchhot" + uuid.uuid4().hex[:8]
        bulk = logsight.configure("bench", args.url, namespace=namespace,
                                  spool_dir=spool + "/c", max_queue=10**7)
        log_bulk = bulk.logger("bench")

        t_bulk = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(n):
                log_bulk.info("user logged in", user_id=i, path="/login")
            t_bulk = min(t_bulk, (time.perf_counter() - t0) / n)
            bulk.flush(300)  # untimed: each repeat starts with the shipper idle
        bulk_counters = bulk.counters.as_dict()
        bulk.close(timeout=30)
        engine = connect(args.url)
        engine.delete_index(names.stream(names.LOGS, namespace))
        engine.close()

    # the worker's own cost: one record per event, on this thread, nothing else running
    ecs = EcsProcessor(asleep.service, final=False)
    docs = [ecs(None, "info", {"event": "user logged in", "logger": "bench", "user_id": i,
                               "path": "/login"}) for i in range(min(n, 50_000))]
    enc: dict[str, float] = {}
    for label, transport in (("_bulk", BulkTransport(namespace="default")),
                             ("ndjson", FileTransport(os.devnull))):
        def encode_all(t: Any = transport) -> None:
            for d in docs:
                t.encode("logs", d)
        enc[label] = timed(encode_all, len(docs), repeat)
        transport.close()
    print(f"events per run: {n}, best of {repeat}")
    print(f"peer  structlog JSONRenderer -> /dev/null : {t_peer * 1e6:7.2f} us/call")
    print(f"logsight app thread (worker asleep)      : {t_app * 1e6:7.2f} us/call  "
          f"ratio {t_app / t_peer:.2f}x (goal <= 1.5x)")
    print(f"logsight with worker running             : {t_norm * 1e6:7.2f} us/call  "
          f"ratio {t_norm / t_peer:.2f}x (goal <= 1.5x)")
    if t_bulk is not None:
        print(f"logsight with worker, _bulk to {args.url}: {t_bulk * 1e6:7.2f} us/call  "
              f"ratio {t_bulk / t_peer:.2f}x")
        print(f"  _bulk counters: {bulk_counters}")
    print(f"worker serialisation per event: _bulk record {enc['_bulk'] * 1e6:.2f} us, "
          f"NDJSON line {enc['ndjson'] * 1e6:.2f} us")
    print(f"counters: {normal.counters.as_dict()}")
    asleep.close(timeout=1)
    normal.close(timeout=30)


if __name__ == "__main__":
    main()
