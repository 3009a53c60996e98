"""End-to-end documents/second into the engine: logsight (log calls -> shipper -> _bulk)
vs the client library's own parallel bulk helper (the peer) with the same batch size and the
same documents. Goal: >= 1.0x the peer's rate.

The peer is ``opensearchpy.helpers.parallel_bulk`` for OpenSearch, or
``elasticsearch.helpers.parallel_bulk`` for Elasticsearch (imported here only), fed the
already-built ECS documents; logsight's figure includes building them from the log calls.
Each side writes its own namespace, deleted afterwards.

    python benchmarks/shipper_throughput.py [--url URL] [--n 30000] [--batch 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from typing import Any

import logsight
from logsight import names
from logsight.ecs import EventIds, Service, nest, to_ecs
from logsight.engine import connect


def peer_rate(engine: Any, docs: list[dict[str, Any]], index: str, batch: int,
              threads: int) -> float:
    client = engine._client  # the official client the seam wraps (benchmark only)
    if engine.flavor == "opensearch":
        from opensearchpy.helpers import parallel_bulk
    else:
        from elasticsearch.helpers import parallel_bulk  # type: ignore[no-redef]
    actions = ({"_op_type": "create", "_index": index, "_id": d["event"]["id"], "_source": d}
               for d in docs)
    t0 = time.perf_counter()
    ok = 0
    for success, _info in parallel_bulk(client, actions, chunk_size=batch,
                                        thread_count=threads, raise_on_error=False):
        ok += bool(success)
    elapsed = time.perf_counter() - t0
    assert ok == len(docs), f"peer stored {ok} of {len(docs)}"
    return len(docs) / elapsed


def logsight_rate(url: str, n: int, namespace: str, batch: int,
                  **options: Any) -> tuple[float, dict[str, int]]:
    ls = logsight.configure("bench-throughput", url, namespace=namespace,
                            spool_dir=tempfile.mkdtemp(), batch_size=batch, max_queue=n + 1,
                            flush_interval=0.05, **options)
    log = ls.logger("bench")
    t0 = time.perf_counter()
    for i in range(n):
        log.info("user logged in", user_id=i, path="/login", status=200)
    delivered = ls.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    counters = ls.counters.as_dict()
    ls.close()
    assert delivered and counters["sent"] == n, counters
    return n / elapsed, counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=None, help="cluster (default LOGSIGHT_URL or local 9200)")
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4, help="peer's thread_count (its default)")
    ap.add_argument("--senders", type=int, default=None,
                    help="logsight's sender threads (default: the shipper's default)")
    args = ap.parse_args()
    engine = connect(args.url)
    from logsight.assets import install

    install(engine)
    run = uuid.uuid4().hex[:8]
    service = Service("bench-throughput")
    ids = EventIds()
    docs = [nest(to_ecs({"event": "user logged in", "logger": "bench", "user_id": i,
                         "path": "/login", "status": 200}, service=service, event_id=ids()))
            for i in range(args.n)]
    json.dumps(docs[0])
    extra = {} if args.senders is None else {"senders": args.senders}
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    counters: dict[str, int] = {}
    stored = 0
    try:
        # rounds alternate who goes first, so a warming or busy engine favours neither
        for r in range(args.rounds):
            for side in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
                ns = f"bench{side}{run}r{r}"
                index = names.stream(names.LOGS, ns)
                if side == "ours":
                    rate, counters = logsight_rate(engine.url, args.n, ns, args.batch, **extra)
                    ours_rates.append(rate)
                    engine.refresh(index)
                    stored = engine.count(index)
                else:
                    peer_rates.append(peer_rate(engine, docs, index, args.batch, args.threads))
                engine.delete_index(index)
    finally:
        for r in range(args.rounds):
            for side in ("ours", "peer"):
                engine.delete_index(names.stream(names.LOGS, f"bench{side}{run}r{r}"))
    ours = statistics.median(ours_rates)
    peer = statistics.median(peer_rates)
    print(f"engine: {engine.flavor} {engine.version} at {engine.url}; {args.n} docs, "
          f"batch {args.batch}, median of {args.rounds} alternating rounds")
    print(f"  rounds (docs/s): logsight {[round(x) for x in ours_rates]}, "
          f"peer {[round(x) for x in peer_rates]}")
    print(f"peer  {engine.flavor}.helpers.parallel_bulk (threads={args.threads}): "
          f"{peer:9.0f} docs/s")
    print(f"logsight log calls -> shipper -> _bulk          : {ours:9.0f} docs/s  "
          f"ratio {ours / peer:.2f}x (goal >= 1.0x)")
    print(f"logsight stored {stored} docs; counters {counters}")


if __name__ == "__main__":
    main()
