"""The trace jobs: bottlenecks (critical path, self time) of a window, and latency
regressions against a baseline window or between two versions of a service.

Each reads through a :class:`~logsight.sources.traces.SpanSource` (the cluster's traces
streams or an NDJSON file) and stores through a :class:`~logsight.writer.Writer` when given one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logsight.analysis.traces import (
    OrphanPolicy,
    TraceRegression,
    VersionSplit,
    analyze_spans,
    bottleneck_findings,
    compare_operations,
    compare_versions,
    rank_bottlenecks,
    regression_findings,
)
from logsight.findings import Finding
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.sources.traces import ClusterSpans, NoSpans, SpanFile, SpanSource
from logsight.writer import ClusterWriter, Writer, critical_path_documents

__all__ = [
    "Scope", "Window",
    "BottlenecksRequest", "BottlenecksResult", "ClusterSpans", "ClusterWriter",
    "RegressionsRequest", "RegressionsResult", "SpanFile", "VersionRegressionsRequest",
    "bottlenecks", "regressions", "version_regressions",
]


@dataclass(frozen=True)
class BottlenecksRequest:
    window: Window
    scope: Scope = Scope()
    top: int = 10
    min_share: float = 0.2  # critical-path share from which a bottleneck is a finding
    orphans: OrphanPolicy = "attach"


@dataclass
class BottlenecksResult:
    bottlenecks: list[dict[str, Any]]
    findings: list[Finding]
    stats: dict[str, Any]  # what was analysed: spans, traces, repairs
    window: Window
    empty_reason: str | None = None  # why there is nothing, when there is nothing
    answered_from: str = "spans"  # spans (raw recompute) | critical_path_index (stored)
    notes: list[str] = field(default_factory=list)  # e.g. why the raw path answered

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.bottlenecks)


def bottlenecks(request: BottlenecksRequest, source: SpanSource, writer: Writer | None = None
                ) -> BottlenecksResult:
    """Rank operations by the critical-path time they contribute; ``trace_bottleneck``
    findings (for a closed window) and, with a writer, the critical-path aggregates. Without an
    entry point the latency percentiles come from the engine's aggregations over the same spans
    where the source has an engine (``latency_source="engine"``)."""
    w, sc = request.window, request.scope
    spans = source.spans(w.start, w.end, service=sc.service, operation=sc.operation)
    analysis = analyze_spans(spans, orphans=request.orphans)
    rows = rank_bottlenecks(analysis, top=request.top)
    for r in rows:
        r["latency_source"] = "spans"
    if rows and sc.service is None and sc.operation is None and w.start and w.end:
        pushed = source.operation_stats(w.start, w.end)
        if pushed is not None:
            by_key = {(r["service"], r["operation"]): r for r in pushed.to_dict("records")}
            for r in rows:
                agg = by_key.get((r["service"], r["operation"]))
                if agg is None:
                    continue
                for col in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
                    if agg[col] == agg[col]:  # NaN when the engine had no durations
                        r[col] = float(agg[col])
                r["latency_source"] = "engine"
    findings: list[Finding] = []
    if w.start is not None and w.end is not None:
        findings = bottleneck_findings(rows, window_start=w.start, window_end=w.end,
                                       min_share=request.min_share, namespace=sc.namespace)
        if writer is not None:
            writer.findings(findings)
            writer.critical_path(critical_path_documents(
                analysis, window_start=w.start, window_end=w.end, namespace=sc.namespace))
    empty = None if rows else (source.explain_empty(
        w.start, w.end, service=sc.service, operation=sc.operation) or "no spans")
    return BottlenecksResult(rows, findings, dict(analysis.stats.__dict__), w, empty)


@dataclass(frozen=True)
class RegressionsRequest:
    window: Window
    baseline: Window
    scope: Scope = Scope()
    alpha: float = 0.01
    min_ratio: float = 1.2
    min_count: int = 20


@dataclass
class RegressionsResult:
    regressions: list[TraceRegression]
    findings: list[Finding]
    window: Window
    baseline: Window | None = None
    split: VersionSplit | None = None  # version comparisons: the traces on each side
    empty_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.regressions)


def regressions(request: RegressionsRequest, source: SpanSource,
                baseline_source: SpanSource | None = None, writer: Writer | None = None
                ) -> RegressionsResult:
    """Compare the window with the baseline window per (service, operation) (the baseline read
    from ``baseline_source``, default ``source``); ``trace_regression`` findings for the
    significant regressions."""
    w, b, sc = request.window, request.baseline, request.scope
    base_src = baseline_source or source
    kw: dict[str, Any] = {"service": sc.service, "operation": sc.operation}
    base = analyze_spans(base_src.spans(b.start, b.end, **kw))
    cur = analyze_spans(source.spans(w.start, w.end, **kw))
    results = compare_operations(base, cur, alpha=request.alpha, min_ratio=request.min_ratio,
                                 min_count=request.min_count)
    findings = regression_findings(
        results, window_start=w.start, window_end=w.end, baseline_start=b.start,
        baseline_end=b.end, namespace=sc.namespace,
    )
    if writer is not None:
        writer.findings(findings)
    empty = None
    if not results:
        for side, src, (s, e) in (("current window", source, (w.start, w.end)),
                                  ("baseline", base_src, (b.start, b.end))):
            why = src.explain_empty(s, e, **kw)
            if why is not None:
                empty = f"{side}: {why}"
                break
    return RegressionsResult(results, findings, w, b, empty_reason=empty)


@dataclass(frozen=True)
class VersionRegressionsRequest:
    window: Window
    service: str
    baseline_version: str
    candidate_version: str
    namespace: str | None = None
    alpha: float = 0.01
    min_ratio: float = 1.2
    min_count: int = 20
    orphans: OrphanPolicy = "attach"


def version_regressions(request: VersionRegressionsRequest, source: SpanSource,
                        writer: Writer | None = None) -> RegressionsResult:
    """Compare two versions of ``service`` within one window per (service, operation): the
    traces through the candidate version against those through the baseline version;
    ``trace_regression`` findings whose subject and evidence carry both versions."""
    r, w = request, request.window
    spans = source.version_spans(w.start, w.end, service=r.service,
                                 versions=[r.baseline_version, r.candidate_version])
    if len(spans) == 0:
        raise NoSpans(
            f"no spans of service {r.service!r} with version {r.baseline_version!r} or "
            f"{r.candidate_version!r} in {source.describe(w.start, w.end)}",
            parameters=("window", "service", "candidate_version"))
    results, split = compare_versions(
        spans, service=r.service, baseline_version=r.baseline_version,
        candidate_version=r.candidate_version, orphans=r.orphans, alpha=r.alpha,
        min_ratio=r.min_ratio, min_count=r.min_count,
    )
    findings = regression_findings(results, window_start=w.start, window_end=w.end,
                                   namespace=r.namespace, versions=split)
    if writer is not None:
        writer.findings(findings)
    return RegressionsResult(results, findings, w, split=split)
