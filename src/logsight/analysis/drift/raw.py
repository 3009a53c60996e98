"""Drift from raw samples: :func:`compare` of a reference and a current frame, column by
column, with the exact statistics (:class:`FeatureDrift` per column)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from logsight.analysis.drift.kernels import (
    CATEGORICAL,
    NUMERIC,
    OTHER_CATEGORY,
    _sorted_clean,
    align_categories,
    benjamini_hochberg,
    category_counts,
    feature_kind,
)
from logsight.analysis.drift.registry import (
    _ALL_STATISTICS,
    DRIFT_TESTS,
    DecisionRule,
    DriftConfig,
    TestResult,
    _check_overrides,
    _numeric_values,
    _prepare_numeric,
    _Prepared,
    _run,
    default_rule,
    exceeds,
)


# -- per-feature result ----------------------------------------------------------------------
@dataclass
class FeatureDrift:
    """Every statistic for one feature, plus the preset (or configured) test's verdict;
    ``rule`` says what decided: ``"p_value"`` (small-sample preset, KS / chi-square p-value,
    BH-adjusted by default), ``"effect_size"`` (large-sample preset, normed Wasserstein /
    Jensen-Shannon), ``"column_override"`` (``DriftConfig.tests``) or ``"global_override"``
    (``DriftConfig.default_tests``); empty when nothing was compared."""

    feature: str
    type: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    warning: bool = False
    psi: float | None = None
    js_distance: float | None = None
    wasserstein: float | None = None  # normalised by the reference std
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    chisquare: float | None = None
    chisquare_p_value: float | None = None
    p_value_adjusted: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0
    unseen_categories: list[str] = field(default_factory=list)
    method: str = "raw"  # raw | binned
    ks_error_bound: float | None = None  # binned KS: |D_binned - D_raw| <= this
    note: str | None = None
    # +-inf values, left out of every statistic and said in ``note`` (NaN counts as missing)
    nonfinite_reference: int = 0
    nonfinite_current: int = 0
    rule: DecisionRule | Literal[""] = ""
    # profile path: the binned Wasserstein is a lower bound, the true value <= it + this
    wasserstein_error_bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def _select_test(fd: FeatureDrift, config: DriftConfig) -> str:
    rule: DecisionRule
    if fd.feature in config.tests:
        test, rule = config.tests[fd.feature], "column_override"
    elif fd.type in config.default_tests:
        test, rule = config.default_tests[fd.type], "global_override"
    else:
        test, rule = default_rule(fd.type, fd.n_reference, fd.n_current,
                                  small_sample=config.small_sample)
    fd.rule = rule
    if fd.type not in DRIFT_TESTS[test].kinds:
        raise ValueError(f"test {test!r} does not apply to {fd.type} feature {fd.feature!r}")
    fd.test, fd.threshold = test, config.thresholds.for_test(test)
    return test


def _evaluate(fd: FeatureDrift, prepare: Callable[[], _Prepared], config: DriftConfig
              ) -> TestResult | None:
    """Run every statistic of the column's type and its selected test, all through
    ``DRIFT_TESTS``, on inputs prepared once; ``None`` for an empty side."""
    test = _select_test(fd, config)
    if not fd.n_reference or not fd.n_current:
        fd.note = "empty reference" if not fd.n_reference else "empty current window"
        return None
    prep = prepare()
    res = {name: _run(name, prep, config) for name in _ALL_STATISTICS[fd.type]}
    if "ks" in res:
        ks = res["ks"]
        fd.ks_statistic, fd.ks_p_value, fd.ks_error_bound = ks.statistic, ks.p_value, \
            ks.error_bound
    if "chisquare" in res:
        fd.chisquare, fd.chisquare_p_value = res["chisquare"].statistic, res["chisquare"].p_value
    fd.psi = res["psi"].score
    fd.js_distance = res["jensenshannon"].score
    if "wasserstein" in res:
        fd.wasserstein = res["wasserstein"].score
        fd.wasserstein_error_bound = res["wasserstein"].error_bound
    return res[test] if test in res else _run(test, prep, config)


def _finalise(evaluated: list[tuple[FeatureDrift, TestResult | None]], config: DriftConfig
              ) -> list[FeatureDrift]:
    """Copy each selected test's result, apply the optional BH correction, decide drift."""
    for fd, res in evaluated:
        if res is not None:
            fd.threshold = res.threshold
            fd.statistic = res.statistic if res.statistic is not None else res.score
            fd.p_value = res.p_value
    results = [fd for fd, _ in evaluated]
    if config.correction == "bh":
        idx = [i for i, fd in enumerate(results) if fd.p_value is not None]
        adj = benjamini_hochberg([results[i].p_value for i in idx])  # type: ignore[misc]  # filtered
        for i, a in zip(idx, adj, strict=True):
            results[i].p_value_adjusted = float(a)
    for fd, res in evaluated:
        if res is None:
            fd.drifted = False
            continue
        if fd.p_value_adjusted is not None and res.direction == "below":
            fd.drifted = exceeds(fd.p_value_adjusted, res.threshold, "below")
        else:
            fd.drifted = res.drifted
        fd.warning = bool(
            fd.psi is not None and not fd.drifted and fd.psi > config.thresholds.psi_warning
        )
    return results


