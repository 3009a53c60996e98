"""The canary job: for each service running two versions at once in the window (or the one
asked for), a verdict on the candidate - promote, hold or roll back - from the requests (server
spans) of each version: latency and error rate with logsight's significance tests
(:mod:`logsight.analysis.canary`). Without versions given, the candidate is the version with
the fewest requests and the baseline the one with the most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from logsight.analysis.canary import (
    CanaryLimits,
    CanaryVerdict,
    canary_finding,
    canary_verdict,
    model_canary_verdict,
)
from logsight.errors import BadRequest, NoData
from logsight.findings import Finding
from logsight.jobs import performance as performance_job
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.jobs.drift import ClusterEvents
from logsight.sources.traces import ClusterSpans, SpanFile, SpanSource
from logsight.writer import ClusterWriter, Writer

__all__ = ["CanaryLimits", "CanaryRequest", "CanaryResult", "ClusterEvents", "ClusterSpans",
           "ClusterWriter", "Scope", "SpanFile", "Window", "canary", "model_canary"]


@dataclass(frozen=True)
class CanaryRequest:
    window: Window
    scope: Scope = Scope()  # scope.version: the candidate version
    baseline_version: str | None = None
    limits: CanaryLimits = CanaryLimits()


@dataclass
class CanaryResult:
    verdicts: list[CanaryVerdict]
    findings: list[Finding]
    window: Window

    def rows(self) -> list[dict[str, object]]:
        return plain_rows(self.verdicts)


def _requests(spans: pd.DataFrame) -> pd.DataFrame:
    """The requests a service handled: its server spans (all its spans when it has none)."""
    server = spans[spans["kind"] == "server"]
    return server if len(server) else spans


def canary(request: CanaryRequest, source: SpanSource, writer: Writer | None = None
           ) -> CanaryResult:
    w, sc = request.window, request.scope
    if request.baseline_version is not None and sc.version is None:
        raise BadRequest("candidate_version", "a baseline version needs a candidate version")
    if sc.version is not None and sc.service is None:
        raise BadRequest("service", "a candidate version needs its service")
    spans = source.spans(w.start, w.end)
    if sc.service is not None:
        spans = spans[spans["service"] == sc.service]
    verdicts: list[CanaryVerdict] = []
    for service, own in spans.groupby("service", sort=True):
        req = _requests(own)
        counts = req["version"].fillna("").replace("", np.nan).dropna().value_counts()
        if sc.version is not None:
            if sc.version not in counts.index:
                raise NoData(f"no requests of {service} version {sc.version!r} in the window "
                             f"(versions seen: {', '.join(map(str, counts.index)) or 'none'})",
                             parameters=("candidate_version", "window"))
            cand = sc.version
            others = counts.drop(cand)
            base = request.baseline_version or (str(others.index[0]) if len(others) else None)
            if base is None or base not in counts.index:
                raise NoData(f"no requests of a baseline version of {service} beside "
                             f"{cand!r} in the window", parameters=("baseline_version",))
        elif len(counts) >= 2:
            base, cand = str(counts.index[0]), str(counts.index[-1])
        else:
            continue
        dur = (req["end_ns"].to_numpy(np.int64) - req["start_ns"].to_numpy(np.int64)) / 1e6
        err = (req["status"] == "error").to_numpy()
        on_b = (req["version"] == base).to_numpy()
        on_c = (req["version"] == cand).to_numpy()
        verdicts.append(canary_verdict(
            service=str(service), baseline_version=base, candidate_version=cand,
            baseline_latency_ms=dur[on_b], candidate_latency_ms=dur[on_c],
            baseline_errors=err[on_b], candidate_errors=err[on_c], limits=request.limits))
    findings: list[Finding] = []
    if w.start is not None and w.end is not None:
        findings = [canary_finding(v, window_start=w.start, window_end=w.end,
                                   namespace=sc.namespace) for v in verdicts]
        if writer is not None:
            writer.findings(findings)
    return CanaryResult(verdicts, findings, w)


def model_canary(request: CanaryRequest, source: ClusterEvents, writer: Writer | None = None
                 ) -> CanaryResult:
    """The verdict on ``scope.version`` of ``scope.model`` against ``baseline_version`` (default:
    the version with the most predictions) from the performance job's comparisons: accuracy or
    loss from the labelled predictions (however late the labels came) and the KPIs."""
    w, sc = request.window, request.scope
    if sc.model is None or sc.version is None:
        raise BadRequest("candidate_version", "a model canary needs the model and its "
                         "candidate version")
    result = performance_job.performance(performance_job.PerformanceRequest(
        w, Scope(namespace=sc.namespace, model=sc.model),
        baseline_version=request.baseline_version, alpha=request.limits.alpha), source)
    report = result.report
    by_version = {v.version: v for v in report.versions}
    if sc.version not in by_version:
        raise NoData(f"no predictions of model {sc.model!r} version {sc.version!r} in the "
                     f"window (versions: {', '.join(sorted(by_version)) or 'none'})",
                     parameters=("candidate_version", "window"))
    base_name = request.baseline_version
    if base_name is None:
        others = [v for v in by_version.values() if v.version != sc.version]
        base_name = max(others, key=lambda v: v.n_predictions).version if others else None
    if base_name is None:
        raise NoData(f"no baseline version of model {sc.model!r} beside {sc.version!r}",
                     parameters=("baseline_version",))
    comps = [c for c in report.version_comparisons
             if c.candidate == sc.version and c.baseline == base_name]
    kpis = [k for k in report.kpi_changes
            if k.candidate == sc.version and k.baseline == base_name]
    verdict = model_canary_verdict(
        model=sc.model, baseline_version=base_name, candidate_version=sc.version,
        comparisons=comps, kpi_changes=kpis,
        n_baseline=by_version[base_name].n_labelled if base_name in by_version else 0,
        n_candidate=by_version[sc.version].n_labelled)
    findings: list[Finding] = []
    if w.start is not None and w.end is not None:
        f = canary_finding(verdict, window_start=w.start, window_end=w.end,
                           namespace=sc.namespace)
        f.model, f.service = sc.model, None
        findings = [f]
        if writer is not None:
            writer.findings(findings)
    return CanaryResult([verdict], findings, w)
