"""Model performance with delayed ground truth (pure: frames in, dataclasses out).

Predictions and feedback are joined by request id; metrics are computed over the predictions
that have a label and the label coverage is reported next to them, so a window whose labels
are still arriving says so instead of looking perfect or broken. Re-running over a window after
late labels arrive recomputes it (findings have stable ids, so they are updated in place).

Frame columns (``logsight.sources.mlevents`` produces them from the mlevents stream):

* predictions: ``request_id``, ``timestamp``, ``model_version``, ``prediction`` (class label)
  and/or ``prediction_value`` (regression), optional ``score`` (confidence of the predicted
  class) and ``proba.<class>`` columns.
* feedback: ``request_id``, ``timestamp``, ``label`` and/or ``label_value``.
* kpis: ``request_id`` (optional), ``timestamp``, ``model_version`` (optional), ``kpi_name``,
  ``kpi_value``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from logsight.findings import Finding

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


class TaskMismatch(ValueError):
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
        super().__init__(f"task {task!r} needs {needs}{what}")


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


# -- comparisons -----------------------------------------------------------------------------
@dataclass
class Comparison:
    """Mean loss of ``candidate`` minus ``baseline`` (positive = candidate worse), with a
    bootstrap percentile interval and Welch's t-test p-value."""

    baseline: str
    candidate: str
    metric: str
    baseline_value: float | None
    candidate_value: float | None
    loss_diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_baseline: int
    n_candidate: int
    worse: bool


def compare_losses(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    baseline_name: str,
    candidate_name: str,
    metric: str,
    alpha: float = 0.05,
    min_effect: float = 0.02,
    min_labels: int = 30,
    n_boot: int = 1000,
    random_state: int | None = 0,
    max_draws: int = 4_000_000,
) -> Comparison:
    """``worse`` when the candidate's mean loss is higher by at least ``min_effect``, the
    bootstrap interval excludes 0 and Welch's p < ``alpha`` (both sides need ``min_labels``).
    At most ``max_draws`` resample indices are in memory at a time; the result does not
    depend on it."""
    if max_draws < 1:
        raise ValueError(f"max_draws must be at least 1, got {max_draws}")
    nb, nc = len(baseline), len(candidate)
    bval = (1 - baseline.mean() if metric == "accuracy" else baseline.mean()) if nb else None
    cval = (1 - candidate.mean() if metric == "accuracy" else candidate.mean()) if nc else None
    if nb < min_labels or nc < min_labels:
        return Comparison(baseline_name, candidate_name, metric, _f(bval), _f(cval), None,
                          None, None, None, nb, nc, False)
    diff = float(candidate.mean() - baseline.mean())
    rng = np.random.default_rng(random_state)
    # all baseline resamples, then all candidate ones: the same draws, in the same order, as
    # one (n_boot, n) matrix per side, without holding n_boot * n indices at once
    base_means = _resample_means(baseline, n_boot, rng, max_draws)
    boots = _resample_means(candidate, n_boot, rng, max_draws) - base_means
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    if np.all(baseline == baseline[0]) and np.all(candidate == candidate[0]):
        p = 0.0 if candidate[0] != baseline[0] else 1.0
    else:
        p = float(stats.ttest_ind(candidate, baseline, equal_var=False).pvalue)
    worse = diff >= min_effect and lo > 0 and p < alpha
    return Comparison(baseline_name, candidate_name, metric, _f(bval), _f(cval), diff,
                      float(lo), float(hi), p, nb, nc, bool(worse))


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class VersionReport:
    version: str
    n_predictions: int
    n_labelled: int
    label_coverage: float
    metrics: ClassificationMetrics | RegressionMetrics


@dataclass
class KpiReport:
    """Mean of one KPI for one model version, with a bootstrap percentile interval
    (``1 - alpha`` coverage, ``n_boot`` resamples; ``random_state`` makes it repeatable)."""

    name: str
    version: str
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    interval: str = "bootstrap"
    n_boot: int = 0


@dataclass
class KpiChange:
    """A version's KPI against the baseline version's in the same window. ``worse`` when the
    candidate's interval lies entirely on the bad side of the baseline's (below it, or above
    it for a KPI where lower is better): two non-overlapping 95% intervals, a conservative
    test."""

    name: str
    baseline: str
    candidate: str
    baseline_mean: float | None
    candidate_mean: float | None
    baseline_ci: tuple[float | None, float | None]
    candidate_ci: tuple[float | None, float | None]
    difference: float | None  # candidate - baseline
    relative_change: float | None  # difference / |baseline mean|
    n_baseline: int
    n_candidate: int
    direction: str  # "below" (higher is better) or "above" (lower is better)
    worse: bool


