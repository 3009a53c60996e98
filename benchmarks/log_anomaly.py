"""Window-level log anomaly detection on a labelled Loghub log, against a keyword baseline.

Usage::

    python benchmarks/log_anomaly.py --labeled-log ../shared/datasets/loghub-2k/BGL/BGL_2k.log

The first token of every line is its label (``-`` normal, anything else an alert, as in
``BGL_2k.log``). The label is cut off before anything else sees the line: the detector gets the
rest of the line only (parsed by the same raw-line reader as ``logsight logs anomalies
--input``). Lines are taken in order; windows are ``--window-lines`` consecutive lines when the
lines carry no ISO timestamp (Loghub's BGL lines do not), else ``--window`` time buckets. The
first ``--baseline`` share of the lines trains both methods; the remaining windows are scored.
A window is truly anomalous when at least one of its lines is an alert.

Baseline method (same windows): the share of lines holding an error keyword (error, fail,
fatal, exception, critical, panic, severe, abort, denied, refused, timeout, unable); a window is
flagged when its share exceeds a threshold. Two thresholds are printed: the rule one (median +
3 MAD of the training windows' shares, floored at 0) and the best threshold in hindsight (chosen
on the scored windows' labels: an upper bound no threshold rule can beat).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from logsight.analysis.logs import (
    LogAnomalyDetector,
    assign_windows,
    detect_log_anomalies,
    parse_window,
    prepare_frame,
    split_baseline,
)
from logsight.sources.logs import parse_raw_line

KEYWORDS = re.compile(
    r"\b(error|errors|fail|failed|failure|fatal|exception|critical|panic|severe|abort|aborted"
    r"|denied|refused|timeout|unable)\b",
    re.IGNORECASE,
)


def load_labeled(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    rows = []
    labels = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            label, _, rest = line.partition(" ")
            labels.append(label != "-")
            ts, level, message = parse_raw_line(rest)
            rows.append(
                {"id": f"line:{n}", "timestamp": ts, "service": path.stem, "level": level,
                 "message": message, "version": None}
            )
    return prepare_frame(pd.DataFrame(rows)), np.asarray(labels, dtype=bool)


def prf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(truth & pred))
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(truth.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled-log", required=True, type=Path)
    parser.add_argument("--window-lines", type=int, default=20)
    parser.add_argument("--window", default="1min")
    parser.add_argument("--baseline", type=float, default=0.5, help="training share of lines")
    parser.add_argument(
        "--contamination", default="auto", type=lambda v: v if v == "auto" else float(v)
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.labeled_log.is_file():
        print(f"no such file: {args.labeled_log}", file=sys.stderr)
        return 2
    frame, labels = load_labeled(args.labeled_log)
    delta = parse_window(args.window)

    t0 = time.perf_counter()
    det = LogAnomalyDetector(contamination=args.contamination, random_state=args.seed)
    result = detect_log_anomalies(
        frame, baseline=args.baseline, window=args.window, window_lines=args.window_lines,
        detector=det,
    )
    elapsed = time.perf_counter() - t0

    base_mask = split_baseline(frame, args.baseline, window=args.window)
    scored = frame[~base_mask].reset_index(drop=True)
    windows = assign_windows(scored, window=delta, window_lines=args.window_lines)
    keys = list(zip(scored["service"], windows, strict=True))
    truth_by_window = (
        pd.Series(labels[~base_mask], index=pd.MultiIndex.from_tuples(keys)).groupby(level=[0, 1])
        .any()
    )
    idx = result.features.index
    truth = truth_by_window.reindex(idx, fill_value=False).to_numpy(dtype=bool)
    pred = np.asarray(result.anomalous, dtype=bool)

    # the keyword baseline on the same windows and the same training share
    def keyword_rates(part: pd.DataFrame) -> pd.Series:
        w = assign_windows(part, window=delta, window_lines=args.window_lines)
        hit = np.array([KEYWORDS.search(m) is not None for m in part["message"]], dtype=bool)
        return pd.Series(hit, index=pd.MultiIndex.from_arrays([part["service"], w])).groupby(
            level=[0, 1]
        ).mean()

    train_rates = keyword_rates(frame[base_mask].reset_index(drop=True)).to_numpy()
    med = float(np.median(train_rates))
    threshold = med + 3 * 1.4826 * float(np.median(np.abs(train_rates - med)))
    test_rates = keyword_rates(scored).reindex(idx, fill_value=0.0).to_numpy()
    kw_pred = test_rates > threshold
    oracle = max(
        ((prf(truth, test_rates > t)[2], float(t)) for t in np.unique(np.r_[0.0, test_rates])),
        key=lambda x: x[0],
    )

    p, r, f = prf(truth, pred)
    bp, br, bf = prf(truth, kw_pred)
    print(f"windows={len(idx)} anomalous_windows={int(truth.sum())} "
          f"window_lines={args.window_lines} baseline_share={args.baseline}")
    print(f"logsight precision={p:.3f} recall={r:.3f} f1={f:.3f} "
          f"(lines/s={len(frame) / elapsed:.0f})")
    print(f"keyword-baseline precision={bp:.3f} recall={br:.3f} f1={bf:.3f} "
          f"(threshold={threshold:.3f})")
    op, orc, of = prf(truth, test_rates > oracle[1])
    print(f"keyword-baseline-best-threshold precision={op:.3f} recall={orc:.3f} f1={of:.3f} "
          f"(threshold={oracle[1]:.3f}, chosen on the labels)")
    print(f"f1 ratio logsight/keyword-baseline={f / bf:.2f}x" if bf > 0 else "baseline f1=0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
