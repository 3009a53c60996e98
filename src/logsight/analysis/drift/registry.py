"""The drift tests as registered pure functions returning :class:`TestResult` (score,
threshold, direction), their default thresholds, and the configuration that picks a test
per column (:class:`DriftConfig`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from logsight.analysis.drift.kernels import (
    CATEGORICAL,
    DEFAULT_BINS,
    FINE_BINS,
    NUMERIC,
    PSI_EPSILON,
    FeatureType,
    _norm_scale,
    _sorted_clean,
    align_categories,
    bin_counts_sorted,
    binned_ks,
    binned_wasserstein,
    binned_wasserstein_error_bound,
    category_counts,
    chisquare_from_counts,
    feature_kind,
    js_distance_from_counts,
    ks_2samp_sorted,
    ks_pvalue,
    psi_from_counts,
    quantile_edges,
    wasserstein_sorted_quantiles,
)
from logsight.errors import BadRequest


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftThresholds:
    """Drift thresholds; p-value tests drift *below*, distance tests drift *above*."""

    ks_p_value: float = 0.05
    chisquare_p_value: float = 0.05
    psi: float = 0.2
    psi_warning: float = 0.1
    jensenshannon: float = 0.1
    wasserstein: float = 0.1

    def __post_init__(self) -> None:
        # a p-value threshold outside (0, 1) or a non-positive distance threshold makes every
        # feature drift (or none): always a mistake, so it is refused rather than obeyed
        for name in ("ks_p_value", "chisquare_p_value"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} threshold must be in (0, 1), got {v}")
        if not 0.0 < self.jensenshannon <= 1.0:
            raise ValueError(f"jensenshannon threshold must be in (0, 1], got "
                             f"{self.jensenshannon}")
        for name in ("psi", "wasserstein"):
            v = getattr(self, name)
            if not v > 0.0:
                raise ValueError(f"{name} threshold must be > 0, got {v}")
        if not self.psi_warning >= 0.0:
            raise ValueError(f"psi_warning threshold must be >= 0, got {self.psi_warning}")

    def for_test(self, test: str) -> float:
        """The threshold of ``test``: a field here for the built-in tests, else the default
        the test was registered with."""
        known = {
            "ks": self.ks_p_value,
            "chisquare": self.chisquare_p_value,
            "psi": self.psi,
            "jensenshannon": self.jensenshannon,
            "wasserstein": self.wasserstein,
        }
        return known[test] if test in known else DRIFT_TESTS[test].threshold


@dataclass(frozen=True)
class DriftConfig:
    """How features are compared. ``tests`` overrides the preset per column
    (``{"age": "wasserstein"}``) and ``default_tests`` the preset for every column
    (``{"numeric": "psi"}``, a global override); ``correction="bh"`` (the default) applies
    Benjamini-Hochberg to the p-values of the p-value tests across features before they are
    compared with the threshold, ``"none"`` compares each raw p-value.
    """

    bins: int = DEFAULT_BINS
    psi_epsilon: float = PSI_EPSILON
    fine_bins: int = FINE_BINS
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    small_sample: int = 1000
    categorical_max_unique: int = 5
    tests: Mapping[str, str] = field(default_factory=dict)
    correction: Literal["none", "bh"] = "bh"
    default_tests: Mapping[str, str] = field(default_factory=dict)
    max_categories: int = 1000

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.fine_bins < self.bins:
            raise ValueError(f"fine_bins ({self.fine_bins}) must be >= bins ({self.bins})")
        if not self.psi_epsilon > 0:
            raise ValueError(f"psi_epsilon must be > 0, got {self.psi_epsilon}")
        if self.correction not in ("none", "bh"):
            raise ValueError(f"correction must be 'none' or 'bh', got {self.correction!r}")
        for col, test in self.tests.items():
            if test not in DRIFT_TESTS:
                raise ValueError(
                    f"unknown drift test {test!r} for column {col!r}; "
                    f"expected one of {sorted(DRIFT_TESTS)}"
                )
        for kind, test in self.default_tests.items():
            if kind not in (NUMERIC, CATEGORICAL):
                raise ValueError(f"default_tests: unknown column type {kind!r}; expected "
                                 f"'{NUMERIC}' or '{CATEGORICAL}'")
            if test not in DRIFT_TESTS or kind not in DRIFT_TESTS[test].kinds:
                raise ValueError(f"default_tests: {test!r} is not a drift test for {kind} "
                                 f"columns")


class UnknownColumnError(BadRequest):
    """A per-column test override (request field ``tests``) names a column that is not
    compared."""

    def __init__(self, columns: Sequence[str], compared: Sequence[str]) -> None:
        self.columns = list(columns)
        self.compared = list(compared)
        super().__init__("tests", f"unknown column(s) {self.columns}; compared columns: "
                         f"{self.compared}")


class ColumnTypeError(BadRequest):
    """A column compared as numeric holds a value that is not a number on one side (the
    request field ``reference`` or ``current``)."""

    def __init__(self, column: str, side: Literal["reference", "current"], detail: str) -> None:
        self.column, self.side, self.detail = column, side, detail
        super().__init__(side, f"column {column!r} is compared as numeric but the {side} data "
                         f"has non-numeric values ({detail})")


def _check_overrides(config: DriftConfig, compared: Sequence[str]) -> None:
    unknown = [c for c in config.tests if c not in compared]
    if unknown:
        raise UnknownColumnError(unknown, compared)


def _numeric_values(values: Any, column: str, side: Literal["reference", "current"]) -> Any:
    """``values`` as something numpy turns into floats; only an object column (strings from a
    CSV, say) is converted here, so numeric columns cost nothing extra."""
    if isinstance(values, pd.Series) and not pd.api.types.is_numeric_dtype(values):
        try:
            return np.asarray(values, dtype=float)
        except (TypeError, ValueError) as e:
            raise ColumnTypeError(column, side, str(e)) from None
    return values


def default_test(kind: str, n_reference: int, n_current: int, *, small_sample: int = 1000) -> str:
    """The size-aware preset (as Evidently's): a p-value test while the smaller side has at most
    ``small_sample`` rows, an effect size above that, where every trivial difference becomes
    "significant" (normed Wasserstein for numeric, Jensen-Shannon for categorical columns).
    See docs/drift.md."""
    return default_rule(kind, n_reference, n_current, small_sample=small_sample)[0]


DecisionRule = Literal["p_value", "effect_size", "column_override", "global_override"]


def default_rule(kind: str, n_reference: int, n_current: int, *, small_sample: int = 1000
                 ) -> tuple[str, DecisionRule]:
    """(test, rule) of the preset: ``"p_value"`` while the smaller side has at most
    ``small_sample`` rows, ``"effect_size"`` above."""
    # the smaller side limits both the power of a test and the noise of an effect size
    small = min(n_reference, n_current) <= small_sample
    if kind == NUMERIC:
        return ("ks", "p_value") if small else ("wasserstein", "effect_size")
    return ("chisquare", "p_value") if small else ("jensenshannon", "effect_size")


# -- registered tests ------------------------------------------------------------------------
@dataclass(frozen=True)
class TestResult:
    """One drift test on one column: ``drifted`` = ``score`` beyond ``threshold`` in
    ``direction`` ("below": p-value tests, "above": distances). ``statistic`` is what a report
    shows next to the score (the KS D or chi-square statistic of a p-value test, the distance
    itself otherwise); ``error_bound`` is set by approximations (binned KS)."""

    __test__ = False  # not a pytest class despite the name

    test: str
    score: float
    threshold: float
    direction: Literal["below", "above"]
    drifted: bool
    p_value: float | None = None
    statistic: float | None = None
    error_bound: float | None = None

    @classmethod
    def decide(
        cls, test: str, score: float, threshold: float, direction: Literal["below", "above"],
        *, p_value: float | None = None, statistic: float | None = None,
        error_bound: float | None = None,
    ) -> TestResult:
        """The result with ``drifted`` decided (a NaN score never drifts)."""
        return cls(test, score, threshold, direction, exceeds(score, threshold, direction),
                   p_value, statistic, error_bound)


def exceeds(score: float, threshold: float, direction: Literal["below", "above"]) -> bool:
    """Whether ``score`` is beyond ``threshold`` in ``direction``; NaN is never beyond."""
    if math.isnan(score):
        return False
    return bool(score < threshold if direction == "below" else score > threshold)


@dataclass(frozen=True)
class NumericBins:
    """A numeric feature on both sides as histograms on shared left-closed bins (inner
    ``edges``; counts and sums have ``len(edges) + 1`` entries), what a reference profile and
    a ``range`` aggregation give. ``hi`` is the largest value of both samples, ``scale`` the
    reference's Wasserstein normaliser (its std, see :func:`_norm_scale`)."""

    edges: np.ndarray
    reference_counts: np.ndarray
    reference_sums: np.ndarray
    current_counts: np.ndarray
    current_sums: np.ndarray
    hi: float
    scale: float


TestInputs = Literal["sorted", "counts"]


@dataclass(frozen=True)
class DriftTest:
    """A registered drift test.

    ``fn(reference, current, *, threshold, **params) -> TestResult`` is pure and receives what
    :func:`compare` prepares once per column, according to ``inputs``:

    * ``"counts"``: two aligned count vectors over the same bins (numeric: the ``bins``
      reference-quantile bins; categorical: the union of categories, reference order first,
      as :func:`align_categories` returns them);
    * ``"sorted"``: the sorted, NaN-free float64 values of each side (numeric only; never
      empty).

    ``binned(bins: NumericBins, *, threshold, **params)`` is the optional implementation for
    :func:`compare_profile`, where a numeric feature exists only as histograms (``"counts"``
    tests need none: they get the PSI-bin counts there too). ``config_params`` maps a keyword
    of ``fn`` to the :class:`DriftConfig` attribute that supplies it (``{"epsilon":
    "psi_epsilon"}``); ``threshold`` is the default used when :class:`DriftThresholds` has no
    field for the test."""

    name: str
    kinds: tuple[str, ...]
    direction: Literal["below", "above"]
    fn: Callable[..., TestResult]
    inputs: TestInputs = "counts"
    threshold: float = 0.1
    binned: Callable[..., TestResult] | None = None
    config_params: Mapping[str, str] = field(default_factory=dict)


DRIFT_TESTS: dict[str, DriftTest] = {}


def register_test(
    name: str,
    kinds: tuple[str, ...],
    direction: Literal["below", "above"],
    *,
    inputs: TestInputs = "counts",
    threshold: float = 0.1,
    config_params: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., TestResult]], Callable[..., TestResult]]:
    """Register ``fn`` as drift test ``name`` (see :class:`DriftTest` for the contract); it can
    then be selected per column with ``DriftConfig(tests={"col": name})`` or the CLI's
    ``--test col=name``. Registering an existing name replaces it."""
    if inputs not in ("sorted", "counts"):
        raise ValueError(f"inputs must be 'sorted' or 'counts', got {inputs!r}")
    if inputs == "sorted" and CATEGORICAL in kinds:
        raise ValueError(f"test {name!r}: categorical columns only come as counts")
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")

    def deco(fn: Callable[..., TestResult]) -> Callable[..., TestResult]:
        DRIFT_TESTS[name] = DriftTest(name, tuple(kinds), direction, fn, inputs, threshold,
                                      None, dict(config_params or {}))
        return fn

    return deco


