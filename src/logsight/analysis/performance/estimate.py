"""Model accuracy before the labels arrive: confidence-based performance estimation (CBPE).

A calibrated classifier's probability for the class it predicted *is* the chance that the
prediction is right, so the expected accuracy of a window is the mean of those confidences,
and the realised accuracy of ``n`` independent predictions is a sum of Bernoulli(p_i)
variables: its standard deviation is ``sqrt(sum p_i (1 - p_i)) / n``. That gives the band
(``z`` standard deviations) the realised accuracy should fall in. The same holds for binary
and multiclass models (only the predicted class's probability is used).

The estimate is only as good as the calibration, so it is checked on a labelled reference
window with the expected calibration error (ECE); a poor calibration is reported next to the
estimate instead of silently trusted. Under covariate shift (inputs move, the relation
between inputs and labels does not) calibrated probabilities stay calibrated, which is why
the estimate follows the true accuracy; under concept shift no label-free method can."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.performance.labels import PROBA_PREFIX, _version_col
from logsight.findings import Finding

__all__ = [
    "AccuracyEstimate", "Calibration", "EstimateReport", "VersionEstimate", "calibration",
    "calibration_sd", "cbpe_accuracy", "estimate_findings", "estimate_report", "predicted_confidence",
]


@dataclass
class AccuracyEstimate:
    n: int
    estimate: float | None
    lower: float | None
    upper: float | None
    sd: float | None


@dataclass
class Calibration:
    n: int
    ece: float | None
    max_ece: float
    poor: bool


@dataclass
class VersionEstimate:
    version: str
    estimate: AccuracyEstimate
    realised: float | None = None  # accuracy over the labelled rows, once labels landed
    n_labelled: int = 0
    error: float | None = None  # estimate - realised
    within_band: bool | None = None
    drop: bool = False  # the band lies below the reference's realised accuracy


@dataclass
class EstimateReport:
    metric: str
    reference_accuracy: float | None
    reference_n: int
    calibration: Calibration | None
    versions: list[VersionEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cbpe_accuracy(confidence: Sequence[float] | np.ndarray, *, z: float = 1.96,
                  calibration_sd: float = 0.0) -> AccuracyEstimate:
    """Expected accuracy (mean confidence of the predicted class) and its ``z``-sd band of
    the realised accuracy, clipped to [0, 1]. NaN confidences are left out.
    ``calibration_sd``: how well the calibration itself is known (from a finite reference,
    :func:`calibration_sd`), added in quadrature to the window's sampling sd."""
    p = np.asarray(confidence, dtype=float)
    p = p[~np.isnan(p)]
    n = len(p)
    if n == 0:
        return AccuracyEstimate(0, None, None, None, None)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("confidences must lie in [0, 1]")
    est = float(p.mean())
    sd = float(np.sqrt(np.sum(p * (1.0 - p)) / n**2 + calibration_sd**2))
    return AccuracyEstimate(n, est, max(0.0, est - z * sd), min(1.0, est + z * sd), sd)


def calibration_sd(confidence: Sequence[float] | np.ndarray) -> float:
    """Standard error of the reference's accuracy-minus-mean-confidence gap under perfect
    calibration: the reference only shows the calibration up to that, and an estimate built
    on it carries that uncertainty into every window (without it the band covers only the
    window's own sampling and is too narrow by this systematic part)."""
    p = np.asarray(confidence, dtype=float)
    p = p[~np.isnan(p)]
    return float(np.sqrt(np.sum(p * (1.0 - p))) / len(p)) if len(p) else 0.0


def calibration(confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                *, n_bins: int = 10, max_ece: float = 0.05) -> Calibration:
    """ECE (equal-width bins) of the predicted class's confidence against correctness;
    ``poor`` when it exceeds ``max_ece`` (then the estimate's band is not to be trusted)."""
    p = np.asarray(confidence, dtype=float)
    c = np.asarray(correct, dtype=float)
    ok = ~np.isnan(p)
    p, c = p[ok], c[ok]
    n = len(p)
    if n == 0:
        return Calibration(0, None, max_ece, False)
    # the same bins as classification_metrics' ECE, so the two figures agree
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    gap = np.abs(np.bincount(idx, weights=c, minlength=n_bins)
                 - np.bincount(idx, weights=p, minlength=n_bins))
    # sum over bins of (count/n) * |acc - conf| == sum |sum correct - sum conf| / n
    ece = float(gap.sum() / n)
    return Calibration(n, ece, max_ece, ece > max_ece)


def predicted_confidence(frame: pd.DataFrame) -> np.ndarray | None:
    """Per row, the probability the model gave to the class it predicted: the ``proba.<class>``
    column of the prediction when present, else ``score``; None when neither is complete."""
    if frame.empty:
        return np.zeros(0)
    cols = [c for c in frame.columns if c.startswith(PROBA_PREFIX)]
    if cols and "prediction" in frame:
        m = frame[cols].to_numpy(dtype=float)
        classes = np.asarray([c[len(PROBA_PREFIX):] for c in cols], dtype=object)
        pred = frame["prediction"].astype(str).to_numpy(dtype=object)
        hit = pred[:, None] == classes[None, :]
        if not np.isnan(m).any() and hit.any(axis=1).all():
            return np.asarray(m[np.arange(len(m)), hit.argmax(axis=1)], dtype=float)
    if "score" in frame:
        s = frame["score"].to_numpy(dtype=float)
        if not np.isnan(s).any():
            return s
    return None