@dataclass
class PerformanceReport:
    model: str
    task: str
    window_start: datetime | str | None
    window_end: datetime | str | None
    n_predictions: int
    n_labelled: int
    label_coverage: float
    metrics: ClassificationMetrics | RegressionMetrics
    versions: list[VersionReport] = field(default_factory=list)
    degradation: list[Comparison] = field(default_factory=list)
    version_comparisons: list[Comparison] = field(default_factory=list)
    kpis: list[KpiReport] = field(default_factory=list)
    kpi_changes: list[KpiChange] = field(default_factory=list)
    kpi_accuracy_correlation: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# what a row with no model version is grouped under; never compared as if it were a version
UNKNOWN_VERSION = "unknown"


def _version_col(frame: pd.DataFrame) -> pd.Series:
    if "model_version" in frame:
        return frame["model_version"].fillna(UNKNOWN_VERSION).astype(str)
    return pd.Series(UNKNOWN_VERSION, index=frame.index)


def _resample_means(v: np.ndarray, n_boot: int, rng: np.random.Generator,
                    max_draws: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``v``, drawn row by row in chunks of
    at most ``max_draws`` indices; a chunked draw consumes ``rng`` exactly as one
    ``(n_boot, len(v))`` draw would, so the result does not depend on ``max_draws``."""
    n = len(v)
    means = np.empty(n_boot)
    step = max(1, max_draws // n)
    for i in range(0, n_boot, step):
        k = min(step, n_boot - i)
        means[i:i + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return means


def bootstrap_mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    n_boot: int = 1000,
    random_state: int | None = 0,
    max_draws: int = 4_000_000,
) -> tuple[float, float]:
    """Percentile bootstrap interval (``1 - alpha``) of the mean of ``values``: ``n_boot``
    resamples with replacement drawn with ``numpy.random.default_rng(random_state)``, at most
    ``max_draws`` indices in memory at a time (the cost is ``n_boot * len(values)`` draws)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not len(v):
        raise ValueError("bootstrap needs a non-empty 1-d sample")
    if np.isnan(v).any():
        raise ValueError("bootstrap sample has NaN values")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if np.all(v == v[0]):  # every resample has the same mean
        return float(v[0]), float(v[0])
    means = _resample_means(v, n_boot, np.random.default_rng(random_state), max_draws)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def kpi_by_version(
    kpis: pd.DataFrame, *, alpha: float = 0.05, n_boot: int = 1000,
    random_state: int | None = 0,
) -> list[KpiReport]:
    """Mean KPI per (name, version) with a bootstrap percentile interval
    (:func:`bootstrap_mean_interval`); KPIs are not normal (revenue is skewed, conversion is
    0/1), so no Student-t interval."""
    out: list[KpiReport] = []
    if kpis.empty:
        return out
    k = kpis.assign(model_version=_version_col(kpis))
    for (name, version), g in k.groupby(["kpi_name", "model_version"], sort=True):
        v = g["kpi_value"].astype(float).dropna().to_numpy()
        if not len(v):
            continue
        lo, hi = bootstrap_mean_interval(v, alpha=alpha, n_boot=n_boot,
                                         random_state=random_state)
        out.append(KpiReport(str(name), str(version), len(v), float(v.mean()), lo, hi,
                             "bootstrap", n_boot))
    return out


def compare_kpis(
    reports: Sequence[KpiReport],
    *,
    baseline_version: str | None = None,
    lower_is_better: Collection[str] = (),
    min_kpi_events: int = 30,
) -> list[KpiChange]:
    """Every version's KPI against the baseline version's, per KPI name. The baseline is
    ``baseline_version`` when it has the KPI, else the version with the most KPI events
    (:func:`performance_report` passes the version seen first, so a new version that took
    most of the traffic does not become the baseline).
    Only versions with at least ``min_kpi_events`` events take part (one event has a
    zero-width bootstrap interval and would look like a certain change), and events without
    a model version (grouped as ``unknown``) are never compared: they are no version."""
    if min_kpi_events < 1:
        raise ValueError(f"min_kpi_events must be at least 1, got {min_kpi_events}")
    out: list[KpiChange] = []
    by_name: dict[str, list[KpiReport]] = {}
    for r in reports:
        by_name.setdefault(r.name, []).append(r)
    for name, rows in sorted(by_name.items()):
        rows = [r for r in rows if r.mean is not None and r.n >= min_kpi_events
                and r.version != UNKNOWN_VERSION]
        if len(rows) < 2:
            continue
        versions = {r.version: r for r in rows}
        base = versions.get(baseline_version) if baseline_version is not None else None
        if base is None:
            base = max(rows, key=lambda r: (r.n, r.version))
        lower = name in lower_is_better
        for r in rows:
            if r is base:
                continue
            diff = float(r.mean - base.mean)  # type: ignore[operator]  # filtered above
            rel = diff / abs(base.mean) if base.mean else None
            if lower:
                worse = r.ci_low is not None and base.ci_high is not None and (
                    r.ci_low > base.ci_high)
            else:
                worse = r.ci_high is not None and base.ci_low is not None and (
                    r.ci_high < base.ci_low)
            out.append(KpiChange(
                name=name, baseline=base.version, candidate=r.version,
                baseline_mean=base.mean, candidate_mean=r.mean,
                baseline_ci=(base.ci_low, base.ci_high), candidate_ci=(r.ci_low, r.ci_high),
                difference=diff, relative_change=_f(rel), n_baseline=base.n,
                n_candidate=r.n, direction="above" if lower else "below", worse=bool(worse),
            ))
    return out


def kpi_accuracy_correlation(
    joined: pd.DataFrame, kpis: pd.DataFrame, *, bucket: str = "1h", task: Task | None = None
) -> dict[str, dict[str, Any]]:
    """Spearman correlation between per-window model quality (accuracy, or -MAE, over the
    labelled predictions made in the window) and the per-window mean of each KPI: does the KPI
    move with the model? Per KPI: ``rho``, ``p_value`` (None with fewer than 3 windows or a
    constant side), ``n`` (windows with both), ``window`` and ``method``."""
    if kpis.empty or "timestamp" not in joined or not joined["labelled"].any():
        return {}
    task = task or infer_task(joined)
    lab = joined[joined["labelled"]].copy()
    lab["_q"] = -losses(lab, task)
    lab["_b"] = pd.to_datetime(lab["timestamp"], utc=True).dt.floor(bucket)
    quality = lab.groupby("_b")["_q"].mean()
    out: dict[str, dict[str, float | None]] = {}
    k = kpis.copy()
    k["_b"] = pd.to_datetime(k["timestamp"], utc=True).dt.floor(bucket)
    for name, g in k.groupby("kpi_name"):
        kpi = g.groupby("_b")["kpi_value"].mean()
        both = pd.concat([quality, kpi], axis=1, join="inner").dropna()
        base: dict[str, Any] = {"method": "spearman", "n": len(both), "window": bucket,
                                "buckets": float(len(both))}
        if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
            out[str(name)] = {**base, "rho": None, "p_value": None}
            continue
        res = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1])
        out[str(name)] = {**base, "rho": _f(res.statistic), "p_value": _f(res.pvalue)}
    return out


