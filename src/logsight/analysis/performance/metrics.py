"""Model quality metrics of joined predictions: classification (accuracy, F1, ROC-AUC,
calibration) and regression (MAE, RMSE, MAPE), and per-row losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from logsight.analysis.performance.labels import PROBA_PREFIX, Task, infer_task


# -- metrics ---------------------------------------------------------------------------------
@dataclass
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass
class ClassificationMetrics:
    n: int
    accuracy: float | None
    precision_macro: float | None
    recall_macro: float | None
    f1_macro: float | None
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    roc_auc: float | None = None
    ece: float | None = None
    brier: float | None = None
    reliability: list[ReliabilityBin] = field(default_factory=list)


@dataclass
class RegressionMetrics:
    n: int
    mae: float | None
    rmse: float | None
    mape: float | None  # over rows whose true value is not 0


def _proba_matrix(frame: pd.DataFrame) -> tuple[list[str], np.ndarray] | None:
    cols = [c for c in frame.columns if c.startswith(PROBA_PREFIX)]
    if not cols:
        return None
    classes = [c[len(PROBA_PREFIX):] for c in cols]
    m = frame[cols].to_numpy(dtype=float)
    if np.isnan(m).any():
        return None
    return classes, m


def classification_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    *,
    score: Sequence[float] | None = None,
    proba: tuple[list[str], np.ndarray] | None = None,
    n_bins: int = 10,
) -> ClassificationMetrics:
    """Accuracy, macro and per-class precision/recall/F1; ROC-AUC when probabilities exist
    (or, for two classes, from the predicted class's confidence ``score``); calibration: ECE
    and reliability bins on the confidence of the predicted class (equal-width ``n_bins``),
    Brier score on the class probabilities when present, else on confidence vs correctness."""
    yt = np.asarray([str(v) for v in y_true], dtype=object)
    yp = np.asarray([str(v) for v in y_pred], dtype=object)
    n = len(yt)
    if n == 0:
        return ClassificationMetrics(0, None, None, None, None)
    labels = sorted(set(yt) | set(yp))
    p, r, f, s = skm.precision_recall_fscore_support(
        yt, yp, labels=labels, average=None, zero_division=0
    )
    per_class = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
              "support": int(s[i])}
        for i, lab in enumerate(labels)
    }
    out = ClassificationMetrics(
        n=n,
        accuracy=float(np.mean(yt == yp)),
        precision_macro=float(np.mean(p)),
        recall_macro=float(np.mean(r)),
        f1_macro=float(np.mean(f)),
        per_class=per_class,
    )
    correct = (yt == yp).astype(float)
    conf: np.ndarray | None = None
    if proba is not None:
        classes, m = proba
        # ECE's confidence is the probability the model gave to the class it *predicted*; the
        # row maximum is only that when the prediction is the argmax (a thresholded or
        # cost-weighted decision need not be), so look the predicted class up, falling back
        # to the maximum only for a prediction outside the probability columns.
        col = {c: i for i, c in enumerate(classes)}
        pred_col = np.array([col.get(v, -1) for v in yp], dtype=int)
        conf = np.where(pred_col >= 0, m[np.arange(len(yp)), np.maximum(pred_col, 0)],
                        m.max(axis=1))
        onehot = (yt[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(float)
        out.brier = float(np.mean(np.sum((m - onehot) ** 2, axis=1)))
        present = set(yt)
        if len(present) >= 2 and present <= set(classes):
            try:
                if len(classes) == 2:
                    out.roc_auc = float(skm.roc_auc_score(yt == classes[1], m[:, 1]))
                else:
                    norm = m / np.where(m.sum(axis=1, keepdims=True) > 0,
                                        m.sum(axis=1, keepdims=True), 1.0)
                    out.roc_auc = float(skm.roc_auc_score(
                        yt, norm, multi_class="ovr", average="macro", labels=classes
                    ))
            except ValueError:
                out.roc_auc = None
    elif score is not None:
        conf = np.asarray(score, dtype=float)
        if np.isnan(conf).any():
            conf = None
        else:
            out.brier = float(np.mean((conf - correct) ** 2))
            if len(labels) == 2 and len(set(yt)) == 2:
                pos = labels[1]
                p_pos = np.where(yp == pos, conf, 1.0 - conf)
                out.roc_auc = float(skm.roc_auc_score(yt == pos, p_pos))
    if conf is not None:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
        ece = 0.0
        for b in range(n_bins):
            sel = idx == b
            cnt = int(sel.sum())
            mc = float(conf[sel].mean()) if cnt else None
            acc = float(correct[sel].mean()) if cnt else None
            if cnt:
                ece += cnt / n * abs(acc - mc)  # type: ignore[operator]  # both set when cnt
            out.reliability.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), cnt,
                                                  mc, acc))
        out.ece = float(ece)
    return out


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> RegressionMetrics:
    yt = np.asarray(y_true, dtype=float)
    yp = np.asarray(y_pred, dtype=float)
    ok = ~(np.isnan(yt) | np.isnan(yp))
    yt, yp = yt[ok], yp[ok]
    if not len(yt):
        return RegressionMetrics(0, None, None, None)
    err = yp - yt
    nz = yt != 0
    mape = float(np.mean(np.abs(err[nz] / yt[nz]))) if nz.any() else None
    return RegressionMetrics(
        n=len(yt), mae=float(np.mean(np.abs(err))), rmse=float(np.sqrt(np.mean(err**2))),
        mape=mape,
    )


def losses(joined: pd.DataFrame, task: Task) -> np.ndarray:
    """Per labelled row: 0/1 error (classification) or absolute error (regression)."""
    lab = joined[joined["labelled"]]
    if task == "classification":
        return (lab["prediction"].astype(str) != lab["label"].astype(str)).to_numpy(float)
    err = lab["prediction_value"].astype(float) - lab["label_value"].astype(float)
    return np.abs(err.to_numpy(float))


def evaluate(joined: pd.DataFrame, *, task: Task | None = None,
             n_bins: int = 10) -> ClassificationMetrics | RegressionMetrics:
    task = task or infer_task(joined)
    lab = joined[joined["labelled"]] if "labelled" in joined else joined
    if task == "regression":
        return regression_metrics(lab["label_value"], lab["prediction_value"])
    score = lab["score"] if "score" in lab and lab["score"].notna().all() else None
    return classification_metrics(
        lab["label"], lab["prediction"], score=score, proba=_proba_matrix(lab), n_bins=n_bins
    )
