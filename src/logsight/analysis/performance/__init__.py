"""Model performance with delayed ground truth (pure: frames in, dataclasses out).

Predictions and feedback are joined by request id; metrics are computed over the predictions
that have a label and the label coverage is reported next to them, so a window whose labels
are still arriving says so instead of looking perfect or broken. Re-running over a window after
late labels arrive recomputes it (findings have stable ids, so they are updated in place).

Frame columns (``logsight.sources.mlevents`` produces them from the mlevents stream):

* predictions: ``request_id``, ``timestamp``, ``model_version``, ``prediction`` (class label)
  and/or ``prediction_value`` (regression), optional ``score`` (confidence of the predicted
  class) and ``proba.<class>`` columns.
* feedback: ``request_id``, ``timestamp``, ``label`` and/or ``label_value``.
* kpis: ``request_id`` (optional), ``timestamp``, ``model_version`` (optional), ``kpi_name``,
  ``kpi_value``.

The package splits along its seams: :mod:`~logsight.analysis.performance.labels`,
:mod:`~logsight.analysis.performance.metrics`, :mod:`~logsight.analysis.performance.compare`,
:mod:`~logsight.analysis.performance.report`; everything is importable from here as before."""

from __future__ import annotations

from logsight.analysis.performance.compare import (  # noqa: F401  # re-exports
    Comparison,
    KpiChange,
    KpiReport,
    _f,
    _resample_means,
    bootstrap_mean_interval,
    compare_kpis,
    compare_losses,
    kpi_accuracy_correlation,
    kpi_by_version,
)
from logsight.analysis.performance.labels import (  # noqa: F401  # re-exports
    PROBA_PREFIX,
    TASK_COLUMNS,
    UNKNOWN_VERSION,
    Task,
    TaskMismatch,
    _version_col,
    check_task,
    infer_task,
    join_feedback,
    label_coverage,
)
from logsight.analysis.performance.metrics import (  # noqa: F401  # re-exports
    ClassificationMetrics,
    RegressionMetrics,
    ReliabilityBin,
    _proba_matrix,
    classification_metrics,
    evaluate,
    losses,
    regression_metrics,
)
from logsight.analysis.performance.report import (  # noqa: F401  # re-exports
    PerformanceReport,
    VersionReport,
    _empty,
    _fmt,
    first_seen_version,
    performance_findings,
    performance_report,
)

__all__ = [
    "ClassificationMetrics", "Comparison", "KpiChange", "KpiReport", "PROBA_PREFIX",
    "PerformanceReport", "RegressionMetrics", "ReliabilityBin", "TASK_COLUMNS", "Task",
    "TaskMismatch", "UNKNOWN_VERSION", "VersionReport", "bootstrap_mean_interval",
    "check_task", "classification_metrics", "compare_kpis", "compare_losses", "evaluate", "first_seen_version",
    "infer_task", "join_feedback", "kpi_accuracy_correlation", "kpi_by_version",
    "label_coverage", "losses", "performance_findings", "performance_report",
    "regression_metrics",
]
