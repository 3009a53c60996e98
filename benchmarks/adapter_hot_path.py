"""Hot-path cost of one log call: logsight's structlog logger vs plain structlog with
JSONRenderer writing to a null stream (the peer), same event. Goal: <= 1.5x the peer's time.

Two logsight figures are printed:
* "app thread": the shipper's worker is kept asleep (huge batch size, long flush interval),
  so only the application thread's work is timed: the ECS dict, the trace lookup, the enqueue;
* "with worker": the normal configuration, where the worker drains and serialises on another
  thread during the run (it competes for the GIL, so this includes part of its cost).

    python benchmarks/adapter_hot_path.py [--n 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import structlog

import logsight


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
    print(f"events per run: {n}, best of {repeat}")
    print(f"peer  structlog JSONRenderer -> /dev/null : {t_peer * 1e6:7.2f} us/call")
    print(f"logsight app thread (worker asleep)      : {t_app * 1e6:7.2f} us/call  "
          f"ratio {t_app / t_peer:.2f}x (goal <= 1.5x)")
    print(f"logsight with worker running             : {t_norm * 1e6:7.2f} us/call  "
          f"ratio {t_norm / t_peer:.2f}x")
    print(f"counters: {normal.counters.as_dict()}")
    asleep.close(timeout=1)
    normal.close(timeout=30)


if __name__ == "__main__":
    main()
