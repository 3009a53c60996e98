"""Regression quality before the labels arrive: direct loss estimation (DLE).

A second model learns, on a labelled reference, the loss the monitored model makes as a
function of what is known without labels (its prediction and the numeric input features);
on a window without labels, the mean of the predicted losses estimates the MAE (absolute
loss) and the square root of the mean predicted squared loss the RMSE. Like CBPE it follows
covariate shift (the loss model sees the inputs move) but not concept shift."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from logsight.analysis.performance.labels import _version_col

__all__ = ["DirectLossEstimator", "LossEstimate", "LossReport", "VersionLoss", "loss_report"]

FEATURE_PREFIX = "feature."


@dataclass
class LossEstimate:
    n: int
    mae: float | None
    rmse: float | None


class DirectLossEstimator(BaseEstimator):
    """Fit on a labelled reference frame (``prediction_value``, ``label_value``, optional
    numeric ``feature.<name>`` columns); :meth:`estimate` a window's MAE and RMSE from its
    predictions alone."""

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.1,
                 min_samples_leaf: int = 20, random_state: int | None = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _x(self, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
        missing = [c for c in columns if c not in frame]
        if missing:
            raise ValueError(f"the frame lacks the columns the loss model was fitted on: "
                             f"{missing}")
        return frame[columns].to_numpy(dtype=float)

    def _model(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state)

    def fit(self, reference: pd.DataFrame, y: Any = None) -> DirectLossEstimator:
        feats = [c for c in reference.columns if c.startswith(FEATURE_PREFIX)
                 and pd.api.types.is_numeric_dtype(reference[c])]
        self.columns_ = ["prediction_value", *sorted(feats)]
        ok = reference["label_value"].notna() & reference["prediction_value"].notna()
        ref = reference[ok]
        if len(ref) < 2:
            raise ValueError("the reference needs labelled predictions to fit the loss model")
        x = self._x(ref, self.columns_)
        err = ref["prediction_value"].to_numpy(float) - ref["label_value"].to_numpy(float)
        self.abs_model_ = self._model().fit(x, np.abs(err))
        self.sq_model_ = self._model().fit(x, err**2)
        return self

    def estimate(self, frame: pd.DataFrame) -> LossEstimate:
        check_is_fitted(self, "abs_model_")
        if frame.empty:
            return LossEstimate(0, None, None)
        x = self._x(frame, self.columns_)
        # a loss is never negative; the boosted trees may undershoot 0 near a perfect fit
        mae = float(np.mean(np.clip(self.abs_model_.predict(x), 0.0, None)))
        mse = float(np.mean(np.clip(self.sq_model_.predict(x), 0.0, None)))
        return LossEstimate(len(frame), mae, float(np.sqrt(mse)))


@dataclass
class VersionLoss:
    version: str
    estimate: LossEstimate
    realised_mae: float | None = None  # over the labelled rows, once labels landed
    realised_rmse: float | None = None
    n_labelled: int = 0


@dataclass
class LossReport:
    metric: str
    reference_mae: float | None
    reference_n: int
    versions: list[VersionLoss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loss_report(joined: pd.DataFrame, *, reference: pd.DataFrame | None,
                random_state: int | None = 0) -> LossReport:
    """DLE per model version of ``joined``, the loss model fitted on the labelled rows of
    ``reference``; the realised MAE/RMSE next to the estimate where labels exist. No finding
    is derived from it (the estimate has no band yet): it is for reading next to the
    realised values."""
    rep = LossReport("mae", None, 0)
    lab_ref = reference[reference["labelled"].astype(bool)] if reference is not None \
        and len(reference) and "labelled" in reference else reference
    if lab_ref is None or len(lab_ref) < 2 or "label_value" not in lab_ref:
        rep.notes.append("no labelled reference window: no loss model, no estimate (DLE)")
        return rep
    rep.reference_n = len(lab_ref)
    ref_err = lab_ref["prediction_value"].astype(float) - lab_ref["label_value"].astype(float)
    rep.reference_mae = float(np.mean(np.abs(ref_err)))
    # only the inputs both windows have: a feature the window lacks cannot be a predictor
    gone = [c for c in lab_ref.columns if c.startswith(FEATURE_PREFIX) and c not in joined]
    dle = DirectLossEstimator(random_state=random_state).fit(lab_ref.drop(columns=gone))
    if joined.empty:
        return rep
    versions = _version_col(joined)
    for v in sorted(versions.unique()):
        part = joined[versions == v]
        vl = VersionLoss(v, dle.estimate(part))
        lab = part[part["labelled"].astype(bool)] if "labelled" in part else part
        if len(lab) and "label_value" in lab:
            err = lab["prediction_value"].astype(float) - lab["label_value"].astype(float)
            vl.n_labelled = len(lab)
            vl.realised_mae = float(np.mean(np.abs(err)))
            vl.realised_rmse = float(np.sqrt(np.mean(err**2)))
        rep.versions.append(vl)
    return rep
