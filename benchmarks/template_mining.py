"""Template mining benchmark: GA, PA, FGA, FTA and throughput of logsight's miner vs Drain3.

Usage::

    python benchmarks/template_mining.py --loghub ../shared/datasets/loghub-2k

DIR has the Loghub-2k layout (``SYSTEM/SYSTEM_2k.log_structured.csv``); the Loghub-2.0
corrected labels (``*_structured_corrected.csv``) are read instead when present. Both miners get
the ``Content`` column only, with one configuration for every system (Drain3 with its defaults,
as installed by ``pip install drain3``). The measures (GA, PA, FGA, FTA) are defined in
``logsight.analysis.templates.accuracy``; a line's predicted group and template are its
cluster's once the whole sample is mined, for both miners (for logsight, a cluster later merged
into another counts as that one: ``TemplateMiner.final_ids``).

Throughput: lines per second over all systems, best of ``--repeat`` passes of mining every system
from scratch, for ``add_many`` (batches, what the analyses use), one-line ``add()`` and Drain3's
``add_log_message``, taking turns within each pass; the ratios to Drain3 come from the same run.
Times are this process's CPU time (single-threaded work: the same as wall time on an idle
machine, and not inflated by other processes on a shared one).

Ingest agreement: with ``LOGSIGHT_URL`` set (or ``--url``), every line of every system also goes
through the logs ingest pipeline of this checkout (``_ingest/pipeline/_simulate``, nothing is
indexed) and the benchmark reports the share whose ``logsight.template``/``template_id`` equals
the Python masking's; without an engine it says it skipped that.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from logsight.analysis.templates import TemplateMiner
from logsight.analysis.templates.accuracy import Accuracy, LabelledLog, accuracy, load_loghub

Parse = tuple[list[int], list[str]]  # per line: cluster id, final template


def run_logsight(lines: list[str]) -> Parse:
    miner = TemplateMiner()
    # final_ids: templates merged after some of their lines arrived answer with one id
    ids = miner.final_ids(miner.add_many(lines))
    final = miner.templates()
    return ids, [final[i] for i in ids]


def run_logsight_per_line(lines: list[str]) -> Parse:
    miner = TemplateMiner()
    ids = miner.final_ids([miner.add(line).cluster_id for line in lines])
    final = miner.templates()
    return ids, [final[i] for i in ids]


def run_drain3(lines: list[str]) -> Parse:
    from drain3 import TemplateMiner as Drain3Miner  # the peer; installed for benchmarks only
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = Drain3Miner(config=config)
    ids = [int(miner.add_log_message(line)["cluster_id"]) for line in lines]
    final = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return ids, [final[i] for i in ids]


def measure(
    miners: dict[str, Callable[[list[str]], Parse]], logs: list[LabelledLog], repeat: int
) -> dict[str, tuple[list[Accuracy], float]]:
    """Per miner: accuracy per system and lines/s over all systems, the best of ``repeat``
    full passes. The miners take turns within each pass, so a busy machine slows them alike
    and the ratios stay meaningful."""
    best = dict.fromkeys(miners, float("inf"))
    parses: dict[str, list[Parse]] = {}
    for _ in range(repeat):
        for name, fn in miners.items():
            # CPU time of this process: on a shared machine wall time mostly measures the
            # neighbours (the work is single-threaded, so on an idle machine the two agree)
            t0 = time.process_time()
            parses[name] = [fn(log.messages) for log in logs]
            best[name] = min(best[name], time.process_time() - t0)
    total = sum(len(log.messages) for log in logs)
    out: dict[str, tuple[list[Accuracy], float]] = {}
    for name in miners:
        scores = [
            accuracy(log.true_ids, log.true_templates, ids, tpls)
            for log, (ids, tpls) in zip(logs, parses[name], strict=True)
        ]
        out[name] = (scores, total / best[name] if best[name] > 0 else float("inf"))
    return out


def _row(name: str, a: Accuracy) -> str:
    return (f"{name:<12} GA={a.ga:.3f} PA={a.pa:.3f} FGA={a.fga:.3f} FTA={a.fta:.3f} "
            f"templates={a.predicted_templates}/{a.true_templates}")


def _report(miner: str, logs: list[LabelledLog], scores: list[Accuracy]) -> None:
    print(f"-- {miner}")
    for log, a in zip(logs, scores, strict=True):
        print(_row(f"{miner} {log.system}" if miner != "logsight" else log.system, a))
    k = len(scores)
    print(f"{miner} mean GA={sum(a.ga for a in scores) / k:.3f} "
          f"PA={sum(a.pa for a in scores) / k:.3f} FGA={sum(a.fga for a in scores) / k:.3f} "
          f"FTA={sum(a.fta for a in scores) / k:.3f}")


def ingest_agreement(url: str | None, logs: list[LabelledLog]) -> None:
    if not url:
        print("ingest agreement: skipped (no engine: set LOGSIGHT_URL or pass --url)")
        return
    from logsight.assets.template_agreement import agreement
    from logsight.engine import connect

    engine = connect(url)
    total = same = 0
    for log in logs:
        a = agreement(engine, log.messages)
        total += a.lines
        same += a.same
        print(f"ingest agreement {log.system}: {a.same}/{a.lines} = {a.share:.4f}")
        for line, got, want in a.examples:
            print(f"   line: {line[:160]!r}\n   ingest: {got[:160]!r}\n   python: {want[:160]!r}")
    print(f"ingest agreement all: {same}/{total} = {same / total if total else 1.0:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--loghub", required=True, type=Path, help="Loghub-2k directory")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes (best is kept)")
    parser.add_argument("--no-drain3", action="store_true", help="skip the peer")
    parser.add_argument("--url", default=os.environ.get("LOGSIGHT_URL"),
                        help="engine for the ingest agreement (default LOGSIGHT_URL)")
    args = parser.parse_args(argv)
    logs = load_loghub(args.loghub)
    if not logs:
        print(f"no */*_2k.log_structured.csv under {args.loghub}", file=sys.stderr)
        return 2
    peer = not args.no_drain3
    if peer:
        try:
            import drain3  # noqa: F401  (only checks that the peer is installed)
        except ImportError:
            print("drain3 is not installed (pip install drain3); use --no-drain3", file=sys.stderr)
            return 2
    labels = sorted({"corrected" if log.corrected else "original" for log in logs})
    print(f"{len(logs)} systems, labels: {', '.join(labels)}")
    miners: dict[str, Callable[[list[str]], Parse]] = {
        "logsight": run_logsight, "logsight add()": run_logsight_per_line}
    if peer:
        miners["drain3"] = run_drain3
    results = measure(miners, logs, args.repeat)
    ours, rate = results["logsight"]
    _report("logsight", logs, ours)
    rate_one = results["logsight add()"][1]
    print(f"logsight lines/s add_many={rate:.0f} add()={rate_one:.0f}")
    if peer:
        theirs, d_rate = results["drain3"]
        _report("drain3", logs, theirs)
        print(f"drain3 lines/s={d_rate:.0f}")
        print(f"throughput ratio logsight/drain3: add_many {rate / d_rate:.2f}x, "
              f"add() {rate_one / d_rate:.2f}x")
    ingest_agreement(args.url, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
