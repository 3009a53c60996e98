"""The trace-completion job: critical paths computed once per trace, stored per operation.

A run takes the spans ingested since the last run (the coverage record), up to ``now - settle``,
in steps of ``step``. For each step it reads every span of the traces that got a span in it
(older spans too: a late span recomputes its whole trace), leaves out the traces that still got
spans after the step (not settled: the next step or run takes them), analyses the settled
traces once (:func:`logsight.analysis.traces.analyze_spans`: repairs, self time, critical path)
and stores one document per (trace, service, operation) by a stable id: a recompute overwrites,
a re-run over what is covered reads and writes nothing. Bottleneck questions are then
aggregations over those documents (:mod:`logsight.jobs.stored_traces`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from logsight.analysis.traces import OrphanPolicy, analyze_spans
from logsight.analysis.traces.pertrace import trace_operations
from logsight.errors import BadRequest
from logsight.findings import Finding
from logsight.jobs.base import plain_rows
from logsight.sources.traces.stored import CompletionSpans, Coverage, StoredTraces
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, trace_operation_documents

__all__ = ["ClusterWriter", "CompletionRequest", "CompletionResult", "StoredTraces",
           "TraceStoreWriter", "complete_traces"]


class TraceStoreWriter(Protocol):
    """Where the completion job stores its documents and its coverage."""

    def trace_operations(self, documents: Any) -> int: ...

    def coverage(self, *, namespace: str | None, covered_from: datetime,
                 covered_until: datetime, now: datetime) -> str: ...


@dataclass(frozen=True)
class CompletionRequest:
    now: datetime  # the clock, passed in: the settle cut-off is ``now - settle``
    namespace: str | None = None  # None: every namespace
    settle: timedelta = timedelta(seconds=30)  # a trace is complete this long after its last span
    lookback: timedelta = timedelta(hours=1)  # first run: ingest times this far back
    since: datetime | None = None  # start here instead of at the coverage's end
    step: timedelta = timedelta(minutes=1)  # ingest time read per step (bounds memory)
    orphans: OrphanPolicy = "attach"

    def __post_init__(self) -> None:
        for name in ("settle", "lookback"):
            if getattr(self, name) < timedelta(0):
                raise BadRequest(name, f"{{{name}}} must not be negative")
        if self.step <= timedelta(0):
            raise BadRequest("step", "{step} must be positive")


@dataclass
class CompletionResult:
    ingested_from: datetime | None  # the ingest times processed (None: nothing to do)
    ingested_to: datetime | None
    traces: int = 0  # traces analysed and stored
    spans: int = 0
    documents: int = 0  # documents written
    deferred: int = 0  # traces left for later (spans after the cut-off)
    late_spans: int = 0  # spans read from before a step (traces recomputed)
    steps: int = 0
    stats: dict[str, int] = field(default_factory=dict)  # repairs, summed over steps
    findings: list[Finding] = field(default_factory=list)  # none: the job stores documents

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows([{
            "ingested_from": iso(self.ingested_from) if self.ingested_from else None,
            "ingested_to": iso(self.ingested_to) if self.ingested_to else None,
            "traces": self.traces, "spans": self.spans, "documents": self.documents,
            "deferred": self.deferred, "late_spans": self.late_spans, "steps": self.steps,
            **self.stats,
        }])


def _range(request: CompletionRequest, coverage: Coverage | None) -> tuple[datetime, datetime]:
    end = request.now - request.settle
    if request.since is not None:
        return request.since, end
    if coverage is not None:
        return coverage.covered_until, end
    return end - request.lookback, end


def complete_traces(request: CompletionRequest, store: StoredTraces,
                    writer: TraceStoreWriter | None = None) -> CompletionResult:
    """Analyse the traces settled since the last run and store their documents (see the
    module docstring). Without a writer nothing is stored (and the coverage does not move)."""
    coverage = store.coverage()
    start, end = _range(request, coverage)
    if end <= start:
        return CompletionResult(None, None)
    # the coverage stays one interval: it grows when this run starts where it ended
    covered_from = start
    if coverage is not None and coverage.covered_from <= start <= coverage.covered_until:
        covered_from = coverage.covered_from
    result = CompletionResult(start, end)
    stats = {"orphans": 0, "clipped": 0, "duplicates": 0, "negative": 0, "cycles": 0}
    lo = start
    while lo < end:
        hi = min(lo + request.step, end)
        got: CompletionSpans = store.completion_spans(lo, hi)
        result.deferred += got.deferred
        result.late_spans += got.late_spans
        if len(got.spans):
            analysis = analyze_spans(got.spans, orphans=request.orphans)
            docs = trace_operation_documents(trace_operations(analysis),
                                             namespace=request.namespace)
            result.traces += analysis.stats.traces
            result.spans += analysis.stats.spans
            for k in stats:
                stats[k] += int(getattr(analysis.stats, k))
            if writer is not None:
                result.documents += writer.trace_operations(docs)
        if writer is not None:
            writer.coverage(namespace=request.namespace, covered_from=covered_from,
                            covered_until=hi, now=request.now)
        result.steps += 1
        lo = hi
    result.stats = stats
    return result