def first_seen_version(frame: pd.DataFrame, *, among: Collection[str] | None = None
                       ) -> str | None:
    """The model version whose first event is earliest (ties: the smaller name), optionally
    only among ``among``; None when the frame has no versions (or no timestamps and no rows).
    Without a timestamp column the versions' order is unknown and the smallest name is taken."""
    if not len(frame) or "model_version" not in frame:
        return None
    v = _version_col(frame)
    keep = v != UNKNOWN_VERSION
    if among is not None:
        keep &= v.isin(list(among))
    if not keep.any():
        return None
    if "timestamp" not in frame:
        return str(sorted(v[keep].unique())[0])
    ts = pd.to_datetime(frame.loc[keep, "timestamp"], utc=True, errors="coerce")
    first = ts.groupby(v[keep]).min().dropna()
    if first.empty:
        return str(sorted(v[keep].unique())[0])
    return str(min(first.index, key=lambda name: (first[name], name)))


def performance_report(
    joined: pd.DataFrame,
    *,
    model: str,
    window_start: datetime | str | None = None,
    window_end: datetime | str | None = None,
    reference: pd.DataFrame | None = None,
    kpis: pd.DataFrame | None = None,
    task: Task | None = None,
    baseline_version: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.02,
    min_labels: int = 30,
    random_state: int | None = 0,
    n_boot: int = 1000,
    kpi_lower_is_better: Collection[str] = (),
    kpi_window: str = "1h",
    min_kpi_events: int = 30,
) -> PerformanceReport:
    """Metrics for the window (overall and per version), degradation of each version against
    the same version in ``reference`` (joined frame of the reference window), and every other
    version against the baseline version (``baseline_version``, else the one seen first), in both
    directions. KPIs: mean per version with a bootstrap interval, each version
    against the baseline version's KPI (:func:`compare_kpis`; versions with fewer than
    ``min_kpi_events`` KPI events, and events without a version, are not compared), and the
    Spearman correlation of per-``kpi_window`` accuracy with the per-window KPI mean."""
    task = task or infer_task(joined if len(joined) else (reference if reference is not None
                                                          else joined))
    if task not in TASK_COLUMNS:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    check_task(joined, task, model=model)
    if reference is not None:
        check_task(reference, task, model=model)
    metric = "accuracy" if task == "classification" else "mae"
    n = len(joined)
    nl = int(joined["labelled"].sum()) if n else 0
    rep = PerformanceReport(
        model=model, task=task, window_start=window_start, window_end=window_end,
        n_predictions=n, n_labelled=nl, label_coverage=nl / n if n else 0.0,
        metrics=evaluate(joined, task=task) if nl else _empty(task),
    )
    versions = _version_col(joined)
    loss_by_version: dict[str, np.ndarray] = {}
    for v in sorted(versions.unique()):
        g = joined[versions == v]
        gl = int(g["labelled"].sum())
        rep.versions.append(VersionReport(
            v, len(g), gl, gl / len(g) if len(g) else 0.0,
            evaluate(g, task=task) if gl else _empty(task),
        ))
        loss_by_version[v] = losses(g, task) if gl else np.array([])
    kw: dict[str, Any] = {"metric": metric, "alpha": alpha, "min_effect": min_effect,
                          "min_labels": min_labels, "random_state": random_state}
    if reference is not None and len(reference):
        rv = _version_col(reference)
        for v, cur in loss_by_version.items():
            ref = reference[rv == v]
            if ref["labelled"].sum() == 0:
                continue
            rep.degradation.append(compare_losses(
                losses(ref, task), cur, baseline_name=f"{v}@reference", candidate_name=v, **kw
            ))
    if baseline_version is not None and n and baseline_version not in loss_by_version:
        raise ValueError(f"baseline version {baseline_version!r} has no predictions in the "
                         f"window; versions: {sorted(loss_by_version)}")
    labelled = {v: len(x) for v, x in loss_by_version.items() if len(x)}
    if baseline_version is not None and baseline_version in loss_by_version and (
            baseline_version not in labelled and len(labelled) >= 2):
        rep.notes.append(f"baseline version {baseline_version!r} has no labelled predictions "
                         "yet: versions are compared with the one seen first instead")
    first_seen = first_seen_version(joined, among=set(labelled))
    if len(labelled) >= 2:
        # The baseline is the version that was there first (or the one named stable), never
        # "the one with most labels": a worse new version that took most of the traffic would
        # otherwise become the baseline and the regression would go unreported. Each pair is
        # oriented so the candidate is the side with the higher observed loss: a regression of
        # either against the other is found, and since Welch's p and the bootstrap interval
        # are both two-sided, the false-alarm rate stays at alpha.
        base = baseline_version if baseline_version in labelled else first_seen
        assert base is not None  # labelled has two versions, so one was seen first
        two_sided = kw
        for v in labelled:
            if v == base:
                continue
            b_loss, v_loss = loss_by_version[base], loss_by_version[v]
            if float(np.mean(b_loss)) > float(np.mean(v_loss)):  # the baseline is the worse
                rep.version_comparisons.append(compare_losses(
                    v_loss, b_loss, baseline_name=v, candidate_name=base, **two_sided))
            else:
                rep.version_comparisons.append(compare_losses(
                    b_loss, v_loss, baseline_name=base, candidate_name=v, **two_sided))
    if kpis is not None and not kpis.empty:
        k = kpis
        missing = [c for c in ("kpi_name", "kpi_value") if c not in k]
        if missing:
            raise ValueError(f"KPI frame lacks column(s) {missing}")
        if ("model_version" not in k or k["model_version"].isna().all()) and (
            "request_id" in k and "request_id" in joined and "model_version" in joined
        ):
            # a KPI event carries the request id; the prediction tells the version
            versions = joined[["request_id", "model_version"]].drop_duplicates("request_id")
            k = k.drop(columns=[c for c in ("model_version",) if c in k]).merge(
                versions, on="request_id", how="left"
            )
        rep.kpis = kpi_by_version(k, alpha=alpha, n_boot=n_boot, random_state=random_state)
        rep.kpi_changes = compare_kpis(rep.kpis,
                                       baseline_version=baseline_version or first_seen_version(
                                           joined if len(joined) else k),
                                       lower_is_better=kpi_lower_is_better,
                                       min_kpi_events=min_kpi_events)
        rep.kpi_accuracy_correlation = kpi_accuracy_correlation(joined, k, task=task,
                                                                bucket=kpi_window)
    return rep


