"""Drift speed: 20 numeric features, N reference rows vs N current rows, on one core.

Times logsight's raw-row comparison (``drift.compare``: KS, PSI, JS and Wasserstein for every
feature) and the profile path (``build_profile`` once + ``summarize_current`` +
``compare_profile``), then Evidently's data-drift preset on the same frames in the same run,
and prints the ratio. Goal: logsight under 2 s at N = 1,000,000.

    pip install evidently   # only for this benchmark
    python benchmarks/drift.py [--rows 1000000] [--evidently-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import time

# one core: pin the process before numpy / BLAS start their thread pools
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402  # after the thread settings above
import pandas as pd  # noqa: E402  # after the thread settings above

from logsight.analysis import drift as D  # noqa: E402  # after the thread settings above


def frames(rows: int, features: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(features)})
    # every other feature shifted a little, so the tests have something to find
    cur = pd.DataFrame({f"f{i}": rng.normal(0.5 * (i % 2), 1.0, size=rows)
                        for i in range(features)})
    return ref, cur


def best_of(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> float:
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ImportError:  # evidently < 0.7
        from evidently.metric_preset import DataDriftPreset  # type: ignore[no-redef]  # old API
        from evidently.report import Report  # type: ignore[no-redef]  # old API

        t = time.perf_counter()
        Report(metrics=[DataDriftPreset()]).run(reference_data=ref, current_data=cur)
        return time.perf_counter() - t
    t = time.perf_counter()
    Report([DataDriftPreset()]).run(cur, ref)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--evidently-rows", type=int, default=None,
                    help="rows for Evidently (default: same as --rows)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    ref, cur = frames(args.rows, args.features, seed=0)
    print(f"{args.features} numeric features, {args.rows:,} reference vs {args.rows:,} current "
          f"rows, 1 core")
    t_raw, res = best_of(lambda: D.compare(ref, cur), args.repeat)
    drifted = D.drifted_features(res)  # type: ignore[arg-type]  # list[FeatureDrift]
    print(f"logsight compare (raw rows, KS+PSI+JS+Wasserstein): {t_raw:.3f} s "
          f"({len(drifted)} drifted)")
    t_prof, prof = best_of(lambda: D.build_profile(ref), 1)
    t_cmp, _ = best_of(lambda: D.compare_profile(
        prof, D.summarize_current(prof, cur)), args.repeat)  # type: ignore[arg-type]  # profile
    print(f"logsight profile: build once {t_prof:.3f} s, then current vs profile {t_cmp:.3f} s")

    ev_rows = args.evidently_rows or args.rows
    try:
        import evidently

        version = getattr(evidently, "__version__", "?")
    except ImportError:
        print("evidently not installed: pip install evidently")
        return
    if ev_rows == args.rows:
        eref, ecur = ref, cur
    else:
        eref, ecur = frames(ev_rows, args.features, seed=0)
    t_ev = run_evidently(eref, ecur)
    print(f"evidently {version} DataDriftPreset at {ev_rows:,} rows: {t_ev:.3f} s")
    if ev_rows == args.rows:
        print(f"ratio evidently / logsight raw: {t_ev / t_raw:.1f}x")
    else:
        t_small, _ = best_of(lambda: D.compare(eref, ecur), args.repeat)
        print(f"logsight compare at {ev_rows:,} rows: {t_small:.3f} s; "
              f"ratio evidently / logsight: {t_ev / t_small:.1f}x (same size)")
    print(f"goal < 2 s for logsight at 1M rows: {'met' if t_raw < 2 else 'NOT met'} "
          f"({t_raw:.3f} s at {args.rows:,} rows)")


if __name__ == "__main__":
    main()