def _correct(frame: pd.DataFrame) -> np.ndarray:
    return (frame["prediction"].astype(str) == frame["label"].astype(str)).to_numpy(bool)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    if "labelled" in frame:
        return frame[frame["labelled"].astype(bool)]
    return frame


def estimate_report(joined: pd.DataFrame, *, reference: pd.DataFrame | None = None,
                    z: float = 1.96, n_bins: int = 10, max_ece: float = 0.05,
                    min_rows: int = 30) -> EstimateReport:
    """CBPE accuracy per model version of ``joined`` (predictions, labelled or not), with the
    realised accuracy next to it where labels exist; the reference window (labelled) gives
    the calibration check and the accuracy a version's estimate is compared against
    (``drop`` when the whole band lies below it). Versions with fewer than ``min_rows``
    predictions are estimated but never flagged."""
    rep = EstimateReport("accuracy", None, 0, None)
    cal_sd = 0.0
    if reference is not None and len(reference):
        lab = _labelled(reference)
        conf = predicted_confidence(lab) if len(lab) else None
        if len(lab):
            rep.reference_n = len(lab)
            rep.reference_accuracy = float(_correct(lab).mean())
        if conf is not None and len(lab):
            rep.calibration = calibration(conf, _correct(lab), n_bins=n_bins, max_ece=max_ece)
            cal_sd = calibration_sd(conf)
            if rep.calibration.poor:
                rep.notes.append(
                    f"probabilities are poorly calibrated on the reference (ECE "
                    f"{rep.calibration.ece:.3f} > {max_ece}): the estimate and its band are "
                    "not reliable; recalibrate the model (e.g. isotonic or Platt scaling)")
        elif len(lab):
            rep.notes.append("the reference has no class probabilities or scores: "
                             "calibration not checked")
        else:
            rep.notes.append("the reference window has no labels yet: calibration not "
                             "checked, no drop check")
    else:
        rep.notes.append("no labelled reference window: calibration not checked, no drop check")
    if joined.empty:
        return rep
    versions = _version_col(joined)
    for v in sorted(versions.unique()):
        part = joined[versions == v]
        conf = predicted_confidence(part)
        if conf is None:
            rep.notes.append(f"version {v}: no class probabilities or scores, no estimate")
            continue
        ve = VersionEstimate(v, cbpe_accuracy(conf, z=z, calibration_sd=cal_sd))
        lab = _labelled(part)
        if len(lab) and "label" in lab:
            ve.n_labelled = len(lab)
            ve.realised = float(_correct(lab).mean())
            # the error is tracked on the rows that have labels (the estimate over exactly
            # those rows), so a window whose labels are still arriving is compared fairly
            lab_conf = predicted_confidence(lab)
            if lab_conf is not None:
                on_lab = cbpe_accuracy(lab_conf, z=z, calibration_sd=cal_sd)
                if on_lab.estimate is not None and on_lab.lower is not None \
                        and on_lab.upper is not None:
                    ve.error = on_lab.estimate - ve.realised
                    ve.within_band = bool(on_lab.lower <= ve.realised <= on_lab.upper)
        calibrated = rep.calibration is None or not rep.calibration.poor
        ve.drop = bool(rep.reference_accuracy is not None and ve.estimate.upper is not None
                       and ve.estimate.n >= min_rows and calibrated
                       and ve.estimate.upper < rep.reference_accuracy)
        rep.versions.append(ve)
    return rep


def estimate_findings(rep: EstimateReport, *, model: str, window_start: Any, window_end: Any,
                      service: str | None = None, namespace: str | None = None
                      ) -> list[Finding]:
    """``estimated_performance_drop`` per version whose estimated accuracy band lies wholly
    below the reference's realised accuracy (the labels need not have landed)."""
    out: list[Finding] = []
    for v in rep.versions:
        e = v.estimate
        if not v.drop or e.estimate is None or rep.reference_accuracy is None:
            continue
        drop = rep.reference_accuracy - e.estimate
        realised = ("no labels yet" if v.realised is None
                    else f"realised {v.realised:.4g} on {v.n_labelled} labels")
        out.append(Finding(
            kind="estimated_performance_drop",
            title=f"{model} {v.version}: estimated accuracy below the reference's",
            summary=(f"estimated accuracy {e.estimate:.4g} [{e.lower:.4g}, {e.upper:.4g}] "
                     f"(CBPE, {e.n} predictions; {realised}) vs {rep.reference_accuracy:.4g} "
                     f"realised on the reference ({rep.reference_n} labels)"),
            severity="high" if drop >= 0.1 else "medium",
            score=float(drop),
            service=service,
            subject=v.version,
            model=model,
            model_version=v.version,
            window_start=window_start,
            window_end=window_end,
            evidence={"estimate": asdict(v), "reference_accuracy": rep.reference_accuracy,
                      "calibration": asdict(rep.calibration) if rep.calibration else None},
            namespace=namespace,
        ))
    return out
