"""Spans into a frame for :mod:`logsight.analysis.traces`: from NDJSON files or from the cluster,
behind one protocol (:class:`SpanSource`: :class:`ClusterSpans`, :class:`SpanFile`), so the
trace jobs (:mod:`logsight.jobs.traces`) run the same on either. Reading only: findings and
critical-path aggregates are written by :mod:`logsight.writer`.

Accepted field names (first one present wins; nested objects such as ``{"service": {"name":
...}}`` or OTLP's ``{"status": {"code": 2}}`` are read as their dotted paths) are listed in
:data:`FIELD_ALIASES` and documented in docs/traces.md.

The package splits along its seams: :mod:`~logsight.sources.traces.records`,
:mod:`~logsight.sources.traces.cluster`, :mod:`~logsight.sources.traces.protocol`,
:mod:`~logsight.sources.traces.files`; everything is importable from here as before."""

from __future__ import annotations

from logsight.sources.traces.cluster import (  # noqa: F401  # re-exports
    _BACKING,
    ClusterSpans,
    NoSpans,
    _check_window,
    _hits_to_records,
    _listing,
    _range,
    _read_traces,
    _read_traces_where,
    _root_clause,
    _terms,
    describe_search,
    explain_no_spans,
    has_spans,
    operation_stats,
    read_spans,
    read_version_spans,
)
from logsight.sources.traces.files import (  # noqa: F401  # re-exports
    SpanFile,
    _ns,
    trace_starts,
)
from logsight.sources.traces.protocol import (  # noqa: F401  # re-exports
    SpanSource,
)
from logsight.sources.traces.records import (  # noqa: F401  # re-exports
    _ERROR,
    _KINDS,
    _MAX_NS_FLOAT,
    _OK,
    _RANGE_TEXT,
    DURATION_FIELDS,
    END_ISO_FIELDS,
    END_NS_FIELDS,
    FIELD_ALIASES,
    MAX_NS,
    MIN_NS,
    SOURCE_FIELDS,
    START_ISO_FIELDS,
    START_NS_FIELDS,
    _coalesce,
    _first_ns,
    _flatten,
    _int_ns,
    _iso_ns,
    _kind,
    _OutOfRange,
    _status,
    _text,
    _times,
    load_spans_file,
    spans_frame,
)

__all__ = [
    "ClusterSpans", "DURATION_FIELDS", "END_ISO_FIELDS", "END_NS_FIELDS", "FIELD_ALIASES",
    "MAX_NS", "MIN_NS", "NoSpans", "SOURCE_FIELDS", "START_ISO_FIELDS", "START_NS_FIELDS",
    "SpanFile", "SpanSource", "describe_search", "explain_no_spans", "has_spans",
    "load_spans_file", "operation_stats", "read_spans", "read_version_spans", "spans_frame",
    "trace_starts",
]
