"""Peak RSS of an application logging 2,000 events/s while the cluster is down: the shipper
spills to the disk spool, so memory should stay flat (goal: flat, not growing with time).

The "cluster" is a port nothing listens on. RSS is sampled every second; the figures printed
are the RSS before logging, the peak, the growth over the second half of the run (flat means
~0), and the spool's size on disk at the end.

    python benchmarks/shipper_outage.py [--duration 300] [--rate 2000]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time

import psutil

import logsight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    ap.add_argument("--rate", type=int, default=2000, help="events per second")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    spool = tempfile.mkdtemp(prefix="logsight-outage-")
    proc = psutil.Process()
    ls = logsight.configure("outage-bench", dead, spool_dir=spool, backoff_max=5.0,
                            fsync="batch")
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
    shutil.rmtree(spool, ignore_errors=True)


if __name__ == "__main__":
    main()
