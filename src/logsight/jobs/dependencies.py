"""The dependency-map job: the edges between services in a window (from spans: client/server
pairs, parent/child across services, ``peer.service``), with rate, error rate and p95 per edge;
against a baseline window, the edges that appeared or vanished are findings.

Reads through a :class:`~logsight.sources.traces.SpanSource` (cluster or NDJSON file); with a
writer, stores the edges (``logsight-dependencies``, for the Kibana view) and the findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from logsight.analysis.traces.dependencies import (
    DependencyEdge,
    EdgeChange,
    compare_edges,
    dependency_edges,
    dependency_findings,
    span_calls,
)
from logsight.findings import Finding
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.sources.mesh import ClusterMesh
from logsight.sources.traces import ClusterSpans, SpanFile, SpanSource
from logsight.writer import ClusterWriter, Writer, dependency_documents

__all__ = ["ClusterMesh", "ClusterSpans", "ClusterWriter", "DependencyRequest", "DependencyResult", "SpanFile",
           "dependencies"]


@dataclass(frozen=True)
class DependencyRequest:
    window: Window
    scope: Scope = Scope()
    baseline: Window | None = None
    min_calls: int = 5  # calls an edge needs on one side to count as new / vanished


@dataclass
class DependencyResult:
    edges: list[DependencyEdge]
    findings: list[Finding]
    window: Window
    changes: list[EdgeChange] = field(default_factory=list)
    baseline: Window | None = None
    empty_reason: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.edges)


def _seconds(w: Window, spans: pd.DataFrame) -> float | None:
    if w.start is not None and w.end is not None:
        return (w.end - w.start).total_seconds()
    if len(spans) == 0:
        return None
    return float(spans["end_ns"].max() - spans["start_ns"].min()) / 1e9 or None


def _edges(source: SpanSource, w: Window, sc: Scope, mesh: ClusterMesh | None
           ) -> list[DependencyEdge]:
    spans = source.spans(w.start, w.end, service=sc.service, operation=sc.operation)
    calls = span_calls(spans)
    if mesh is not None and w.start is not None and w.end is not None:
        mesh_calls = mesh.calls(w.start, w.end)
        if len(mesh_calls):
            calls = pd.concat([calls, mesh_calls], ignore_index=True) if len(calls) \
                else mesh_calls
    return dependency_edges(calls, window_seconds=_seconds(w, spans))


def dependencies(request: DependencyRequest, source: SpanSource,
                 baseline_source: SpanSource | None = None, writer: Writer | None = None,
                 mesh: ClusterMesh | None = None) -> DependencyResult:
    """The dependency map of the window (spans, plus the mesh's access logs from ``mesh``);
    with a baseline, ``dependency_new`` / ``dependency_vanished`` findings (for a closed
    window)."""
    w, sc = request.window, request.scope
    edges = _edges(source, w, sc, mesh)
    changes: list[EdgeChange] = []
    findings: list[Finding] = []
    b = request.baseline
    if b is not None:
        before = _edges(baseline_source or source, b, sc, mesh)
        changes = compare_edges(before, edges, min_calls=request.min_calls)
        if w.start is not None and w.end is not None:
            findings = dependency_findings(
                changes, window_start=w.start, window_end=w.end, baseline_start=b.start,
                baseline_end=b.end, namespace=sc.namespace)
    if writer is not None and w.start is not None and w.end is not None:
        writer.dependencies(dependency_documents(edges, window_start=w.start, window_end=w.end,
                                                 namespace=sc.namespace))
        writer.findings(findings)
    empty = None
    if not edges:
        empty = source.explain_empty(w.start, w.end, service=sc.service,
                                     operation=sc.operation) or \
            "no calls between services (no span has a parent span of another service)"
    return DependencyResult(edges, findings, w, changes, b, empty)
