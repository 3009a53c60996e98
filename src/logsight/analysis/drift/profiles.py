"""Drift from profiles: a reference summarised once (:class:`ReferenceProfile`, quantile
bins and category counts), a current window summarised on its edges, and
:func:`compare_profile` from the two (the cluster's aggregation-only path)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.drift.kernels import (
    CATEGORICAL,
    DEFAULT_BINS,
    FINE_BINS,
    NUMERIC,
    _merge_to,
    _norm_scale,
    _sorted_quantiles,
    bin_counts_sorted,
    bin_sums_sorted,
    category_counts,
    feature_kind,
    quantile_edges,
)
from logsight.analysis.drift.raw import FeatureDrift, _categorical_from_counts, _evaluate, _finalise
from logsight.analysis.drift.registry import (
    DriftConfig,
    NumericBins,
    TestResult,
    _check_overrides,
    _numeric_values,
    _Prepared,
)


# -- profiles (binned comparison) ------------------------------------------------------------
@dataclass
class NumericProfile:
    """Fine histogram of one numeric reference feature on left-closed bins of ``edges``
    (``counts`` and ``sums`` have len(edges) + 1 entries: below edges[0] ... at/above
    edges[-1]); the per-bin sums make the binned Wasserstein exact wherever the two CDFs do
    not cross inside a bin."""

    name: str
    n: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    edges: list[float]
    counts: list[int]
    sums: list[float]
    psi_edges: list[float]
    type: str = NUMERIC


@dataclass
class CategoricalProfile:
    name: str
    n: int
    missing: int
    counts: dict[str, int]
    type: str = CATEGORICAL


@dataclass
class ReferenceProfile:
    """What drift needs to know about a reference sample; stored in ``PROFILES_INDEX``."""

    features: dict[str, NumericProfile | CategoricalProfile]
    bins: int = DEFAULT_BINS
    fine_bins: int = FINE_BINS

    def to_document(self) -> dict[str, Any]:
        return {
            "bins": self.bins,
            "fine_bins": self.fine_bins,
            "features": [asdict(f) for f in self.features.values()],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ReferenceProfile:
        feats: dict[str, NumericProfile | CategoricalProfile] = {}
        for f in doc["features"]:
            f = dict(f)
            if f.get("type") == NUMERIC:
                feats[f["name"]] = NumericProfile(**f)
            else:
                f["counts"] = {str(k): int(v) for k, v in dict(f["counts"]).items()}
                feats[f["name"]] = CategoricalProfile(**f)
        return cls(features=feats, bins=int(doc.get("bins", DEFAULT_BINS)),
                   fine_bins=int(doc.get("fine_bins", FINE_BINS)))


def profile_edges(sorted_reference: np.ndarray, *, bins: int, fine_bins: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """(all edges, PSI edges): the PSI edges plus the fine quantiles, the min and just above
    the max, so the PSI bins are unions of profile bins."""
    r = sorted_reference
    psi_edges = quantile_edges(r, bins)
    fine = _sorted_quantiles(r, np.arange(0, fine_bins + 1) / fine_bins)
    top = np.nextafter(r[-1], np.inf)
    return np.unique(np.concatenate([psi_edges, fine, [top]])), psi_edges


def numeric_profile_from_quantiles(
    name: str, *, quantiles: Sequence[float], psi_quantiles: Sequence[float], n: int,
    missing: int, mean: float, std: float, vmin: float, vmax: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Edges for a profile whose quantiles come from elsewhere (e.g. a percentiles agg);
    returns (edges, psi_edges); the counts are then filled from a range agg."""
    psi_edges = np.unique(np.asarray(psi_quantiles, dtype=float))
    if vmin == vmax:
        psi_edges = np.array([vmin, np.nextafter(vmin, np.inf)])
    top = np.nextafter(vmax, np.inf)
    edges = np.unique(np.concatenate([psi_edges, np.asarray(quantiles, float), [vmin, top]]))
    return edges, psi_edges


