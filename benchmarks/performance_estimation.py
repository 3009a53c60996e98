"""Accuracy estimation before labels (CBPE, logsight.analysis.performance.estimate) on a
simulated covariate shift with known true accuracy.

A logistic regression is fitted on a labelled reference (two features, the true relation is
logistic, so the fitted model is calibrated). Then, window after window, the inputs' mean moves
towards and past the decision boundary: the relation between inputs and labels does not change
(covariate shift), the true accuracy falls. Per window the script compares the estimate (no
labels used) with the realised accuracy, and reports the share of windows whose realised
accuracy lies in the estimate's band, and the mean absolute error of the estimate next to the
naive baseline "last known accuracy" (the reference's realised accuracy: labels are delayed).
NannyML is measured in the same run when it is importable (optional peer).

    python benchmarks/performance_estimation.py --windows 50 --rows 2000
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from logsight.analysis.performance import estimate as E

W = np.array([1.6, -0.9])
B = 0.3


def _data(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    # the boundary is W.x + B = 0; moving the mean along -W brings the inputs onto it
    x = rng.normal(0.0, 1.0, (n, 2)) + np.array([1.2, -0.6]) - shift * W / np.linalg.norm(W)
    p = 1.0 / (1.0 + np.exp(-(x @ W + B)))
    return x, (rng.random(n) < p).astype(int)


def _frame(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    proba = model.predict_proba(x)
    f = pd.DataFrame({"prediction": proba.argmax(axis=1).astype(str), "label": y.astype(str),
                      "model_version": "v1", "labelled": True})
    for k in range(proba.shape[1]):
        f[f"proba.{k}"] = proba[:, k]
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=50)
    ap.add_argument("--rows", type=int, default=2000, help="predictions per window")
    ap.add_argument("--reference", type=int, default=10000)
    ap.add_argument("--max-shift", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    xr, yr = _data(rng, a.reference, 0.0)
    model = LogisticRegression().fit(xr[: a.reference // 2], yr[: a.reference // 2])
    # the reference the estimate is calibrated on is the half the model did not see
    ref = _frame(model, xr[a.reference // 2:], yr[a.reference // 2:])
    last_known = float((ref["prediction"] == ref["label"]).mean())
    rows = []
    for shift in np.linspace(0.0, a.max_shift, a.windows):
        x, y = _data(rng, a.rows, float(shift))
        rep = E.estimate_report(_frame(model, x, y), reference=ref)
        (ve,) = rep.versions
        rows.append((float(shift), ve.realised, ve.estimate.estimate, ve.within_band))
    cal = rep.calibration
    real = np.array([r[1] for r in rows])
    est = np.array([r[2] for r in rows])
    within = np.mean([bool(r[3]) for r in rows])
    mae_est = float(np.mean(np.abs(est - real)))
    mae_naive = float(np.mean(np.abs(last_known - real)))
    ece = f"{cal.ece:.4f}" if cal is not None and cal.ece is not None else "-"
    print(f"windows {a.windows} x {a.rows} rows, shift 0..{a.max_shift} sd, reference "
          f"{len(ref)} rows (accuracy {last_known:.4f}, ECE {ece})")
    print(f"true accuracy from {real.max():.3f} down to {real.min():.3f}")
    print(f"logsight CBPE: within band (95%) {within:.1%} of windows; MAE {mae_est:.4f}")
    print(f"naive last known accuracy: MAE {mae_naive:.4f}; ratio naive/CBPE "
          f"{mae_naive / mae_est:.1f}x")
    try:
        import nannyml  # noqa: F401  # optional peer, only probed
    except ImportError:
        print("NannyML: not installed here (optional peer), not measured")
    else:
        print("NannyML: installed, but not wired into this script; not measured")


if __name__ == "__main__":
    main()
