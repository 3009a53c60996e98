"""Predictions joined with their (late) feedback, the task they are (classification or
regression), and the checks that the labels fit the task asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd

from logsight.errors import BadRequest

PROBA_PREFIX = "proba."


Task = Literal["classification", "regression"]


# -- join ------------------------------------------------------------------------------------
def join_feedback(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Left join of predictions with their feedback by ``request_id``; the latest feedback per
    request wins (a corrected label replaces the first one). Adds ``labelled`` and
    ``feedback_timestamp``; never mutates its inputs."""
    if "request_id" not in predictions:
        raise ValueError("predictions need a 'request_id' column")
    preds = predictions.drop_duplicates("request_id", keep="last")
    label_cols = [c for c in ("label", "label_value") if c in feedback]
    if feedback.empty or not label_cols:
        out = preds.copy()
        out["labelled"] = False
        return out
    fb = feedback
    if "timestamp" in fb:
        fb = fb.sort_values("timestamp", kind="stable")
    fb = fb.drop_duplicates("request_id", keep="last")
    keep = ["request_id", *label_cols] + (["timestamp"] if "timestamp" in fb else [])
    fb = fb[keep].rename(columns={"timestamp": "feedback_timestamp"})
    out = preds.drop(columns=[c for c in label_cols if c in preds]).merge(
        fb, on="request_id", how="left"
    )
    has = pd.Series(False, index=out.index)
    for c in label_cols:
        has |= out[c].notna()
    out["labelled"] = has
    return out


def infer_task(frame: pd.DataFrame) -> Task:
    if "label" in frame and frame["label"].notna().any() and "prediction" in frame:
        return "classification"
    if "label_value" in frame and frame["label_value"].notna().any():
        return "regression"
    return "classification"


class TaskMismatch(BadRequest):
    """The task asked for does not fit the labels: regression needs numeric labels and
    predictions (``label_value``, ``prediction_value``), classification class labels and
    predictions (``label``, ``prediction``). ``labels`` says what the labels are instead
    (``"classes"``, ``"numbers"`` or None when there are neither)."""

    def __init__(self, task: str, model: str | None, missing: Sequence[str],
                 labels: str | None) -> None:
        self.task, self.model, self.missing, self.labels = task, model, list(missing), labels
        self.suggested: Task = "classification" if task == "regression" else "regression"
        needs = ("numeric labels (label_value) and predictions (prediction_value)"
                 if task == "regression" else "class labels (label) and predictions (prediction)")
        who = f"model {model!r}" if model else "the data"
        what = (f"; {who}'s labels are {labels}: use task {self.suggested!r}" if labels
                else f"; {who}'s labelled predictions have no {self.missing}")
        super().__init__("task", f"task {task!r} needs {needs}{what}")


TASK_COLUMNS: dict[str, tuple[str, str]] = {
    "classification": ("label", "prediction"),
    "regression": ("label_value", "prediction_value"),
}


def check_task(joined: pd.DataFrame, task: Task, *, model: str | None = None) -> None:
    """Raise :class:`TaskMismatch` when the labelled rows of ``joined`` have no value at all
    in a column ``task`` is computed from (a partly missing column is the metrics' business:
    they drop the missing rows)."""
    lab = joined[joined["labelled"]] if "labelled" in joined else joined
    if not len(lab):
        return

    def has(c: str) -> bool:
        return c in lab and bool(lab[c].notna().any())

    missing = [c for c in TASK_COLUMNS[task] if not has(c)]
    if missing:
        other = "classification" if task == "regression" else "regression"
        labels = None
        if all(has(c) for c in TASK_COLUMNS[other]):
            labels = "classes" if other == "classification" else "numbers"
        raise TaskMismatch(task, model, missing, labels)


# what a row with no model version is grouped under; never compared as if it were a version
UNKNOWN_VERSION = "unknown"


def _version_col(frame: pd.DataFrame) -> pd.Series:
    if "model_version" in frame:
        return frame["model_version"].fillna(UNKNOWN_VERSION).astype(str)
    return pd.Series(UNKNOWN_VERSION, index=frame.index)


def label_coverage(joined: pd.DataFrame) -> Mapping[str, float]:
    """Share of predictions with a label, overall and per version."""
    if joined.empty:
        return {"all": 0.0}
    versions = _version_col(joined)
    out = {"all": float(joined["labelled"].mean())}
    for v, g in joined.groupby(versions):
        out[str(v)] = float(g["labelled"].mean())
    return out
