"""Peak RSS of an application logging 2,000 events/s while the cluster is down: the shipper
spills to the disk spool, so memory should stay flat (goal: flat, not growing with time).

The "cluster" is a port nothing listens on. RSS is sampled every second; the figures printed
are the RSS before logging, the peak, the growth over the second half of the run (flat means
~0), and the spool's size on disk at the end.

Then the cluster comes back (``--url``, default ``LOGSIGHT_URL``; skipped when neither is
set): a new shipper on the same spool (a restarted application) delivers the outage's events,
and a second restart must re-send nothing. Printed: delivered, duplicates after the restart
(goal 0), documents in the cluster against events logged (goal equal), and the counters'
balance (enqueued + recovered = sent + duplicates + dead-lettered + dropped + in transit).

    python benchmarks/shipper_outage.py [--duration 300] [--rate 2000] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import time
import uuid

import psutil

import logsight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    ap.add_argument("--rate", type=int, default=2000, help="events per second")
    ap.add_argument("--url", default=os.environ.get("LOGSIGHT_URL"),
                    help="the cluster that comes back (default LOGSIGHT_URL)")
    args = ap.parse_args()
    namespace = "bench" + uuid.uuid4().hex[:8]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    spool = tempfile.mkdtemp(prefix="logsight-outage-")
    proc = psutil.Process()
    ls = logsight.configure("outage-bench", dead, spool_dir=spool, backoff_max=5.0,
                            fsync="batch", namespace=namespace)
    log = ls.logger("bench")
    rss_start = proc.memory_info().rss
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    sent = 0
    next_sample = t0
    while (now := time.monotonic()) - t0 < args.duration:
        due = int((now - t0) * args.rate)
        while sent < due:
            log.info("request handled", request_id=sent, path="/predict", status=200,
                     latency_ms=12.5, payload="x" * 100)
            sent += 1
        if now >= next_sample:
            samples.append((now - t0, proc.memory_info().rss))
            next_sample += 1.0
        time.sleep(0.005)
    ls.flush(timeout=2)
    c = ls.counters
    peak = max(r for _, r in samples)
    half = [r for t, r in samples if t >= args.duration / 2]
    growth = (half[-1] - half[0]) if len(half) > 1 else 0
    mib = 1024 * 1024
    print(f"duration {args.duration:.0f} s at {args.rate} events/s: {sent} events, cluster down")
    print(f"RSS start {rss_start / mib:.1f} MiB, peak {peak / mib:.1f} MiB, "
          f"growth over the second half {growth / mib:+.1f} MiB")
    print(f"queue {c.queued}, in-memory batches {c.pending_memory_bytes / mib:.2f} MiB, "
          f"spool {c.spool_records} records / {c.spool_bytes / mib:.1f} MiB on disk, "
          f"dropped {c.dropped}")
    ls.close(timeout=1)
    if args.url:
        _restart(args.url, spool, namespace, sent)
    shutil.rmtree(spool, ignore_errors=True)


def _restart(url: str, spool: str, namespace: str, logged: int) -> None:
    from logsight import names
    from logsight.engine import connect

    t0 = time.monotonic()
    back = logsight.configure("outage-bench", url, spool_dir=spool, namespace=namespace,
                              backoff_max=5.0)
    delivered = back.flush(timeout=600)
    c = back.counters
    back.close(timeout=10)
    took = time.monotonic() - t0
    again = logsight.configure("outage-bench", url, spool_dir=spool, namespace=namespace)
    again.flush(timeout=60)
    c2 = again.counters
    again.close(timeout=10)
    engine = connect(url)
    stream = names.stream(names.LOGS, namespace)
    engine.refresh(stream)
    stored = engine.count(stream)
    print(f"cluster back: restarted app delivered {c.sent} of {logged} in {took:.1f} s "
          f"({'all' if delivered else 'NOT all'}), duplicates {c.duplicates}, dead-lettered "
          f"{c.dead_lettered}; balance {c.accounted} of {c.received} accounted")
    print(f"second restart: re-sent {c2.sent + c2.duplicates} (duplicates after restart "
          f"{c2.duplicates}, goal 0); documents in the cluster {stored} of {logged} logged "
          f"(missing {logged - stored}, goal 0)")
    engine.delete_index(stream)
    engine.close()


if __name__ == "__main__":
    main()
