"""ML events (predictions, feedback, KPIs) from the cluster, and drift samples from files: the
readers of the model jobs (:mod:`logsight.jobs.drift`, :mod:`logsight.jobs.performance`).

Raw rows are read with PIT + ``search_after`` (:meth:`Engine.scan`). Drift against the cluster
never reads raw rows: a reference profile comes from ``percentiles`` / ``extended_stats`` /
``cardinality`` / ``terms`` aggregations and a current window from one ``range`` aggregation
on the profile's bin edges (with a ``sum`` per bucket) plus ``terms`` for categories, so a
window of any size costs a few aggregation queries.

The package splits along its seams: :mod:`~logsight.sources.mlevents.events`,
:mod:`~logsight.sources.mlevents.profiles`; everything is importable from here as before."""

from __future__ import annotations

from logsight.sources.mlevents.events import (  # noqa: F401  # re-exports
    _BACKING_PREFIX,
    _SEEN_LIMIT,
    COLUMN_NAMES,
    FEATURE_PREFIX,
    PREDICTION_FIELDS,
    PROBA_FIELD_PREFIX,
    NoPredictions,
    SampleFiles,
    Window,
    _check_window,
    _frame,
    _namespace_of,
    _read_requests,
    _rename,
    _search,
    _seen,
    describe_missing_predictions,
    discover_fields,
    event_query,
    flatten,
    index_for,
    read_events,
    read_events_query,
    read_feedback,
    read_file,
    read_joined,
    require_predictions,
    service_of,
    windows_with_late_labels,
)
from logsight.sources.mlevents.profiles import (  # noqa: F401  # re-exports
    StoredProfile,
    _aggregate,
    _range_agg,
    _range_counts,
    _terms,
    first_week,
    load_profile,
    profile_from_cluster,
    summarize_window,
)

__all__ = [
    "COLUMN_NAMES", "FEATURE_PREFIX", "NoPredictions", "PREDICTION_FIELDS",
    "PROBA_FIELD_PREFIX", "SampleFiles", "StoredProfile", "Window",
    "describe_missing_predictions", "discover_fields", "event_query", "first_week", "flatten",
    "index_for", "load_profile", "profile_from_cluster", "read_events", "read_events_query",
    "read_feedback", "read_file", "read_joined", "require_predictions", "service_of",
    "summarize_window", "windows_with_late_labels",
]