def build_profile(
    reference: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig | None = None,
    kinds: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Summarise a reference frame once: fine quantile histograms and category counts."""
    config = config or DriftConfig()
    cols = list(columns) if columns is not None else list(reference.columns)
    feats: dict[str, NumericProfile | CategoricalProfile] = {}
    for col in cols:
        if col not in reference:
            raise ValueError(f"column {col!r} not in the reference data")
        s = reference[col]
        kind = (kinds or {}).get(col) or feature_kind(
            s, categorical_max_unique=config.categorical_max_unique
        )
        if kind == NUMERIC:
            a = np.asarray(s, dtype=float)
            r = np.sort(a[np.isfinite(a)])  # +-inf has no place on the histogram
            if not len(r):
                raise ValueError(f"reference column {col!r} has no values")
            edges, psi_edges = profile_edges(r, bins=config.bins, fine_bins=config.fine_bins)
            feats[col] = NumericProfile(
                name=col, n=len(r), missing=len(a) - len(r), mean=float(r.mean()),
                std=float(r.std()), min=float(r[0]), max=float(r[-1]),
                edges=edges.tolist(), counts=bin_counts_sorted(r, edges).tolist(),
                sums=bin_sums_sorted(r, edges).tolist(), psi_edges=psi_edges.tolist(),
            )
        else:
            feats[col] = CategoricalProfile(
                name=col, n=int(s.notna().sum()), missing=int(s.isna().sum()),
                counts=category_counts(s),
            )
    return ReferenceProfile(features=feats, bins=config.bins, fine_bins=config.fine_bins)


@dataclass
class NumericSummary:
    """A current window as counts on a profile's edges (what a ``range`` agg returns)."""

    counts: list[int]
    sums: list[float]
    missing: int = 0
    min: float | None = None
    max: float | None = None


@dataclass
class CategoricalSummary:
    counts: dict[str, int]
    missing: int = 0


CurrentSummary = dict[str, NumericSummary | CategoricalSummary]


def summarize_current(profile: ReferenceProfile, current: pd.DataFrame) -> CurrentSummary:
    """The current frame reduced to what :func:`compare_profile` needs (the file-side twin of
    the cluster aggregations in ``logsight.sources.mlevents``)."""
    out: CurrentSummary = {}
    for name, fp in profile.features.items():
        if name not in current:
            raise ValueError(f"feature {name!r} of the profile is not in the current data")
        s = current[name]
        if isinstance(fp, NumericProfile):
            a = np.asarray(_numeric_values(s, name, "current"), dtype=float)
            v = np.sort(a[~np.isnan(a)])
            edges = np.asarray(fp.edges, dtype=float)
            out[name] = NumericSummary(
                counts=bin_counts_sorted(v, edges).tolist(),
                sums=bin_sums_sorted(v, edges).tolist(),
                missing=len(a) - len(v),
                min=float(v.min()) if len(v) else None,
                max=float(v.max()) if len(v) else None,
            )
        else:
            out[name] = CategoricalSummary(counts=category_counts(s), missing=int(s.isna().sum()))
    return out


def compare_profile(
    profile: ReferenceProfile,
    current: CurrentSummary,
    *,
    config: DriftConfig | None = None,
) -> list[FeatureDrift]:
    """Drift from a stored profile and binned current counts (no raw rows). Tests are run
    through ``DRIFT_TESTS``: ``"counts"`` tests on the PSI-bin / category counts, ``"sorted"``
    tests through their ``binned`` implementation (a test without one is refused)."""
    config = config or DriftConfig(bins=profile.bins, fine_bins=profile.fine_bins)
    _check_overrides(config, list(profile.features))
    evaluated: list[tuple[FeatureDrift, TestResult | None]] = []
    for name, fp in profile.features.items():
        cs = current.get(name)
        if cs is None:
            raise ValueError(f"no current summary for feature {name!r}")
        if isinstance(fp, CategoricalProfile):
            if not isinstance(cs, CategoricalSummary):
                raise ValueError(f"feature {name!r}: categorical profile, numeric summary")
            evaluated.append(_categorical_from_counts(
                name, fp.counts, cs.counts, config, fp.missing, cs.missing, method="binned"
            ))
            continue
        if not isinstance(cs, NumericSummary):
            raise ValueError(f"feature {name!r}: numeric profile, categorical summary")
        edges = np.asarray(fp.edges, dtype=float)
        rc = np.asarray(fp.counts, dtype=np.int64)
        cc = np.asarray(cs.counts, dtype=np.int64)
        if len(cc) != len(edges) + 1:
            raise ValueError(
                f"feature {name!r}: {len(cc)} current bins for {len(edges) + 1} profile bins"
            )
        fd = FeatureDrift(
            feature=name, type=NUMERIC, test="", statistic=None, p_value=None, threshold=0.0,
            drifted=False, n_reference=int(rc.sum()), n_current=int(cc.sum()),
            missing_reference=fp.missing, missing_current=cs.missing, method="binned",
        )
        evaluated.append((fd, _evaluate(fd, partial(
            _prepare_binned, fp, cs, edges, rc, cc), config)))
    return _finalise(evaluated, config)


def _prepare_binned(fp: NumericProfile, cs: NumericSummary, edges: np.ndarray,
                    rc: np.ndarray, cc: np.ndarray) -> _Prepared:
    psi_edges = np.asarray(fp.psi_edges, dtype=float)
    hi = max(fp.max, cs.max if cs.max is not None else fp.max)
    bins = NumericBins(edges, rc, np.asarray(fp.sums, float), cc, np.asarray(cs.sums, float),
                       hi, _norm_scale(fp.std, fp.mean))
    return _Prepared(_merge_to(edges, rc, psi_edges), _merge_to(edges, cc, psi_edges),
                     bins=bins)


def drifted_features(results: Iterable[FeatureDrift]) -> list[str]:
    return [r.feature for r in results if r.drifted]


def profile_quantiles(fp: NumericProfile, qs: Sequence[float]) -> list[float]:
    """Quantiles of a profiled feature: the lower edge of the fine bin holding each one.
    ``counts[0]`` is below ``edges[0]`` and ``counts[i]`` is ``[edges[i-1], edges[i])``, so the
    bin where the cumulative share first reaches q starts at ``edges[i-1]``; for a discrete
    feature (counts, categories as numbers) every value opens its bin, and this is exact."""
    edges = np.asarray(fp.edges, dtype=float)
    cum = np.cumsum(fp.counts) / max(sum(fp.counts), 1)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q, side="left"))
        out.append(float(edges[min(max(i - 1, 0), len(edges) - 1)]))
    return out
