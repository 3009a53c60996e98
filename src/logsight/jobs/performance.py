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
from logsight.errors import BadRequest
from logsight.findings import Finding, _jsonable
from logsight.jobs.base import Scope, Window
from logsight.jobs.drift import ClusterEvents
from logsight.sources import mlevents as M
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer

__all__ = ["ClusterEvents", "ClusterWriter", "PerformanceRequest", "PerformanceResult",
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


@dataclass
class PerformanceResult:
    report: P.PerformanceReport
    findings: list[Finding]

    def rows(self) -> list[dict[str, Any]]:
        body = {k: v for k, v in asdict(self.report).items() if k != "findings"}
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




def performance(request: PerformanceRequest, source: ClusterEvents,
                writer: Writer | None = None) -> PerformanceResult:
    """Metrics of the model's predictions in the window joined with their feedback (however
    late it arrived), per version; re-run it when late labels arrive
    (:func:`logsight.sources.mlevents.windows_with_late_labels`): findings keep their ids.
    KPIs: bootstrap interval per version (``random_state``), ``kpi_change`` findings for a
    version whose interval lies below the baseline version's (above, for the KPI names in
    ``kpi_lower_is_better``; only versions with ``min_kpi_events`` KPI events), Spearman
    correlation of hourly accuracy and KPI means."""
    r, engine, ns = request, source.engine, source.namespace
    model, version = r.scope.model, r.scope.version
    if model is None:
        raise BadRequest("model", "performance needs a model")
    start, end = r.window.closed
    if r.require_current:
        M.require_predictions(engine, model=model, start=start, end=end, version=version,
                              namespace=ns)
    joined = M.read_joined(engine, model=model, start=start, end=end, version=version,
                           namespace=ns)
    ref = None
    if r.reference is not None:
        rs, re_ = r.reference.closed
        ref = M.read_joined(engine, model=model, start=rs, end=re_, version=version,
                            namespace=ns)
    if r.baseline_version is not None and r.baseline_version != version:
        # asked for by name: a version without predictions is an answer, not a fallback
        try:
            M.require_predictions(engine, model=model, start=start, end=end,
                                  version=r.baseline_version, namespace=ns)
        except M.NoPredictions as e:
            raise M.NoPredictions(f"baseline version {r.baseline_version!r}: {e}",
                                  parameters=("baseline_version",)) from None
    task = r.task or guess_task(joined if len(joined) else ref)
    kpis = M.read_events(engine, "kpi", model=model, start=start, end=end, version=version,
                         namespace=ns)
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
    findings = P.performance_findings(report, service=M.service_of(engine, model, ns),
                                      namespace=ns)
    if writer is not None and findings:
        writer.findings(findings)
    return PerformanceResult(report, findings)