def register_binned(name: str) -> Callable[[Callable[..., TestResult]], Callable[..., TestResult]]:
    """Attach the :func:`compare_profile` implementation of a registered ``"sorted"`` test."""

    def deco(fn: Callable[..., TestResult]) -> Callable[..., TestResult]:
        DRIFT_TESTS[name] = replace(DRIFT_TESTS[name], binned=fn)
        return fn

    return deco


@register_test("ks", (NUMERIC,), "below", inputs="sorted", threshold=0.05)
def ks_test(reference: np.ndarray, current: np.ndarray, *, threshold: float = 0.05
            ) -> TestResult:
    """Two-sample Kolmogorov-Smirnov on *sorted* non-empty arrays (scipy's ``ks_2samp``);
    the score is the p-value, the statistic D."""
    d, p = ks_2samp_sorted(reference, current)
    return TestResult.decide("ks", p, threshold, "below", p_value=p, statistic=d)


@register_binned("ks")
def ks_binned_test(bins: NumericBins, *, threshold: float = 0.05) -> TestResult:
    """KS from histograms: D_binned <= D <= D_binned + ``error_bound``; p-value of D_binned."""
    rc, cc = bins.reference_counts, bins.current_counts
    d, bound = binned_ks(rc, cc)
    p = ks_pvalue(d, int(rc.sum()), int(cc.sum()))
    return TestResult.decide("ks", p, threshold, "below", p_value=p, statistic=d,
                             error_bound=bound)


