"""Drift decision quality of logsight's default rules: false alarms and detection power.

Each pair is a reference and a current frame of ``n`` rows with one numeric feature ``x``
(standard normal) and one categorical feature ``c`` (4 categories, shares 40/30/20/10 %),
compared with ``drift.compare`` and the default ``DriftConfig`` (size-aware presets, BH across
the two features). Scenarios:

* ``none``: no drift; the false-alarm rate is the share of pairs where *any* feature drifted;
* ``mean +0.1/0.25/0.5 sd``: ``x`` shifted;
* ``var x1.2/x1.4``: ``x``'s variance multiplied;
* ``cat +10/+15 pt``: the first category's share raised by 10 / 15 points (the others scaled
  down in proportion);

for the shifted scenarios the detection rate is the share of pairs where the shifted feature
drifted. Goals (issue 16): false alarms <= 5 % at every n, detection >= Evidently's at every
cell, 100 % at 0.25 sd from n = 5,000.

Evidently's defaults (``DataDriftPreset``: K-S / chi-square p < 0.05 while the reference has
<= 1,000 rows, normed Wasserstein / Jensen-Shannon >= 0.1 above, no multiple-testing
correction) run on the same pairs in the same run when Evidently imports (it needs pandas < 3:
use the separate environment of benchmarks/README.md); it is slow per report, so it gets
``--evidently-pairs`` pairs per cell (the first ones of logsight's, same seeds).

    python benchmarks/drift_power.py [--pairs 200] [--large-pairs 100] [--sizes 500,5000,50000]
                                     [--evidently-pairs 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from logsight.analysis import drift as D

CAT_SHARES = np.array([0.4, 0.3, 0.2, 0.1])
CATS = np.array(["a", "b", "c", "d"])


def _cat(rng: np.random.Generator, n: int, boost: float = 0.0) -> np.ndarray:
    p = CAT_SHARES.copy()
    p[1:] *= (1.0 - p[0] - boost) / p[1:].sum()
    p[0] += boost
    return CATS[rng.choice(len(CATS), size=n, p=p)]


Shift = Callable[[np.random.Generator, int], pd.DataFrame]


def _frame(x: np.ndarray, c: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"x": x, "c": c})


SCENARIOS: dict[str, tuple[str | None, Shift]] = {
    "none": (None, lambda g, n: _frame(g.normal(size=n), _cat(g, n))),
    "mean +0.1 sd": ("x", lambda g, n: _frame(g.normal(0.1, 1.0, n), _cat(g, n))),
    "mean +0.25 sd": ("x", lambda g, n: _frame(g.normal(0.25, 1.0, n), _cat(g, n))),
    "mean +0.5 sd": ("x", lambda g, n: _frame(g.normal(0.5, 1.0, n), _cat(g, n))),
    "var x1.2": ("x", lambda g, n: _frame(g.normal(0, np.sqrt(1.2), n), _cat(g, n))),
    "var x1.4": ("x", lambda g, n: _frame(g.normal(0, np.sqrt(1.4), n), _cat(g, n))),
    "cat +10 pt": ("c", lambda g, n: _frame(g.normal(size=n), _cat(g, n, 0.10))),
    "cat +15 pt": ("c", lambda g, n: _frame(g.normal(size=n), _cat(g, n, 0.15))),
}


Decide = Callable[[pd.DataFrame, pd.DataFrame], tuple[dict[str, bool], set[str]]]


def logsight_decide(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[dict[str, bool], set[str]]:
    out = D.compare(ref, cur)
    return {r.feature: r.drifted for r in out}, {f"{r.type[:3]}:{r.test}/{r.rule}" for r in out}


def evidently_decide() -> Decide | None:
    """Evidently's default per-column decision, or None when it does not import."""
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ImportError:
        return None

    def decide(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[dict[str, bool], set[str]]:
        snap = Report([DataDriftPreset()]).run(cur, ref)
        out, used = {}, set()
        for m in snap.dict()["metrics"]:
            cfg = m.get("config", {})
            if cfg.get("type", "").endswith("ValueDrift"):
                method, th, v = cfg["method"], float(cfg["threshold"]), float(m["value"])
                # Evidently: a p-value drifts below its threshold, a distance at or above it
                out[cfg["column"]] = v < th if "p_value" in method else v >= th
                used.add(method)
        return out, used

    return decide


def rate(n: int, pairs: int, scenario: str, seed: int, decide: Decide = logsight_decide
         ) -> tuple[float, str]:
    """(share of pairs flagged, the rules that decided) for one scenario at size ``n``."""
    feature, make = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    hits, rules = 0, set()
    for _ in range(pairs):
        ref = SCENARIOS["none"][1](rng, n)
        out, used = decide(ref, make(rng, n))
        rules |= used
        hits += any(out.values()) if feature is None else out[feature]
    return hits / pairs, ",".join(sorted(rules))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200, help="pairs per cell (n < 50,000)")
    ap.add_argument("--large-pairs", type=int, default=100,
                    help="pairs per cell at n >= 50,000 (fewer to keep the run short)")
    ap.add_argument("--sizes", default="500,5000,50000")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--evidently-pairs", type=int, default=50,
                    help="pairs per cell for Evidently (0: skip it)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    evidently = evidently_decide() if args.evidently_pairs > 0 else None
    t0 = time.perf_counter()
    width = 30 if evidently is not None else 15
    print(f"{'scenario':<15}" + "".join(f"{'n=' + format(n, ','):>{width}}" for n in sizes))
    rules: dict[int, set[str]] = {n: set() for n in sizes}
    ev_rules: dict[int, set[str]] = {n: set() for n in sizes}
    for i, scenario in enumerate(SCENARIOS):
        cells = []
        for j, n in enumerate(sizes):
            pairs = args.large_pairs if n >= 50_000 else args.pairs
            r, used = rate(n, pairs, scenario, args.seed + 100 * i + j)
            cell = f"{100 * r:5.1f}% ({pairs})"
            if evidently is not None:
                ep = min(pairs, args.evidently_pairs)
                e, eused = rate(n, ep, scenario, args.seed + 100 * i + j, evidently)
                cell += f" ev {100 * e:5.1f}% ({ep})"
                ev_rules[n].add(eused)
            cells.append(cell)
            rules[n].add(used)
        label = "false alarms" if scenario == "none" else "detected"
        print(f"{scenario:<15}" + "".join(f"{c:>{width}}" for c in cells) + f"   {label}")
    print("logsight rules (type:test/rule): " + "; ".join(
        f"n={n:,}: {' '.join(sorted(rules[n]))}" for n in sizes))
    if evidently is not None:
        print("Evidently methods: " + "; ".join(
            f"n={n:,}: {' '.join(sorted(ev_rules[n]))}" for n in sizes))
    peer = ("Evidently's defaults after 'ev' (fewer pairs, the first of logsight's)"
            if evidently is not None else
            "Evidently: not run (not installed here; see benchmarks/README.md)")
    print(f"logsight defaults; pairs per cell in parentheses; {peer}; "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
