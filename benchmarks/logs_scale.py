"""Log anomalies at cluster scale: the analysis by counts (composite aggregations by template
key, examples of flagged windows only) next to the line path (every line paged out with
search_after and mined in Python), in the same run, at several sizes.

Usage::

    LOGSIGHT_URL=http://localhost:9200 python benchmarks/logs_scale.py --lines 200000 1000000

For each N, N lines of five services over one hour (the same services, templates and windows
at every N: only the density grows, as when a busier system logs the same hour) are sent
through ``_bulk`` into a fresh logs namespace, so the stream's default pipeline sets the
template key. Then each path analyses the hour in a child process of its own (so its peak RSS
is its own): wall time (count path: median of ``--repeat`` runs with the index's request
cache off, so each run does the cluster's work), peak RSS (the whole child, imports included),
findings. Minute 45 of one service holds a burst of a
never-seen error, so both paths have something to find. ``--keep`` leaves the data in place.

Goals (issue 13): time and RSS of the count path flat in N (<= 1.2x from 200k to 2M lines), and
>= 20x faster than the line path at 2M lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.engine import connect

T0 = pd.Timestamp("2025-01-06T09:00:00Z")
HOUR = 3600.0
SERVICES = ("gateway", "orders", "payments", "search", "inventory")
TEMPLATES = (
    "request {} served in {} ms", "cache miss for key {} after {} ms",
    "user {} logged in from 10.0.{}.7", "wrote {} rows to partition {}",
    "heartbeat {} ok, lag {} ms", "retry {} of 3 for call {}",
)


def _ndjson(stream: str, n: int, seed: int) -> bytes:
    """``n`` lines as a ``_bulk`` body (vectorised: the generator must not be the bottleneck)."""
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, HOUR, n)), unit="s")
    svc = rng.integers(len(SERVICES), size=n)
    tpl = rng.integers(len(TEMPLATES), size=n)
    a, b = rng.integers(1, 99999, size=n), rng.integers(1, 999, size=n)
    iso = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = []
    action = json.dumps({"create": {"_index": stream}})
    for i in range(n):
        doc = {"@timestamp": iso[i], "log": {"level": "INFO"},
               "service": {"name": SERVICES[svc[i]]},
               "message": TEMPLATES[tpl[i]].format(a[i], b[i])}
        out.append(action)
        out.append(json.dumps(doc))
    return ("\n".join(out) + "\n").encode()


def _burst(stream: str) -> bytes:
    out = []
    action = json.dumps({"create": {"_index": stream}})
    for i in range(40):
        ts = T0 + pd.Timedelta(minutes=45, seconds=i)
        out.append(action)
        out.append(json.dumps({"@timestamp": ts.isoformat(), "log": {"level": "ERROR"},
                               "service": {"name": "payments"},
                               "message": f"ledger refused transfer {i * 37} from vault {i}"}))
    return ("\n".join(out) + "\n").encode()


def ingest(engine: Any, namespace: str, n: int, *, chunk: int = 10_000) -> float:
    stream = names.stream(names.LOGS, namespace)
    t = time.perf_counter()
    sent = 0
    while sent < n:
        k = min(chunk, n - sent)
        result = engine.bulk_ndjson(_ndjson(stream, k, seed=sent))
        if result.errors:
            raise SystemExit(f"bulk errors: {result.errors[:2]}")
        sent += k
    engine.bulk_ndjson(_burst(stream))
    engine.refresh(stream)
    return time.perf_counter() - t


def analyse(url: str, namespace: str, method: str) -> dict[str, Any]:
    """One analysis of the hour (run in a child: its peak RSS is this path's own)."""
    from logsight.jobs import logs as L
    from logsight.jobs.base import Scope, Window

    engine = connect(url)
    request = L.LogAnomaliesRequest(
        Window(T0.to_pydatetime(), (T0 + pd.Timedelta(hours=1)).to_pydatetime()),
        Scope(namespace=namespace), method=method)  # type: ignore[arg-type]  # CLI string
    t = time.perf_counter()
    result = L.anomalies(request, L.ClusterLogs(engine, namespace))
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": rss_mb, "lines": result.lines,
            "findings": sorted(f.id for f in result.findings), "method": result.method}


def _child(url: str, namespace: str, method: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, "--namespace", namespace, "--url", url],
        check=True, capture_output=True, text=True, env=os.environ)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--url", default=os.environ.get("LOGSIGHT_URL", "http://localhost:9200"))
    p.add_argument("--no-lines-path", action="store_true",
                   help="time the count path only (the line path is slow at large N)")
    p.add_argument("--keep", action="store_true", help="keep the benchmark data")
    p.add_argument("--repeat", type=int, default=3, help="count-path runs per N (median)")
    p.add_argument("--child", choices=["counts", "lines"], help=argparse.SUPPRESS)
    p.add_argument("--namespace", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(analyse(args.url, args.namespace, args.child)))
        return
    engine = connect(args.url)
    rows = []
    for n in args.lines:
        namespace = f"bench{n}"
        stream = names.stream(names.LOGS, namespace)
        if engine.count(stream) != n + 40:
            engine.request("DELETE", f"/_data_stream/{stream}", ok_missing=True)
            secs = ingest(engine, namespace, n)
            print(f"N={n:>9,}: ingested through _bulk + pipeline in {secs:6.1f} s "
                  f"({n / secs:,.0f} lines/s)", flush=True)
        # the shard request cache would answer a repeated aggregation from memory: off, so
        # every count run below does the cluster's work again
        engine.request("PUT", f"/{stream}/_settings",
                       body={"index": {"requests": {"cache": {"enable": False}}}})
        runs = [_child(args.url, namespace, "counts") for _ in range(args.repeat)]
        counts = dict(runs[0], seconds=float(np.median([r["seconds"] for r in runs])),
                      first_seconds=runs[0]["seconds"])
        lines = None if args.no_lines_path else _child(args.url, namespace, "lines")
        row = {"n": n, "counts": counts, "lines": lines}
        rows.append(row)
        msg = (f"N={n:>9,}: counts {counts['seconds']:6.2f} s (median of {args.repeat}, "
               f"first {counts['first_seconds']:.2f} s) {counts['rss_mb']:6.0f} MB "
               f"{len(counts['findings'])} finding(s)")
        if lines:
            same = "same findings" if lines["findings"] == counts["findings"] else "DIFFERENT"
            msg += (f" | lines {lines['seconds']:6.2f} s {lines['rss_mb']:6.0f} MB "
                    f"{len(lines['findings'])} finding(s) | speed-up "
                    f"{lines['seconds'] / counts['seconds']:5.1f}x, RSS "
                    f"{lines['rss_mb'] / counts['rss_mb']:4.1f}x less, {same}")
        print(msg, flush=True)
        if not args.keep:
            engine.request("DELETE", f"/_data_stream/{stream}", ok_missing=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"counts path from N={a['n']:,} to N={b['n']:,} ({b['n'] / a['n']:.0f}x lines): "
              f"time {b['counts']['seconds'] / a['counts']['seconds']:.2f}x, "
              f"RSS {b['counts']['rss_mb'] / a['counts']['rss_mb']:.2f}x (goal <= 1.2x)")
        if a["lines"] and b["lines"]:
            print(f"lines path over the same: time "
                  f"{b['lines']['seconds'] / a['lines']['seconds']:.2f}x, RSS "
                  f"{b['lines']['rss_mb'] / a['lines']['rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
