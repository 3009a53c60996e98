"""Template mining benchmark: grouping accuracy and throughput of logsight's miner vs Drain3.

Usage::

    python benchmarks/template_mining.py --loghub ../shared/datasets/loghub-2k

DIR has the Loghub-2k layout (``SYSTEM/SYSTEM_2k.log_structured.csv``). Both miners get the
``Content`` column only, with one configuration for every system (Drain3 with its defaults, as
installed by ``pip install drain3``). GA (grouping accuracy): a line is correct when the set of
lines sharing its predicted template equals the set sharing its ground-truth ``EventId``.
Throughput is the best of ``--repeat`` runs of mining all lines of a system from scratch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from logsight.analysis.templates import TemplateMiner


def grouping_accuracy(truth: Sequence[object], predicted: Sequence[object]) -> float:
    """Share of lines whose predicted group is exactly their ground-truth group."""
    frame = pd.DataFrame({"t": list(truth), "p": list(predicted)})
    if frame.empty:
        return 0.0
    # a predicted group is correct when it maps to one truth group and covers all of it
    pairs = frame.groupby(["p", "t"]).size().rename("n").reset_index()
    truth_sizes = frame.groupby("t").size()
    pred_sizes = frame.groupby("p").size()
    ok = pairs[
        (pairs["n"].to_numpy() == pred_sizes.loc[pairs["p"]].to_numpy())
        & (pairs["n"].to_numpy() == truth_sizes.loc[pairs["t"]].to_numpy())
    ]
    return float(ok["n"].sum()) / len(frame)


def run_logsight(lines: list[str]) -> list[int]:
    return TemplateMiner().add_many(lines)


def run_logsight_per_line(lines: list[str]) -> list[int]:
    miner = TemplateMiner()
    return [miner.add(line).cluster_id for line in lines]


def run_drain3(lines: list[str]) -> list[int]:
    from drain3 import TemplateMiner as Drain3Miner  # the peer; installed for benchmarks only
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = Drain3Miner(config=config)
    return [int(miner.add_log_message(line)["cluster_id"]) for line in lines]


def measure(
    fn: Callable[[list[str]], list[int]], lines: list[str], repeat: int
) -> tuple[list[int], float]:
    best = float("inf")
    result: list[int] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(lines)
        best = min(best, time.perf_counter() - t0)
    return result, len(lines) / best if best > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", required=True, type=Path, help="Loghub-2k directory")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per system (best)")
    parser.add_argument("--no-drain3", action="store_true", help="skip the peer")
    args = parser.parse_args(argv)
    files = sorted(args.loghub.glob("*/*_2k.log_structured.csv"))
    if not files:
        print(f"no */*_2k.log_structured.csv under {args.loghub}", file=sys.stderr)
        return 2
    peer = not args.no_drain3
    if peer:
        try:
            import drain3  # noqa: F401  (only checks that the peer is installed)
        except ImportError:
            print("drain3 is not installed (pip install drain3); use --no-drain3", file=sys.stderr)
            return 2
    ours: list[tuple[float, float]] = []
    per_line: list[float] = []
    theirs: list[tuple[float, float]] = []
    for path in files:
        system = path.name.removesuffix("_2k.log_structured.csv")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        lines = frame["Content"].tolist()
        truth = frame["EventId"].tolist()
        pred, rate = measure(run_logsight, lines, args.repeat)
        ga = grouping_accuracy(truth, pred)
        ours.append((ga, rate))
        print(f"{system} GA={ga:.3f} lines/s={rate:.0f}")
        per_line.append(measure(run_logsight_per_line, lines, args.repeat)[1])
        if peer:
            pred, rate = measure(run_drain3, lines, args.repeat)
            theirs.append((grouping_accuracy(truth, pred), rate))
    avg_ga = sum(g for g, _ in ours) / len(ours)
    avg_rate = sum(r for _, r in ours) / len(ours)
    if peer:
        print("-- drain3 (defaults), same run")
        for path, (ga, rate) in zip(files, theirs, strict=True):
            system = path.name.removesuffix("_2k.log_structured.csv")
            print(f"drain3 {system} GA={ga:.3f} lines/s={rate:.0f}")
        d_ga = sum(g for g, _ in theirs) / len(theirs)
        d_rate = sum(r for _, r in theirs) / len(theirs)
        print(f"drain3 average GA={d_ga:.3f} lines/s={d_rate:.0f}")
        print(f"throughput ratio logsight/drain3={avg_rate / d_rate:.2f}x (add_many batches)")
        p_rate = sum(per_line) / len(per_line)
        print(f"logsight one-line-at-a-time add() lines/s={p_rate:.0f} "
              f"ratio/drain3={p_rate / d_rate:.2f}x")
    print(f"average GA={avg_ga:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
