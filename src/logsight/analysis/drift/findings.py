"""Drift results as findings (``feature_drift``, ``prediction_drift``, ``outlier_inputs``),
and the robust-z outlier scan behind the last."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.drift.raw import FeatureDrift
from logsight.analysis.drift.registry import DRIFT_TESTS
from logsight.analysis.outlier_scale import robust_scale_of
from logsight.findings import Finding


# -- outlier inputs --------------------------------------------------------------------------
@dataclass
class OutlierReport:
    """Rows of the current sample with a feature far outside the reference (robust z)."""

    n_rows: int
    n_outliers: int
    threshold: float
    by_feature: dict[str, int]
    max_z: dict[str, float]
    row_index: list[Any]
    scale: dict[str, str] = field(default_factory=dict)  # per feature: linear | log | ...


def robust_outliers(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    threshold: float = 6.0,
    mad_epsilon: float = 1e-9,
    skew_threshold: float = 0.1,
) -> OutlierReport:
    """Robust z against the reference, per numeric feature; a row is an outlier when any
    feature exceeds ``threshold``. The z respects skew (:mod:`logsight.analysis.outlier_scale`):
    a skewed feature is judged on a log scale, each side of the median with its own spread, so
    the ordinary tail of a lognormal or gamma feature is not flagged. The default (6, above the
    usual 3.5) keeps a clean feature set of tens of features at a false-alarm rate near 1e-8
    per value. ``mad_epsilon`` guards constant reference columns; ``skew_threshold`` is the
    quartile skewness beyond which the log scale is used."""
    cols = list(columns) if columns is not None else [
        c for c in reference if c in current and pd.api.types.is_numeric_dtype(reference[c])
        and not pd.api.types.is_bool_dtype(reference[c])
    ]
    if not cols or current.empty:
        return OutlierReport(len(current), 0, threshold, {}, {}, [])
    ref = reference[cols].to_numpy(dtype=float)
    cur = current[cols].to_numpy(dtype=float)
    z = np.zeros_like(cur)
    scales: dict[str, str] = {}
    for i, c in enumerate(cols):
        sc = robust_scale_of(ref[:, i], skew_threshold=skew_threshold, mad_epsilon=mad_epsilon)
        if sc is None:
            continue
        scales[c] = sc.scale
        z[:, i] = sc.z(cur[:, i])
    z = np.where(np.isnan(z), 0.0, z)
    flags = z > threshold
    rows = flags.any(axis=1)
    return OutlierReport(
        n_rows=len(cur),
        n_outliers=int(rows.sum()),
        threshold=threshold,
        by_feature={c: int(flags[:, i].sum()) for i, c in enumerate(cols) if flags[:, i].any()},
        max_z={c: float(z[:, i].max()) for i, c in enumerate(cols)},
        row_index=list(current.index[rows][:20]),
        scale=scales,
    )


# -- findings --------------------------------------------------------------------------------
PREDICTION_SUBJECTS = ("prediction", "prediction_value", "score")


def drift_findings(
    results: Sequence[FeatureDrift],
    *,
    model: str | None,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    service: str | None = None,
    model_version: str | None = None,
    namespace: str | None = None,
    reference: Mapping[str, Any] | None = None,
    prediction_subjects: Sequence[str] = PREDICTION_SUBJECTS,
) -> list[Finding]:
    """One finding per drifted column: ``prediction_drift`` for the prediction / confidence
    columns, ``feature_drift`` (subject = feature) for inputs."""
    out: list[Finding] = []
    for r in results:
        if not r.drifted:
            continue
        kind = "prediction_drift" if r.feature in prediction_subjects else "feature_drift"
        stat = r.statistic if r.statistic is not None else float("nan")
        if DRIFT_TESTS[r.test].direction == "below":
            # p-value tests: "strong" means two orders of magnitude past the threshold
            p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
            strong = p is not None and p < r.threshold / 100
        else:
            strong = stat > 2 * r.threshold
        out.append(Finding(
            kind=kind,
            title=f"{model or 'model'}: {r.feature} drifted ({r.test})",
            summary=(f"{r.test}={stat:.4g} (threshold {r.threshold:g}, rule {r.rule or '-'}); "
                     f"PSI={_fmt(r.psi)}, "
                     f"JS={_fmt(r.js_distance)}, Wasserstein={_fmt(r.wasserstein)}; "
                     f"{r.n_current} current vs {r.n_reference} reference values"),
            severity="high" if strong else "medium",
            score=float(r.psi if r.psi is not None else stat),
            confidence=1.0 - r.p_value if r.p_value is not None else None,
            service=service,
            subject=r.feature,
            feature=r.feature if kind == "feature_drift" else None,
            model=model,
            model_version=model_version,
            window_start=window_start,
            window_end=window_end,
            evidence={"drift": r.to_dict(), "reference": dict(reference or {})},
            namespace=namespace,
        ))
    return out


def outlier_findings(
    report: OutlierReport,
    *,
    model: str | None,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    service: str | None = None,
    namespace: str | None = None,
    sample_ids: Sequence[str] = (),
) -> list[Finding]:
    if not report.n_outliers:
        return []
    top = sorted(report.by_feature.items(), key=lambda kv: -kv[1])
    return [Finding(
        kind="outlier_inputs",
        title=f"{model or 'model'}: {report.n_outliers} outlier input(s)",
        summary=(f"{report.n_outliers} of {report.n_rows} requests have a feature with robust "
                 f"|z| > {report.threshold:g}: " + ", ".join(f"{k} ({v})" for k, v in top[:5])),
        severity="medium" if report.n_outliers / max(report.n_rows, 1) > 0.01 else "low",
        score=report.n_outliers / max(report.n_rows, 1),
        service=service,
        subject="inputs",
        model=model,
        window_start=window_start,
        window_end=window_end,
        evidence={"by_feature": report.by_feature, "max_z": report.max_z},
        sample_ids=list(sample_ids)[:20],
        namespace=namespace,
    )]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"
