"""The performance job: a model's quality from its predictions joined with (late) feedback,
per version, with degradation against a reference window, regression between versions and
KPI changes (see :func:`logsight.analysis.performance.performance_report`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis import performance as P
from logsight.analysis.performance import dle as PD
from logsight.analysis.performance import estimate as PE
from logsight.errors import BadRequest
from logsight.findings import Finding, _jsonable
from logsight.jobs.base import Scope, Window
from logsight.jobs.drift import ClusterEvents
from logsight.sources import mlevents as M
from logsight.sources.mlevents.files import EventFile
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer

__all__ = ["ClusterEvents", "ClusterWriter", "EventFile", "PerformanceRequest", "PerformanceResult",
           "Scope", "TaskMismatch", "Window", "guess_task", "performance"]

TaskMismatch = P.TaskMismatch


@dataclass(frozen=True)
class PerformanceRequest:
    window: Window
    scope: Scope = Scope()
    reference: Window | None = None  # for degradation
    task: P.Task | None = None  # default: guessed from the labels
    baseline_version: str | None = None
    alpha: float = 0.05
    min_effect: float = 0.02
    min_labels: int = 30
    random_state: int | None = 0
    kpi_lower_is_better: Sequence[str] = ()
    min_kpi_events: int = 30
    require_current: bool = False  # NoPredictions when the window has none
    # CBPE: accuracy estimated from the predicted class's probability, before the labels land
    # (classification only; the reference window is the labelled calibration check)
    estimate: bool = False
    max_ece: float = 0.05  # reference ECE above which the estimate is called unreliable


@dataclass
class PerformanceResult:
    report: P.PerformanceReport
    findings: list[Finding]
    estimate: PE.EstimateReport | PD.LossReport | None = None

    def rows(self) -> list[dict[str, Any]]:
        body = {k: v for k, v in asdict(self.report).items() if k != "findings"}
        if self.estimate is not None:
            body["estimate"] = self.estimate.to_dict()
        return [_jsonable(body)]


def guess_task(joined: pd.DataFrame | None, *, max_classes: int = 20) -> P.Task:
    """Regression when labels and predictions are numeric with many distinct or fractional
    values; classification otherwise (a 0/1 label is a class)."""
    if joined is None or joined.empty or "labelled" not in joined:
        return "classification"
    lab = joined[joined["labelled"]]
    if "label_value" in lab and "prediction_value" in lab and len(lab):
        lv = lab["label_value"]
        if lv.notna().all() and lab["prediction_value"].notna().all():
            vals = lv.astype(float)
            if vals.nunique() > max_classes or not np.all(np.mod(vals, 1) == 0):
                return "regression"
    return "classification"




def performance(request: PerformanceRequest, source: ClusterEvents | EventFile,
                writer: Writer | None = None) -> PerformanceResult:
    """Metrics of the model's predictions in the window joined with their feedback (however
    late it arrived), per version; re-run it when late labels arrive
    (:func:`logsight.sources.mlevents.windows_with_late_labels`): findings keep their ids.
    KPIs: bootstrap interval per version (``random_state``), ``kpi_change`` findings for a
    version whose interval lies below the baseline version's (above, for the KPI names in
    ``kpi_lower_is_better``; only versions with ``min_kpi_events`` KPI events), Spearman
    correlation of hourly accuracy and KPI means. ``source``: the cluster, or an
    :class:`EventFile` of ML event documents (the same job on a file)."""
    r = request
    model, version = r.scope.model, r.scope.version
    if model is None:
        raise BadRequest("model", "performance needs a model")
    start, end = r.window.closed
    if r.require_current:
        source.require_predictions(model=model, start=start, end=end, version=version)
    joined = source.joined(model=model, start=start, end=end, version=version)
    ref = None
    if r.reference is not None:
        rs, re_ = r.reference.closed
        ref = source.joined(model=model, start=rs, end=re_, version=version)
    if r.baseline_version is not None and r.baseline_version != version:
        # asked for by name: a version without predictions is an answer, not a fallback
        try:
            source.require_predictions(model=model, start=start, end=end, version=r.baseline_version)
        except M.NoPredictions as e:
            raise M.NoPredictions(f"baseline version {r.baseline_version!r}: {e}",
                                  parameters=("baseline_version",)) from None
    task = r.task or guess_task(joined if len(joined) else ref)
    kpis = source.events("kpi", model=model, start=start, end=end, version=version)
    report = P.performance_report(
        joined, model=model, window_start=start, window_end=end, reference=ref,
        kpis=kpis if "kpi_name" in kpis else None, task=task,
        baseline_version=r.baseline_version, alpha=r.alpha, min_effect=r.min_effect,
        min_labels=r.min_labels, random_state=r.random_state,
        kpi_lower_is_better=r.kpi_lower_is_better, min_kpi_events=r.min_kpi_events,
    )
    if r.reference is not None and (ref is None or not len(ref)):
        rs, re_ = r.reference.closed
        report.notes.append(
            f"no predictions of model {model!r} in the reference window "
            f"[{iso(rs, timespec='seconds')}, {iso(re_, timespec='seconds')})"
            ": no degradation check")
    report.notes.extend(source.notes)
    service = source.service_of(model)
    findings = P.performance_findings(report, service=service, namespace=source.namespace)
    est: PE.EstimateReport | PD.LossReport | None = None
    if r.estimate and task == "regression":
        # DLE: numbers next to the realised values, no finding (no band yet)
        est = PD.loss_report(joined, reference=ref, random_state=r.random_state)
    elif r.estimate:
        est = PE.estimate_report(joined, reference=ref, max_ece=r.max_ece,
                                 min_rows=r.min_labels)
        findings.extend(PE.estimate_findings(est, model=model, window_start=start,
                                             window_end=end, service=service,
                                             namespace=source.namespace))
    if writer is not None and findings:
        writer.findings(findings)
    return PerformanceResult(report, findings, est)

