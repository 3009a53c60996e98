"""Trace analysis benchmark: spans/s and peak memory of logsight's vectorised critical-path and
self-time analysis on already-loaded spans, against a plain per-span Python implementation of
Jaeger's recursive critical-path algorithm (the peer) on the same spans.

Usage::

    python benchmarks/trace_analysis.py --spans 1000000 [--peer-spans 100000] [--seed 0]

Synthetic traces: ``--spans-per-trace`` spans each (default 20) in a random recursive tree
(each span picks an earlier span as parent), every child inside its parent, some children
sticking out (clock skew), some orphans, ~30 operations over 8 services. "End to end" is
:func:`analyze_spans` (sort, parents, depths, clipping, self time, critical path) plus
:func:`rank_bottlenecks` (per-operation aggregation and percentiles); generating the frame is
not timed. Peak memory is the tracemalloc peak of a second, separate run of the same analysis
(numpy and pandas report their buffers to tracemalloc), next to the process' max RSS.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.traces import analyze_spans, rank_bottlenecks

MS = 1_000_000


def generate(n_spans: int, *, per_trace: int = 20, seed: int = 0,
             skew: float = 0.01, orphan: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_traces = max(1, n_spans // per_trace)
    k = per_trace
    start = np.zeros((n_traces, k), dtype=np.int64)
    end = np.zeros((n_traces, k), dtype=np.int64)
    parent = np.full((n_traces, k), -1, dtype=np.int64)
    base = np.arange(n_traces, dtype=np.int64) * 10_000 * MS + 1_700_000_000 * 10**9
    start[:, 0] = base
    end[:, 0] = base + rng.integers(20, 2000, n_traces) * MS
    rows = np.arange(n_traces)
    for i in range(1, k):
        p = rng.integers(0, i, n_traces)
        ps, pe = start[rows, p], end[rows, p]
        width = (pe - ps).astype(np.float64)
        s = ps + (rng.random(n_traces) * width * 0.8).astype(np.int64)
        e = s + (rng.random(n_traces) * (pe - s)).astype(np.int64)
        sticks = rng.random(n_traces) < skew
        e[sticks] += 5 * MS
        start[:, i], end[:, i], parent[:, i] = s, e, p
    ops = np.array([f"op{j}" for j in range(30)], dtype=object)
    services = np.array([f"svc{j % 8}" for j in range(30)], dtype=object)
    op = rng.integers(0, 30, (n_traces, k))
    tid = np.array([f"{t:032x}" for t in range(n_traces)], dtype=object)
    sid_pool = np.array([f"{j:016x}" for j in range(k)], dtype=object)
    flat_parent = parent.ravel()
    pid = np.where(flat_parent >= 0, sid_pool[np.maximum(flat_parent, 0)], None)
    lost = (rng.random(pid.size) < orphan) & (flat_parent >= 0)
    pid[lost] = "ffffffffffffffff"
    status = np.where(rng.random(n_traces * k) < 0.02, "error", "ok").astype(object)
    return pd.DataFrame(
        {
            "trace_id": np.repeat(tid, k),
            "span_id": np.tile(sid_pool, n_traces),
            "parent_id": pid,
            "service": services[op.ravel()],
            "name": ops[op.ravel()],
            "start_ns": start.ravel(),
            "end_ns": end.ravel(),
            "status": status,
            "kind": "internal",
        }
    )


def run_logsight(df: pd.DataFrame) -> list[dict[str, Any]]:
    return rank_bottlenecks(analyze_spans(df), top=10)


def run_peer(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per span Python: dict trees, clip children into parents, Jaeger's recursive walk,
    then critical time summed per operation."""
    recs = df.to_dict("records")
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by_trace[r["trace_id"]].append(r)
    total: dict[tuple[str, str], float] = defaultdict(float)
    for spans in by_trace.values():
        ids = {s["span_id"]: s for s in spans}
        children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        roots = []
        for s in spans:
            if s["parent_id"] in ids:
                children[s["parent_id"]].append(s)
            else:
                roots.append(s)
        roots.sort(key=lambda s: (s["parent_id"] is not None, s["start_ns"]))
        root = roots[0]
        for o in roots[1:]:
            children[root["span_id"]].append(o)
        bounds = {root["span_id"]: (root["start_ns"], root["end_ns"])}
        stack = [root]
        while stack:
            s = stack.pop()
            lo, hi = bounds[s["span_id"]]
            for c in children[s["span_id"]]:
                a = min(max(c["start_ns"], lo), hi)
                bounds[c["span_id"]] = (a, min(max(c["end_ns"], a), hi))
                stack.append(c)
        work = [(root, bounds[root["span_id"]][1])]
        while work:
            s, until = work.pop()
            cands = [c for c in children[s["span_id"]]
                     if bounds[c["span_id"]][1] <= until
                     and bounds[c["span_id"]][1] > bounds[c["span_id"]][0]]
            key = (s["service"], s["name"])
            if not cands:
                total[key] += (until - bounds[s["span_id"]][0]) / MS
                continue
            c = max(cands, key=lambda c: (bounds[c["span_id"]][1], -bounds[c["span_id"]][0]))
            total[key] += (until - bounds[c["span_id"]][1]) / MS
            work.append((s, bounds[c["span_id"]][0]))
            work.append((c, bounds[c["span_id"]][1]))
    return dict(total)


def best_time(fn: Any, df: pd.DataFrame, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn(df)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--spans-per-trace", type=int, default=20)
    ap.add_argument("--peer-spans", type=int, default=100_000,
                    help="spans given to the per-span Python peer (it is slow)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    df = generate(args.spans, per_trace=args.spans_per_trace, seed=args.seed)
    n = len(df)
    print(f"spans: {n:,}  traces: {df['trace_id'].nunique():,}  "
          f"(pandas {pd.__version__}, numpy {np.__version__})")
    secs = best_time(run_logsight, df, args.repeat)
    rate = n / secs
    print(f"logsight analyze_spans+rank_bottlenecks: {secs:.3f} s  {rate:,.0f} spans/s "
          f"(goal >= 250,000: {'met' if rate >= 250_000 else 'NOT met'})")

    gc.collect()
    tracemalloc.start()
    run_logsight(df)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_mb = df.memory_usage(deep=True).sum() / 2**20
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak traced memory during analysis: {peak / 2**20:,.0f} MiB "
          f"(input frame {frame_mb:,.0f} MiB; process max RSS {maxrss_mb:,.0f} MiB)")

    sub = df[df["trace_id"].isin(df["trace_id"].unique()[: max(1, args.peer_spans
                                                                   // args.spans_per_trace)])]
    peer_secs = best_time(run_peer, sub, 1)
    ours_sub = best_time(run_logsight, sub, args.repeat)
    peer_rate, ours_rate = len(sub) / peer_secs, len(sub) / ours_sub
    print(f"on {len(sub):,} spans: peer (per-span Python, Jaeger recursion) "
          f"{peer_rate:,.0f} spans/s, logsight {ours_rate:,.0f} spans/s, "
          f"ratio {ours_rate / peer_rate:.1f}x")
    # the two implementations must agree before their speeds mean anything
    ours = {(r["service"], r["operation"]): r["critical_path_ms"]
            for r in rank_bottlenecks(analyze_spans(sub), top=None)}
    peer = run_peer(sub)
    worst = max(abs(ours.get(k, 0.0) - v) for k, v in peer.items())
    print(f"max per-operation critical-path difference vs peer: {worst:.6f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
