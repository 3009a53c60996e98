"""Regression quality before the labels arrive: direct loss estimation (DLE).

A second model learns, on a labelled reference, the loss the monitored model makes as a
function of what is known without labels (its prediction and the numeric input features);
on a window without labels, the mean of the predicted losses estimates the MAE (absolute
loss) and the square root of the mean predicted squared loss the RMSE. Like CBPE it follows
covariate shift (the loss model sees the inputs move) but not concept shift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

__all__ = ["DirectLossEstimator", "LossEstimate"]

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
