"""Trace bottleneck analysis: trace trees, self time and the critical path over spans.

Pure: a span frame in, dataclasses and frames out. The hot path has no per-span Python loop;
the few loops run once per tree level or once per step of the longest sibling chain, each step
a handful of numpy operations over every trace at once.

**Input** (:data:`SPAN_COLUMNS`, one row per span): ``trace_id``, ``span_id``, ``parent_id``
(null or ``""`` for a root), ``service``, ``name``, ``start_ns``/``end_ns`` (int64 unix
nanoseconds); optional ``status`` (``ok|error|unset``), ``kind``
(``server|client|internal|producer|consumer``), ``version`` (service version) and
``follows_from`` (bool). :func:`logsight.sources.traces.spans_frame` builds this frame from
OTel/ECS-shaped records.

**Trees.** Spans are sorted by (trace, start). Data problems are repaired and counted, never
raised: a span whose end is before its start gets zero length (``negative``); a repeated
(trace, span id) keeps one copy (``duplicates``): one with a valid interval over one ending
before its start, then the first in the input; a span whose parent is not in the trace
is an *orphan*; parent cycles are broken by making their members orphans (``cycles``). Each
trace has one *primary root*: a span without a parent reference if there is one, else the
earliest orphan. With ``orphans="attach"`` (default) every other root hangs under the primary
root as a blocking child - a lost span most likely sat between them - and with ``"own"`` they
stand as separate roots whose subtrees are never on the critical path.

**Async children.** A child is *async* (does not block its parent) when ``follows_from`` is true
or its kind is ``consumer``. Async children are not clipped, do not reduce the parent's self
time and are never on the parent's critical path; their own subtrees are analysed as usual.

**Clock skew.** A blocking child that sticks out of its parent's interval is clipped to it (its
descendants are clipped to the clipped interval in turn) and counted (``clipped``). Latency
statistics keep the reported duration; self time and the critical path use clipped intervals.

**Self time** of a span = its (clipped) duration minus the union of its blocking children's
intervals, overlap counted once, so it is never negative.

**Critical path** (Jaeger's algorithm, after Uber's CRISP): start at the primary root's end;
take the blocking child that finished last (ties: the longer one), it is critical over its whole
interval; continue in the parent from that child's start with the last child that finished by
then, and so on until the parent's start; recurse into every chosen child. A span's critical
time is its duration minus the durations of its chosen children, and the critical times of a
trace add up to its root's duration. Zero-length children are never chosen.

The package splits along its seams: :mod:`~logsight.analysis.traces.spans`,
:mod:`~logsight.analysis.traces.tree`, :mod:`~logsight.analysis.traces.aggregate`,
:mod:`~logsight.analysis.traces.regressions`; everything is importable from here as before."""

from __future__ import annotations

from logsight.analysis.traces.aggregate import (  # noqa: F401  # re-exports
    _fmt,
    _group_codes,
    _plain,
    aggregate_operations,
    bottleneck_findings,
    entry_points,
    group_quantiles,
    rank_bottlenecks,
)
from logsight.analysis.traces.regressions import (  # noqa: F401  # re-exports
    TraceRegression,
    VersionSplit,
    _mwu_greater,
    _trace_fractions,
    compare_operations,
    compare_versions,
    regression_findings,
    split_by_version,
)
from logsight.analysis.traces.spans import (  # noqa: F401  # re-exports
    BOTTLENECK_FIELDS,
    NS_PER_MS,
    OPERATION_KEYS,
    REQUIRED_COLUMNS,
    SPAN_COLUMNS,
    OrphanPolicy,
    TraceAnalysis,
    TraceStats,
    _row_flags,
    _validate,
)
from logsight.analysis.traces.tree import (  # noqa: F401  # re-exports
    _critical_chains,
    _group_line,
    _levels,
    _resolve_depth,
    _union_lengths,
    analyze_spans,
)

__all__ = [
    "BOTTLENECK_FIELDS", "NS_PER_MS", "OPERATION_KEYS", "OrphanPolicy", "REQUIRED_COLUMNS",
    "SPAN_COLUMNS", "TraceAnalysis", "TraceRegression", "TraceStats", "VersionSplit",
    "aggregate_operations", "analyze_spans", "bottleneck_findings", "compare_operations",
    "compare_versions", "entry_points", "group_quantiles", "rank_bottlenecks",
    "regression_findings", "split_by_version",
]
