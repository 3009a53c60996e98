"""An application for the fault suite, run as its own process (so it can be killed with -9 or
given a file-size limit): ships numbered events through a real Shipper and reports.

    python tests/fault_app.py URL SPOOL_DIR PREFIX START COUNT [--fsize BYTES] [--steps ...]

Steps, run in order, each printing one JSON line (counters, spool listing) on stdout:
``submit`` (events START..START+COUNT), ``spool`` (flush with give_up_if_down: wait until the
outage's events are on disk or in memory), ``deliver`` (flush until delivered), ``wait`` (read
one line from stdin: the test changes the world meanwhile), ``more`` (COUNT events more),
``hang`` (sleep until killed), ``close``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path


def _listing(spool: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(spool.glob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("spool")
    ap.add_argument("prefix")
    ap.add_argument("start", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--fsize", type=int, default=0, help="RLIMIT_FSIZE: a full disk, simulated")
    ap.add_argument("--max-memory", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--steps", nargs="+", default=["submit", "deliver", "close"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    if args.fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))

    from logsight import names
    from logsight.shipper import BulkTransport, Shipper

    shipper = Shipper(BulkTransport(args.url, namespace=args.prefix), spool_dir=args.spool,
                      flush_interval=0.05, batch_size=500, backoff_initial=0.1,
                      backoff_max=1.0, stats_interval=None, max_memory_bytes=args.max_memory,
                      spool_segment_bytes=256 * 1024, random_state=1)
    next_i = args.start

    def submit(n: int) -> None:
        nonlocal next_i
        for i in range(next_i, next_i + n):
            shipper.submit(names.LOGS, {
                "@timestamp": "2024-05-01T10:00:00.000Z", "message": f"event {i} " + "x" * 200,
                "service.name": "fault-app", "event.id": f"{args.prefix}-{i}"})
        next_i += n

    def report(step: str, **extra: object) -> None:
        c = shipper.counters
        out = {"step": step, "counters": c.as_dict(), "accounted": c.accounted, "received": c.received,
               "spool": _listing(Path(args.spool)), **extra}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()

    for step in args.steps:
        if step in ("submit", "more"):
            submit(args.count)
            report(step)
        elif step == "spool":
            ok = shipper.flush(5, give_up_if_down=True)
            deadline = time.monotonic() + 10  # the pump hands everything over
            while shipper.counters.queued and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            report(step, delivered=ok)
        elif step == "deliver":
            ok = shipper.flush(120)
            report(step, delivered=ok)
        elif step == "wait":
            sys.stdin.readline()
        elif step == "hang":
            report(step)
            while True:
                time.sleep(1)
        elif step == "close":
            ok = shipper.close(timeout=30)
            report(step, delivered=ok)
    os._exit(0)  # no second close at exit


if __name__ == "__main__":
    main()
