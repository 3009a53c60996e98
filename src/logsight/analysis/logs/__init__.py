"""Log anomaly detection: per-window features, an isolation forest, and explanations.

Input is a log frame (one row per log line) with the columns of :data:`LOG_COLUMNS`; the
cluster and file readers in :mod:`logsight.sources.logs` produce it.

Pipeline
--------
1. Every message gets a template id from :class:`~logsight.analysis.templates.TemplateMiner`.
   The miner learns on the baseline, is then frozen (a later line that does not fit a baseline
   template exactly gets a template of its own, i.e. a *never-seen* template) and keeps mining
   the scored period online.
2. :func:`window_features` turns lines into one row per (service, window): counts per level,
   error ratio, message rate, counts of the top-K baseline templates plus ``tpl_other``, number of
   never-seen templates, number of distinct templates. Windows are time buckets (default 1 min)
   or, when the frame has no usable timestamps, buckets of ``window_lines`` consecutive lines.
3. :class:`LogAnomalyDetector` (scikit-learn estimator contract) learns, per service, a robust
   baseline (median and a floored robust scale per feature), turns every window into robust
   z-scores and fits an :class:`sklearn.ensemble.IsolationForest` on the baseline z-scores of
   all services pooled (so a service with few windows still gets a model).

Sustained changes
-----------------
A change that stays (a deploy that doubles a template's rate for good) is one finding, not the
few windows that cross the per-window cut-off: per service and count feature (templates, levels,
total) the change point that best explains the scored windows against the baseline is found
(:mod:`logsight.analysis.changepoint`), and when it holds to the end of the range it becomes one
``log_anomaly`` finding with subject ``level_shift:<feature>`` spanning the change; window
findings inside it whose main deviation is that feature are folded into it
(:mod:`logsight.analysis.logs.levelshift`).

Decision rule (keeps false positives low)
-----------------------------------------
A window is anomalous when **both** of these hold:

* the isolation forest calls it an outlier (score below the offset set by ``contamination``);
* at least one feature deviates meaningfully from the service's baseline: a level count, the
  line total or a template count with ``|z| >= min_z`` and an absolute change of at least
  ``min_change`` lines, or the error ratio with ``|z| >= min_z`` and a change of at least
  ``min_ratio_change``; or ``min_new_error_lines`` or more error/fatal lines of never-seen
  templates;

**or** when the error evidence is overwhelming on its own, whatever the forest says:

* ``overwhelming_new_error_lines`` or more error/fatal lines of never-seen templates, or
* the error or fatal line count rises with ``z >= overwhelming_z`` and by at least
  ``min_change`` lines, or
* the error ratio rises with ``z >= overwhelming_z`` and by at least ``min_ratio_change``, with
  at least ``min_change`` error/fatal lines in the window (a two-line window with one error is
  a ratio of 0.5, not a burst).

Why the second path: a forest only isolates what varied in its training data. A perfectly
regular baseline (a heartbeat service, a quiet batch job) gives every window the same robust
z-scores of zero, the forest cannot split on a constant and scores every later window alike,
so a burst of never-seen errors sat just under the cutoff (the demo's 23 new ERROR lines, error
ratio 0.96, scored -0.013). The z-scores themselves stay finite and meaningful against such a
baseline because each feature's spread is floored (counts: the Poisson sd
``sqrt(max(median, count_floor))``; ratios: ``ratio_floor``), so (with the defaults) "z >= 10
and at least five more error lines" is a statement about the data, not a division by zero. Only rises of error
evidence take this path: more info lines or a quiet service still need the forest to agree.

Never-seen templates at info/debug level are reported in the explanation and feed the forest,
but are not enough on their own: new code paths and rare-but-normal messages appear all the
time (in Loghub's BGL sample most never-seen templates of the later half are normal), a
never-seen error is what a person wants to hear about.

Each anomalous window becomes a :class:`~logsight.findings.Finding` (``kind="log_anomaly"``)
whose evidence lists the features that deviated most (baseline vs observed), the never-seen
templates with an example line, and the ids of sample log documents.

Template drift per deploy (:func:`template_drift`) compares the template distribution of a
service before and after a ``service.version`` change with the population stability index and
the Jensen-Shannon distance, the registered tests shared with feature drift
(:data:`logsight.analysis.drift.DRIFT_TESTS`).

On a cluster the job feeds the same detector counts instead of lines
(:mod:`~logsight.analysis.logs.counts`): one row per (service, window, template key, level)
with its line count, the miner on the distinct keys, examples read for flagged windows only.

The package splits along its seams: :mod:`~logsight.analysis.logs.features`,
:mod:`~logsight.analysis.logs.detector`, :mod:`~logsight.analysis.logs.model`,
:mod:`~logsight.analysis.logs.findings`, :mod:`~logsight.analysis.logs.templatedrift`,
:mod:`~logsight.analysis.logs.counts`;
everything is importable from here as before."""

from __future__ import annotations

from logsight.analysis.logs.detector import (  # noqa: F401  # re-exports
    Deviation,
    LogAnomalyDetector,
)
from logsight.analysis.logs.features import (  # noqa: F401  # re-exports
    COUNT_PREFIXES,
    LEVELS,
    LOG_COLUMNS,
    MODEL_FORMAT,
    MODEL_VERSION,
    RATIO_FEATURES,
    SCORE_TIE,
    UNKNOWN_SERVICE,
    VOLUME_PREFIXES,
    _complete_windows,
    _is_volume,
    _timed,
    _utc,
    assign_windows,
    empty_log_frame,
    mine_templates,
    normalize_level,
    prepare_frame,
    top_templates,
    window_coverage,
    window_features,
)
from logsight.analysis.logs.findings import (  # noqa: F401  # re-exports
    FEATURE_LABELS,
    _finding,
    _label,
    _neutral_volume,
)
from logsight.analysis.logs.model import (  # noqa: F401  # re-exports
    WINDOW_COLUMNS,
    BaselineError,
    LogAnalysisResult,
    LogAnomalyModel,
    LogAnomalyResult,
    _empty_split_message,
    _looks_like_time,
    baseline_cut,
    detect_log_anomalies,
    empty_window_table,
    fit_log_model,
    score_logs,
    split_baseline,
    window_table,
)
from logsight.analysis.logs.templatedrift import (  # noqa: F401  # re-exports
    _contributions,
    _pydt,
    _template_tests,
    js_test,
    psi_test,
    template_drift,
)
from logsight.timeutil import parse_window  # noqa: F401  # importable from its old home

__all__ = [
    "BaselineError", "COUNT_PREFIXES", "Deviation", "FEATURE_LABELS", "LEVELS", "LOG_COLUMNS",
    "LogAnalysisResult", "LogAnomalyDetector", "LogAnomalyModel", "LogAnomalyResult",
    "MODEL_FORMAT", "MODEL_VERSION", "RATIO_FEATURES", "SCORE_TIE", "UNKNOWN_SERVICE",
    "VOLUME_PREFIXES", "WINDOW_COLUMNS", "assign_windows", "baseline_cut",
    "detect_log_anomalies", "empty_log_frame", "empty_window_table", "fit_log_model",
    "js_test", "mine_templates", "normalize_level", "prepare_frame", "psi_test", "score_logs",
    "split_baseline", "template_drift", "top_templates", "window_coverage", "window_features",
    "window_table",
]
