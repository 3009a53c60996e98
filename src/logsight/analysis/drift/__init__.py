"""Data drift between a reference and a current sample (pure: arrays/frames in, dataclasses out).

Two ways to compare, with the same statistics and the same presets (see docs/drift.md):

* :func:`compare` works on raw rows (files, small windows). KS, chi-square, Jensen-Shannon and
  Wasserstein equal scipy's values on the same data; PSI is the textbook formula on bins cut at
  the reference quantiles.
* :func:`build_profile` summarises the reference once (fine quantile histogram per numeric
  feature, category counts per categorical feature); :func:`compare_profile` compares it with a
  current window given only as counts on the profile's bin edges (what a ``range`` / ``terms``
  aggregation returns). PSI and JS are then exact (their bins are a subset of the profile's
  edges); KS and Wasserstein are approximations whose error is documented and bounded.

Every test is a registered pure function (``DRIFT_TESTS``) returning a :class:`TestResult`
with score, threshold and direction, as in Evidently.

The package splits along its seams: :mod:`~logsight.analysis.drift.kernels`,
:mod:`~logsight.analysis.drift.registry`, :mod:`~logsight.analysis.drift.raw`,
:mod:`~logsight.analysis.drift.profiles`, :mod:`~logsight.analysis.drift.findings`; everything
is importable from here as before."""

from __future__ import annotations

from logsight.analysis.drift.findings import (  # noqa: F401  # re-exports
    PREDICTION_SUBJECTS,
    OutlierReport,
    _fmt,
    drift_findings,
    outlier_findings,
    robust_outliers,
)
from logsight.analysis.drift.kernels import (  # noqa: F401  # re-exports
    _INT_EXACT_LIMIT,
    _KS_LIMIT_EN,
    _SCIPY_KS_EXACT_MAX_N,
    _SEARCH_BLOCK,
    CATEGORICAL,
    DEFAULT_BINS,
    FINE_BINS,
    NUMERIC,
    OTHER_CATEGORY,
    PSI_EPSILON,
    FeatureType,
    _clean_numeric,
    _merge_to,
    _merged_ks_wasserstein,
    _norm_scale,
    _searchsorted_sorted_keys,
    _sorted_clean,
    _sorted_quantiles,
    align_categories,
    benjamini_hochberg,
    bin_counts,
    bin_counts_sorted,
    bin_sums_sorted,
    binned_ks,
    binned_wasserstein,
    binned_wasserstein_error_bound,
    category_counts,
    category_key,
    chisquare_from_counts,
    feature_kind,
    js_distance,
    js_distance_from_counts,
    ks_2samp,
    ks_2samp_sorted,
    ks_pvalue,
    ks_statistic_sorted,
    psi,
    psi_from_counts,
    quantile_edges,
    wasserstein_normed,
    wasserstein_sorted,
    wasserstein_sorted_quantiles,
)
from logsight.analysis.drift.profiles import (  # noqa: F401  # re-exports
    CategoricalProfile,
    CategoricalSummary,
    CurrentSummary,
    NumericProfile,
    NumericSummary,
    ReferenceProfile,
    _prepare_binned,
    build_profile,
    compare_profile,
    drifted_features,
    numeric_profile_from_quantiles,
    profile_edges,
    profile_quantiles,
    summarize_current,
)
from logsight.analysis.drift.raw import (  # noqa: F401  # re-exports
    FeatureDrift,
    _categorical_from_counts,
    _evaluate,
    _finalise,
    _numeric_raw,
    _select_test,
    _with_unmatched,
    compare,
)
from logsight.analysis.drift.registry import (  # noqa: F401  # re-exports
    _ALL_STATISTICS,
    DRIFT_TESTS,
    ColumnTypeError,
    DecisionRule,
    DriftConfig,
    DriftTest,
    DriftThresholds,
    NumericBins,
    TestInputs,
    TestResult,
    UnknownColumnError,
    _check_overrides,
    _numeric_values,
    _prepare_numeric,
    _Prepared,
    _run,
    chisquare_test,
    default_rule,
    default_test,
    exceeds,
    jensenshannon_test,
    ks_binned_test,
    ks_test,
    psi_test,
    register_binned,
    register_test,
    run_test,
    wasserstein_binned_test,
    wasserstein_test,
)

__all__ = [
    "CATEGORICAL", "CategoricalProfile", "CategoricalSummary", "ColumnTypeError",
    "CurrentSummary", "DEFAULT_BINS", "DRIFT_TESTS", "DriftConfig", "DriftTest",
    "DriftThresholds", "FINE_BINS", "FeatureDrift", "FeatureType", "NUMERIC", "NumericBins",
    "NumericProfile", "NumericSummary", "OTHER_CATEGORY", "OutlierReport",
    "PREDICTION_SUBJECTS", "PSI_EPSILON", "ReferenceProfile", "TestInputs", "TestResult",
    "UnknownColumnError", "align_categories", "benjamini_hochberg", "bin_counts",
    "bin_counts_sorted", "bin_sums_sorted", "binned_ks", "binned_wasserstein", "binned_wasserstein_error_bound", "build_profile",
    "category_counts", "category_key", "chisquare_from_counts", "chisquare_test", "compare",
    "compare_profile", "DecisionRule", "default_rule", "default_test", "drift_findings", "drifted_features", "exceeds",
    "feature_kind", "jensenshannon_test", "js_distance", "js_distance_from_counts", "ks_2samp",
    "ks_2samp_sorted", "ks_binned_test", "ks_pvalue", "ks_statistic_sorted", "ks_test",
    "numeric_profile_from_quantiles", "outlier_findings", "profile_edges", "profile_quantiles", "psi",
    "psi_from_counts", "psi_test", "quantile_edges", "register_binned", "register_test",
    "robust_outliers", "run_test", "summarize_current", "wasserstein_binned_test",
    "wasserstein_normed", "wasserstein_sorted", "wasserstein_sorted_quantiles",
    "wasserstein_test",
]