@register_test("psi", (NUMERIC, CATEGORICAL), "above", threshold=0.2,
               config_params={"epsilon": "psi_epsilon"})
def psi_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.2,
    epsilon: float = PSI_EPSILON,
) -> TestResult:
    """PSI of two aligned count vectors (numeric: reference-quantile bins; categorical:
    categories), empty bins at frequency ``epsilon``. Reusable on any category counts, e.g.
    log templates before / after a deploy::

        DRIFT_TESTS["psi"].fn(before_counts, after_counts, threshold=0.2, epsilon=1e-4)

    Both vectors must list the same categories in the same order and each sum to > 0."""
    score = psi_from_counts(reference_counts, current_counts, epsilon=epsilon)
    return TestResult.decide("psi", score, threshold, "above", statistic=score)


@register_test("jensenshannon", (NUMERIC, CATEGORICAL), "above", threshold=0.1)
def jensenshannon_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.1
) -> TestResult:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two aligned count vectors; as for
    :func:`psi_test`, any category counts work::

        DRIFT_TESTS["jensenshannon"].fn(before_counts, after_counts, threshold=0.1)

    No smoothing is needed: JS is finite with empty bins."""
    score = js_distance_from_counts(reference_counts, current_counts)
    return TestResult.decide("jensenshannon", score, threshold, "above", statistic=score)


@register_test("wasserstein", (NUMERIC,), "above", inputs="sorted", threshold=0.1)
def wasserstein_test(
    reference: np.ndarray, current: np.ndarray, *, threshold: float = 0.1,
    scale: float | None = None,
) -> TestResult:
    """1-Wasserstein distance of *sorted* non-empty arrays divided by ``scale`` (default: the
    reference std, as Evidently; see :func:`_norm_scale` for a constant reference)."""
    if scale is None:
        std = float(reference.std())
        # the mean is only needed for a constant reference: skip a pass over the data otherwise
        scale = _norm_scale(std, float(reference.mean()) if std == 0 else 0.0)
    score = wasserstein_sorted_quantiles(reference, current) / scale
    return TestResult.decide("wasserstein", score, threshold, "above", statistic=score)


@register_binned("wasserstein")
def wasserstein_binned_test(bins: NumericBins, *, threshold: float = 0.1) -> TestResult:
    """Wasserstein from per-bin counts and sums (see :func:`binned_wasserstein`): the score
    is a lower bound, the true normed distance is at most ``score + error_bound``."""
    args = (bins.edges, bins.reference_counts, bins.reference_sums, bins.current_counts,
            bins.current_sums, bins.hi)
    score = binned_wasserstein(*args) / bins.scale
    bound = binned_wasserstein_error_bound(bins.edges, bins.reference_counts,
                                           bins.current_counts) / bins.scale
    return TestResult.decide("wasserstein", score, threshold, "above", statistic=score,
                             error_bound=bound)


@register_test("chisquare", (CATEGORICAL,), "below", threshold=0.05)
def chisquare_test(
    reference_counts: Any, current_counts: Any, *, threshold: float = 0.05
) -> TestResult:
    """Chi-square test of homogeneity of two aligned category count vectors; the score is the
    p-value, the statistic chi-square."""
    stat, p = chisquare_from_counts(reference_counts, current_counts)
    return TestResult.decide("chisquare", p, threshold, "below", p_value=p, statistic=stat)


# every result carries these statistics, whatever test decides
_ALL_STATISTICS: dict[str, tuple[str, ...]] = {
    NUMERIC: ("ks", "psi", "jensenshannon", "wasserstein"),
    CATEGORICAL: ("chisquare", "psi", "jensenshannon"),
}


@dataclass(frozen=True)
class _Prepared:
    """One column, prepared once for every test: aligned counts always; sorted values (raw
    numeric) or histograms (profile numeric)."""

    reference_counts: np.ndarray
    current_counts: np.ndarray
    reference: np.ndarray | None = None
    current: np.ndarray | None = None
    bins: NumericBins | None = None


def _run(name: str, prep: _Prepared, config: DriftConfig) -> TestResult:
    t = DRIFT_TESTS[name]
    kw: dict[str, Any] = {"threshold": config.thresholds.for_test(name)}
    for param, attr in t.config_params.items():
        kw[param] = getattr(config, attr)
    if t.inputs == "counts":
        return t.fn(prep.reference_counts, prep.current_counts, **kw)
    if prep.reference is not None and prep.current is not None:
        return t.fn(prep.reference, prep.current, **kw)
    if t.binned is None or prep.bins is None:
        raise ValueError(f"drift test {name!r} needs raw rows (it has no binned implementation)"
                         f" and cannot be used with a reference profile")
    return t.binned(prep.bins, **kw)


def _prepare_numeric(r: np.ndarray, c: np.ndarray, bins: int) -> _Prepared:
    edges = quantile_edges(r, bins)
    return _Prepared(bin_counts_sorted(r, edges), bin_counts_sorted(c, edges), r, c)


def run_test(
    name: str,
    reference: Any,
    current: Any,
    *,
    kind: FeatureType | None = None,
    config: DriftConfig | None = None,
) -> TestResult:
    """Run registered test ``name`` on raw values (NaN dropped), preparing them as
    :func:`compare` does; ``kind`` defaults to what :func:`feature_kind` says (categorical
    for a categorical-only test). For one-off use: :func:`compare` prepares each column once
    for all tests."""
    if name not in DRIFT_TESTS:
        raise ValueError(f"unknown drift test {name!r}; expected one of {sorted(DRIFT_TESTS)}")
    t = DRIFT_TESTS[name]
    config = config or DriftConfig()
    if kind is None:
        kind = t.kinds[0] if len(t.kinds) == 1 else feature_kind(  # type: ignore[assignment]  # both are one of the two kinds
            pd.Series(reference), categorical_max_unique=config.categorical_max_unique)
    if kind not in t.kinds:
        raise ValueError(f"test {name!r} does not apply to {kind} data")
    if kind == NUMERIC:
        r, _, _ = _sorted_clean(reference)
        c, _, _ = _sorted_clean(current)
        if not len(r) or not len(c):
            raise ValueError(f"{name} needs at least one non-missing value on each side")
        return _run(name, _prepare_numeric(r, c, config.bins), config)
    _, rc, cc = align_categories(category_counts(reference), category_counts(current))
    return _run(name, _Prepared(rc, cc), config)
