"""The resource anomalies job: memory leak trends, CPU saturation and GPU memory pressure in
the resource metrics of a window (:mod:`logsight.analysis.resources`), CPU saturation lined up
with the service's p95 latency before and after it began (cluster: from the traces streams)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logsight.analysis import cost as C
from logsight.analysis import resources as R
from logsight.errors import NoData
from logsight.findings import Finding
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.sources.metrics import ClusterMetrics, MetricsFiles, MetricsSource
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer

__all__ = ["ClusterMetrics", "ClusterWriter", "MetricsFiles", "NoData", "ResourcesRequest",
           "ResourcesResult", "Scope", "Window", "resource_anomalies"]


@dataclass(frozen=True)
class ResourcesRequest:
    window: Window = Window()
    scope: Scope = Scope()
    tests: tuple[str, ...] = tuple(R.RESOURCE_TESTS)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per test: kwargs
    require_data: bool = True


@dataclass
class ResourcesResult:
    results: list[R.ResourceTest]
    findings: list[Finding]
    samples: int
    empty_reason: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.results)


def resource_anomalies(request: ResourcesRequest, source: MetricsSource,
                       writer: Writer | None = None) -> ResourcesResult:
    r, sc = request, request.scope
    start, end = r.window.start, r.window.end
    usage = C.usage_frame(source.metrics(start, end, service=sc.service))
    if start is not None and not usage.empty:
        usage = usage[usage["start"] >= start]
    if end is not None and not usage.empty:
        usage = usage[usage["start"] < end]
    if usage.empty:
        why = (f"no resource metrics in {source.describe()} between {iso(start) or 'the first'}"
               f" and {iso(end) or 'the last'} sample")
        if r.require_data:
            raise NoData(why, parameters=("window", "service"))
        return ResourcesResult([], [], 0, why)
    results = R.run_tests(usage, tests=r.tests, options=r.options)
    ws: datetime = start or usage["start"].min().to_pydatetime()
    we: datetime = end or usage["timestamp"].max().to_pydatetime()
    latency: dict[tuple[str, str], dict[str, float]] = {}
    for t in results:
        if t.test == "cpu_saturation" and t.anomalous and t.onset is not None:
            before = source.latency_p95(t.service, max(ws, t.onset - (we - t.onset)), t.onset)
            after = source.latency_p95(t.service, t.onset, we)
            if before is not None and after is not None:
                latency[(t.service, t.host)] = {"before_ms": before, "after_ms": after}
    findings = R.resource_findings(results, window_start=ws, window_end=we,
                                   namespace=sc.namespace, latency=latency)
    if writer is not None:
        writer.findings(findings)
    return ResourcesResult(results, findings, len(usage))