def _numeric_raw(name: str, ref: Any, cur: Any, config: DriftConfig
                 ) -> tuple[FeatureDrift, TestResult | None]:
    # one sort per side, shared by KS (binary search), PSI/JS (edges and counts by binary
    # search) and Wasserstein (quantile functions)
    r, missing_r, inf_r = _sorted_clean(ref)
    c, missing_c, inf_c = _sorted_clean(cur)
    fd = FeatureDrift(
        feature=name, type=NUMERIC, test="", statistic=None, p_value=None, threshold=0.0,
        drifted=False, n_reference=len(r), n_current=len(c),
        missing_reference=missing_r, missing_current=missing_c,
        nonfinite_reference=inf_r, nonfinite_current=inf_c,
    )
    result = _evaluate(fd, lambda: _prepare_numeric(r, c, config.bins), config)
    if inf_r or inf_c:
        said = f"; {fd.note}" if fd.note else ""
        fd.note = (f"{inf_r} reference and {inf_c} current value(s) were not finite (+-inf: "
                   f"too large for a float, or an overflow upstream) and were left out{said}")
    return fd, result


def _categorical_from_counts(
    name: str, ref: Mapping[str, int], cur: Mapping[str, int], config: DriftConfig,
    missing_reference: int = 0, missing_current: int = 0, method: str = "raw",
) -> tuple[FeatureDrift, TestResult | None]:
    cats, r, c = align_categories(ref, cur)
    fd = FeatureDrift(
        feature=name, type=CATEGORICAL, test="", statistic=None, p_value=None, threshold=0.0,
        drifted=False, n_reference=int(r.sum()), n_current=int(c.sum()),
        missing_reference=missing_reference, missing_current=missing_current, method=method,
        unseen_categories=[k for k in cats if k not in ref and k != OTHER_CATEGORY],
    )
    return fd, _evaluate(fd, lambda: _Prepared(r, c), config)


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig | None = None,
    kinds: Mapping[str, str] | None = None,
    unmatched: Literal["skip", "report"] = "skip",
) -> list[FeatureDrift]:
    """Drift of every shared column (or ``columns``) from raw rows. With
    ``unmatched="report"`` (and no ``columns``) a column present on one side only is listed
    too, as a row with ``drifted=False`` and a ``note`` saying which side lacks it, so it is
    not dropped silently. Raises :class:`UnknownColumnError` for a ``config.tests`` override
    of a column that is not compared and :class:`ColumnTypeError` for a numeric column with
    non-numeric values."""
    config = config or DriftConfig()
    cols = list(columns) if columns is not None else [c for c in reference if c in current]
    missing = [c for c in cols if c not in reference or c not in current]
    if missing:
        raise ValueError(f"columns missing from reference or current data: {missing}")
    if not cols:
        raise ValueError("reference and current data share no columns")
    _check_overrides(config, cols)
    evaluated: list[tuple[FeatureDrift, TestResult | None]] = []
    for col in cols:
        kind = (kinds or {}).get(col) or feature_kind(
            reference[col], categorical_max_unique=config.categorical_max_unique
        )
        if kind == NUMERIC:
            evaluated.append(_numeric_raw(
                col, _numeric_values(reference[col], col, "reference"),
                _numeric_values(current[col], col, "current"), config,
            ))
        else:
            rs, cs = reference[col], current[col]
            evaluated.append(_categorical_from_counts(
                col, category_counts(rs), category_counts(cs), config,
                int(rs.isna().sum()), int(cs.isna().sum()),
            ))
    results = _finalise(evaluated, config)
    if unmatched == "report" and columns is None:
        results = _with_unmatched(results, reference, current, config)
    return results


def _with_unmatched(results: list[FeatureDrift], reference: pd.DataFrame,
                    current: pd.DataFrame, config: DriftConfig) -> list[FeatureDrift]:
    """``results`` plus a noted row per column found on one side only: reference columns in
    their order, then the current data's extra ones."""
    by_name = {r.feature: r for r in results}
    out: list[FeatureDrift] = []
    for col, side, other in ([(c, reference, "current") for c in reference]
                             + [(c, current, "reference") for c in current
                                if c not in reference]):
        if col in by_name:
            out.append(by_name[col])
            continue
        s = side[col]
        fd = FeatureDrift(
            feature=str(col),
            type=feature_kind(s, categorical_max_unique=config.categorical_max_unique),
            test="", statistic=None, p_value=None, threshold=0.0, drifted=False,
            note=f"not in the {other} data",
        )
        n, miss = int(s.notna().sum()), int(s.isna().sum())
        if other == "current":
            fd.n_reference, fd.missing_reference = n, miss
        else:
            fd.n_current, fd.missing_current = n, miss
        out.append(fd)
    return out