def _empty(task: str) -> ClassificationMetrics | RegressionMetrics:
    if task == "regression":
        return RegressionMetrics(0, None, None, None)
    return ClassificationMetrics(0, None, None, None, None)


def performance_findings(
    report: PerformanceReport,
    *,
    service: str | None = None,
    namespace: str | None = None,
) -> list[Finding]:
    """performance_degradation (a version worse than in the reference window),
    version_regression (a version worse than the baseline version in the same window) and
    kpi_change (a version's KPI interval entirely on the bad side of the baseline's)."""
    out: list[Finding] = []
    for kind, comps in (("performance_degradation", report.degradation),
                        ("version_regression", report.version_comparisons)):
        for c in comps:
            if not c.worse or c.loss_diff is None:
                continue
            what = ("than in the reference window" if kind == "performance_degradation"
                    else f"than version {c.baseline}")
            out.append(Finding(
                kind=kind,
                title=f"{report.model} {c.candidate}: {c.metric} worse {what}",
                summary=(f"{c.metric} {c.candidate_value:.4g} vs {c.baseline_value:.4g} "
                         f"(loss +{c.loss_diff:.3g}, 95% CI [{c.ci_low:.3g}, {c.ci_high:.3g}], "
                         f"p={c.p_value:.2g}; {c.n_candidate} vs {c.n_baseline} labels)"),
                severity="high" if c.loss_diff >= 0.1 or (c.p_value or 1) < 1e-6 else "medium",
                score=float(c.loss_diff),
                confidence=1.0 - float(c.p_value or 0.0),
                service=service,
                subject=c.candidate,
                model=report.model,
                model_version=c.candidate,
                window_start=report.window_start,
                window_end=report.window_end,
                evidence={"comparison": asdict(c), "label_coverage": report.label_coverage},
                namespace=namespace,
            ))
    for kc in report.kpi_changes:
        if not kc.worse:
            continue
        rel = abs(kc.relative_change) if kc.relative_change is not None else None
        side = "below" if kc.direction == "below" else "above"
        out.append(Finding(
            kind="kpi_change",
            title=f"{report.model} {kc.candidate}: KPI {kc.name} {side} version {kc.baseline}",
            summary=(f"{kc.name} {kc.candidate_mean:.4g} [{_fmt(kc.candidate_ci[0])}, "
                     f"{_fmt(kc.candidate_ci[1])}] vs {kc.baseline_mean:.4g} "
                     f"[{_fmt(kc.baseline_ci[0])}, {_fmt(kc.baseline_ci[1])}] "
                     f"(95% bootstrap intervals; {kc.n_candidate} vs {kc.n_baseline} events)"),
            severity="high" if rel is not None and rel >= 0.1 else "medium",
            score=float(rel if rel is not None else abs(kc.difference or 0.0)),
            service=service,
            subject=f"{kc.name}:{kc.candidate}",
            model=report.model,
            model_version=kc.candidate,
            window_start=report.window_start,
            window_end=report.window_end,
            evidence={"kpi_change": asdict(kc),
                      "correlation_with_accuracy": report.kpi_accuracy_correlation.get(kc.name)},
            namespace=namespace,
        ))
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def label_coverage(joined: pd.DataFrame) -> Mapping[str, float]:
    """Share of predictions with a label, overall and per version."""
    if joined.empty:
        return {"all": 0.0}
    versions = _version_col(joined)
    out = {"all": float(joined["labelled"].mean())}
    for v, g in joined.groupby(versions):
        out[str(v)] = float(g["labelled"].mean())
    return out
