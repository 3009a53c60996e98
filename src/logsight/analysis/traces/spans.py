"""The span frame the trace analysis takes (``SPAN_COLUMNS``), its checks, and the shape of
an analysis (:class:`TraceAnalysis`, :class:`TraceStats`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "kind",
    "version",
    "follows_from",
)


REQUIRED_COLUMNS = ("trace_id", "span_id", "service", "name", "start_ns", "end_ns")


OPERATION_KEYS = ("service", "name")


NS_PER_MS = 1_000_000.0


OrphanPolicy = Literal["attach", "own"]


# Keys of a ranked bottleneck row (also the JSON the CLI prints), in table order.
BOTTLENECK_FIELDS = (
    "rank",
    "service",
    "operation",
    "critical_path_share",
    "critical_path_ms",
    "on_critical_path_ratio",
    "self_time_p50_ms",
    "self_time_p95_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "count",
    "traces",
)


@dataclass(frozen=True)
class TraceStats:
    """What had to be repaired while building the trees (see the module docstring)."""

    spans: int
    traces: int
    orphans: int
    clipped: int
    async_children: int
    duplicates: int
    negative: int
    cycles: int


@dataclass
class TraceAnalysis:
    """Result of :func:`analyze_spans`.

    ``spans``: the input spans in input order, repeated span ids dropped, index reset, with
    added columns ``trace_index``, ``parent_index`` (row of the parent, -1 for a root),
    ``root_index`` (row of the trace's primary root), ``depth``, ``orphan``, ``async_child``,
    ``clipped``, ``error``, ``eff_start_ns``/``eff_end_ns`` (after clipping), ``duration_ms``
    (reported), ``self_time_ms``, ``critical_path_ms``, ``on_critical_path``. The entry point of
    a span is the ``service``/``name`` of its ``root_index`` row (:func:`entry_points`).

    ``traces``: one row per trace: ``trace_id``, ``trace_index``, ``root_index``, ``entry_service``,
    ``entry_operation``, ``start_ns``, ``duration_ms``, ``critical_path_ms``, ``spans``,
    ``errors``, ``orphans``, ``clipped``.
    """

    spans: pd.DataFrame
    traces: pd.DataFrame
    stats: TraceStats


# -- input -------------------------------------------------------------------------------------
def _validate(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of spans, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"span frame lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    for col in ("start_ns", "end_ns"):
        if len(df) and not pd.api.types.is_integer_dtype(df[col].dtype):
            raise ValueError(f"column {col!r} must hold integer unix nanoseconds")
        if len(df) and df[col].isna().any():
            raise ValueError(f"column {col!r} has missing values")


def _row_flags(values: pd.Series, accept: frozenset[str]) -> np.ndarray:
    """Per row, whether the lower-cased text value is in ``accept``. Compares the distinct values
    only (a column such as status or kind has a handful), then broadcasts by code."""
    codes, uniques = pd.factorize(values)
    hit = np.array([str(u).strip().lower() in accept for u in uniques] + [False], dtype=bool)
    return hit[codes]  # code -1 (missing) picks the trailing False
