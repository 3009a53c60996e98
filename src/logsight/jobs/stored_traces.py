"""Bottleneck questions answered from the trace-completion job's stored documents.

The stored path sums per-trace, per-operation documents in the engine (composite terms with
sums; span percentiles for the ranked top only): nothing is recomputed per question. It answers a window when every
span that started in it was ingested within what the job covered; spans ingested after the
job's cut-off (not settled yet) are left out and the answer says how many. A window with spans
the job never processed (ingested before it started), or a request the stored documents cannot
answer (``orphans="own"``), goes to the raw path (:func:`logsight.jobs.traces.bottlenecks`)
and the answer says so (``answered_from``, ``notes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logsight.analysis.traces import bottleneck_findings
from logsight.analysis.traces.binned import EDGES, BinnedRegression, compare_histograms
from logsight.analysis.traces.pertrace import rank_operation_totals
from logsight.errors import NoData
from logsight.findings import Finding
from logsight.jobs import traces as traces_job
from logsight.jobs.base import Window, plain_rows
from logsight.jobs.traces import BottlenecksRequest, BottlenecksResult
from logsight.sources.traces import SpanSource
from logsight.sources.traces.stored import StoredTraces
from logsight.timeutil import iso
from logsight.writer import Writer

__all__ = ["NoData", "STORED", "StoredTraces", "StoredVersionRequest", "StoredVersionResult", "bottlenecks",
           "version_regressions"]

STORED = "critical_path_index"  # answered_from: the completion job's documents
RAW = "spans"  # answered_from: the raw recompute


def _uncovered_reason(request: BottlenecksRequest, store: StoredTraces
                      ) -> tuple[str | None, list[str]]:
    """Why the stored documents cannot answer (None: they can), and notes for the answer."""
    if request.orphans != "attach":
        return "the stored traces were built with orphans='attach'", []
    s, e = request.window.closed
    cov = store.coverage()
    if cov is None:
        return (f"the trace-completion job has not run for namespace "
                f"{store.marker!r}"), []
    span = f"{iso(cov.covered_from)} .. {iso(cov.covered_until)}"
    before, after = store.uncovered_spans(s, e, cov)
    if before:
        return (f"{before} span(s) of the window were ingested before the trace-completion "
                f"job's coverage ({span})"), []
    notes = [f"{after} span(s) ingested after {iso(cov.covered_until)} are not settled yet "
             f"and not included"] if after else []
    return None, notes


def bottlenecks(request: BottlenecksRequest, store: StoredTraces, fallback: SpanSource,
                writer: Writer | None = None) -> BottlenecksResult:
    """Rank operations by critical-path time from the stored documents (ranking and shares as
    the raw path's over the same traces), falling back to the raw path where the window is not
    covered (see the module docstring)."""
    reason, notes = _uncovered_reason(request, store)
    if reason is not None:
        result = traces_job.bottlenecks(request, fallback, writer)
        result.answered_from = RAW
        result.notes.append(f"answered from raw spans: {reason}")
        return result
    w, sc = request.window, request.scope
    s, e = w.closed
    got = store.operation_totals(s, e, service=sc.service, operation=sc.operation)
    ranked = rank_operation_totals(got.totals, top=request.top)
    pct = store.operation_percentiles(s, e, [(r["service"], r["operation"]) for r in ranked],
                                      service=sc.service, operation=sc.operation)
    rows = rank_operation_totals(got.totals, top=request.top, percentiles=pct)
    for r in rows:
        r["latency_source"] = STORED
    findings: list[Finding] = bottleneck_findings(
        rows, window_start=s, window_end=e, min_share=request.min_share,
        namespace=sc.namespace)
    if writer is not None:
        writer.findings(findings)
    empty = None
    if not rows:
        empty = fallback.explain_empty(s, e, service=sc.service, operation=sc.operation) or (
            f"no stored traces in {iso(s)} .. {iso(e)}")
    return BottlenecksResult(rows, findings, dict(got.repairs), w, empty,
                             answered_from=STORED, notes=notes)


@dataclass(frozen=True)
class StoredVersionRequest:
    window: Window
    service: str
    baseline_version: str
    candidate_version: str
    namespace: str | None = None
    alpha: float = 0.01
    min_ratio: float = 1.2
    min_count: int = 20


@dataclass
class StoredVersionResult:
    regressions: list[BinnedRegression]
    findings: list[Finding] = field(default_factory=list)
    answered_from: str = STORED
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.regressions)


def version_regressions(request: StoredVersionRequest, store: StoredTraces
                        ) -> StoredVersionResult:
    """Operations of ``service`` slower in the candidate version than in the baseline version
    within one window, from histograms of the stored per-trace self time and critical-path
    time (the engine bins them; no span is read). Raises NoData when the stored documents
    hold neither version."""
    r = request
    s, e = r.window.closed
    hist = store.version_histograms(s, e, service=r.service,
                                    versions=[r.baseline_version, r.candidate_version],
                                    edges=EDGES.tolist())
    base, cand = hist.get(r.baseline_version, {}), hist.get(r.candidate_version, {})
    if not base and not cand:
        raise NoData(f"no stored traces of service {r.service!r} with version "
                     f"{r.baseline_version!r} or {r.candidate_version!r} between {iso(s)} and "
                     f"{iso(e)} (has the trace-completion job run?)",
                     parameters=("window", "service", "candidate_version"))
    found = compare_histograms(base, cand, edges=EDGES, alpha=r.alpha, min_ratio=r.min_ratio,
                               min_count=r.min_count)
    return StoredVersionResult(found)
