"""The performance report of a window (per version, degradation, version comparisons, KPIs)
and its findings (``performance_degradation``, ``version_regression``, ``kpi_change``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.performance.compare import (
    Comparison,
    KpiChange,
    KpiReport,
    compare_kpis,
    compare_losses,
    kpi_accuracy_correlation,
    kpi_by_version,
)
from logsight.analysis.performance.labels import (
    TASK_COLUMNS,
    UNKNOWN_VERSION,
    Task,
    _version_col,
    check_task,
    infer_task,
)
from logsight.analysis.performance.metrics import (
    ClassificationMetrics,
    RegressionMetrics,
    evaluate,
    losses,
)
from logsight.findings import Finding


@dataclass
class VersionReport:
    version: str
    n_predictions: int
    n_labelled: int
    label_coverage: float
    metrics: ClassificationMetrics | RegressionMetrics


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
