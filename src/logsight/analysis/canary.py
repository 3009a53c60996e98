"""Canary verdicts: two versions of a service running at once, one verdict - promote, hold or
roll back - with the evidence.

Pure. The checks reuse the significance tests logsight already has:

* latency: one-sided Mann-Whitney U (candidate slower), the test of trace regressions
  (:func:`logsight.analysis.traces.regressions._mwu_greater`); the effect is the p95 ratio;
* error rate: the chi-square test of homogeneity of drift
  (:func:`logsight.analysis.drift.kernels.chisquare_from_counts`) on (errors, successes),
  counted only when the candidate's rate is the higher one; the effect is the difference;
* any further comparison of the model (``extra``: accuracy or loss from
  :func:`logsight.analysis.performance.compare.compare_losses`, whose ``worse`` already needs
  both significance and effect).

The p-values of one canary are Benjamini-Hochberg adjusted together (drift's
:func:`~logsight.analysis.drift.kernels.benjamini_hochberg`). A check *fails* when it is
significant and its effect passes the limit; it is *suspect* when significant with a smaller
effect, or over the limit without significance. Verdict: ``roll back`` when any check fails;
``hold`` when a side has fewer than ``min_requests`` requests or a check is suspect;
``promote`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from logsight.analysis.drift.kernels import benjamini_hochberg, chisquare_from_counts
from logsight.analysis.performance.compare import Comparison
from logsight.analysis.traces.regressions import _mwu_greater
from logsight.findings import Finding

PROMOTE, HOLD, ROLL_BACK = "promote", "hold", "roll back"


@dataclass(frozen=True)
class CanaryCheck:
    metric: str  # latency_p95_ms | error_rate | <model metric>
    baseline_value: float | None
    candidate_value: float | None
    effect: float | None  # latency: ratio; error rate: difference; model: loss difference
    limit: float
    p_value: float | None
    p_adjusted: float | None
    status: str  # pass | suspect | fail | insufficient


@dataclass(frozen=True)
class CanaryVerdict:
    service: str
    baseline_version: str
    candidate_version: str
    verdict: str
    reason: str
    n_baseline: int
    n_candidate: int
    checks: list[CanaryCheck] = field(default_factory=list)


@dataclass(frozen=True)
class CanaryLimits:
    alpha: float = 0.01
    max_latency_ratio: float = 1.2  # candidate p95 / baseline p95 beyond which it fails
    max_error_increase: float = 0.02  # candidate error rate - baseline beyond which it fails
    min_requests: int = 50  # per side, below which the verdict is hold


def _ratio(c: float, b: float) -> float:
    return c / b if b > 0 else (float("inf") if c > 0 else 1.0)


def canary_verdict(
    *, service: str, baseline_version: str, candidate_version: str,
    baseline_latency_ms: Sequence[float] | np.ndarray,
    candidate_latency_ms: Sequence[float] | np.ndarray,
    baseline_errors: Sequence[bool] | np.ndarray, candidate_errors: Sequence[bool] | np.ndarray,
    extra: Sequence[Comparison] = (), limits: CanaryLimits = CanaryLimits(),
) -> CanaryVerdict:
    """The verdict on ``candidate_version`` against ``baseline_version`` from one latency and
    one error flag per request on each side (plus the model comparisons in ``extra``)."""
    bl, cl = np.asarray(baseline_latency_ms, float), np.asarray(candidate_latency_ms, float)
    be, ce = np.asarray(baseline_errors, bool), np.asarray(candidate_errors, bool)
    nb, nc = len(bl), len(cl)
    if nb < limits.min_requests or nc < limits.min_requests:
        return CanaryVerdict(service, baseline_version, candidate_version, HOLD,
                             f"not enough requests yet ({nb} on {baseline_version}, {nc} on "
                             f"{candidate_version}; {limits.min_requests} needed on each)",
                             nb, nc)
    b95, c95 = float(np.quantile(bl, 0.95)), float(np.quantile(cl, 0.95))
    lat_ratio = _ratio(c95, b95)
    p_lat = _mwu_greater(cl, bl)
    b_err, c_err = float(be.mean()), float(ce.mean())
    _, p_err = chisquare_from_counts([int(be.sum()), int(nb - be.sum())],
                                     [int(ce.sum()), int(nc - ce.sum())])
    if c_err <= b_err:  # one-sided: only a higher candidate rate is evidence against it
        p_err = 1.0
    model = [c for c in extra if c.p_value is not None]
    adjusted = benjamini_hochberg([p_lat, p_err, *[float(c.p_value or 1.0) for c in model]])

    def status(p_adj: float, over: bool) -> str:
        significant = p_adj < limits.alpha
        if significant and over:
            return "fail"
        return "suspect" if significant or over else "pass"

    checks = [
        CanaryCheck("latency_p95_ms", b95, c95, lat_ratio, limits.max_latency_ratio, p_lat,
                    float(adjusted[0]), status(adjusted[0], lat_ratio >= limits.max_latency_ratio)),
        CanaryCheck("error_rate", b_err, c_err, c_err - b_err, limits.max_error_increase, p_err,
                    float(adjusted[1]),
                    status(adjusted[1], c_err - b_err >= limits.max_error_increase)),
    ]
    for c, p_adj in zip(model, adjusted[2:], strict=True):
        checks.append(CanaryCheck(
            c.metric, c.baseline_value, c.candidate_value, c.loss_diff, 0.0, c.p_value,
            float(p_adj), "fail" if c.worse else ("suspect" if p_adj < limits.alpha
                                                  and (c.loss_diff or 0) > 0 else "pass")))
    for c in extra:
        if c.p_value is None:
            checks.append(CanaryCheck(c.metric, c.baseline_value, c.candidate_value, None, 0.0,
                                      None, None, "insufficient"))
    failed = [c for c in checks if c.status == "fail"]
    suspect = [c for c in checks if c.status in ("suspect", "insufficient")]
    if failed:
        verdict, why = ROLL_BACK, "worse on " + ", ".join(_describe(c) for c in failed)
    elif suspect:
        verdict, why = HOLD, "unclear on " + ", ".join(_describe(c) for c in suspect)
    else:
        verdict, why = PROMOTE, (f"no check worse (p95 x{lat_ratio:.2f}, error rate "
                                 f"{b_err:.1%} -> {c_err:.1%})")
    return CanaryVerdict(service, baseline_version, candidate_version, verdict, why, nb, nc,
                         checks)


def _describe(c: CanaryCheck) -> str:
    if c.status == "insufficient":
        return f"{c.metric} (not enough labels)"
    if c.metric == "latency_p95_ms":
        return (f"p95 latency {c.baseline_value:.1f} -> {c.candidate_value:.1f} ms "
                f"(x{c.effect:.2f}, p={c.p_adjusted:.2g})")
    if c.metric == "error_rate":
        return (f"error rate {c.baseline_value:.1%} -> {c.candidate_value:.1%} "
                f"(p={c.p_adjusted:.2g})")
    return f"{c.metric} (loss +{c.effect or 0:.3f}, p={c.p_adjusted:.2g})"


_SEVERITY = {ROLL_BACK: "high", HOLD: "low", PROMOTE: "low"}


def canary_finding(v: CanaryVerdict, *, window_start: datetime, window_end: datetime,
                   namespace: str | None = None) -> Finding:
    """The ``canary_verdict`` finding (one per canary and window; re-runs overwrite)."""
    evidence: dict[str, Any] = {"verdict": v.verdict, "n_baseline": v.n_baseline,
                                "n_candidate": v.n_candidate,
                                "checks": [c.__dict__ for c in v.checks]}
    return Finding(
        kind="canary_verdict",
        title=f"canary {v.service} {v.candidate_version}: {v.verdict}",
        summary=f"{v.candidate_version} vs {v.baseline_version} of {v.service}: {v.verdict} - "
                f"{v.reason}",
        severity=_SEVERITY[v.verdict], score={ROLL_BACK: 1.0, HOLD: 0.5, PROMOTE: 0.0}[v.verdict],
        service=v.service,
        subject=f"{v.service} {v.baseline_version}->{v.candidate_version}",
        model_version=v.candidate_version, window_start=window_start, window_end=window_end,
        namespace=namespace, evidence=evidence)


def model_canary_verdict(
    *, model: str, baseline_version: str, candidate_version: str,
    comparisons: Sequence[Comparison], kpi_changes: Sequence[Any] = (),
    n_baseline: int = 0, n_candidate: int = 0,
) -> CanaryVerdict:
    """The verdict on a model version from the performance analysis's comparisons with the
    baseline version (loss / accuracy: bootstrap interval and Welch's test, whose ``worse``
    needs both significance and effect; KPIs: non-overlapping bootstrap intervals). Roll back
    when one is worse; hold when none could be computed (too few labels) or some could not;
    promote otherwise."""
    checks: list[CanaryCheck] = []
    for c in comparisons:
        status = "insufficient" if c.p_value is None else ("fail" if c.worse else "pass")
        checks.append(CanaryCheck(c.metric, c.baseline_value, c.candidate_value, c.loss_diff,
                                  0.0, c.p_value, c.p_value, status))
    for k in kpi_changes:
        checks.append(CanaryCheck(f"kpi:{k.name}", k.baseline_mean, k.candidate_mean,
                                  k.difference, 0.0, None, None,
                                  "fail" if k.worse else "pass"))
    failed = [c for c in checks if c.status == "fail"]
    unclear = [c for c in checks if c.status == "insufficient"]
    if failed:
        verdict, why = ROLL_BACK, "worse on " + ", ".join(_describe_model(c) for c in failed)
    elif unclear or not checks:
        verdict, why = HOLD, ("not enough labelled predictions yet" if unclear or not checks
                              else "")
    else:
        verdict, why = PROMOTE, "no model metric or KPI worse than " + baseline_version
    return CanaryVerdict(model, baseline_version, candidate_version, verdict, why, n_baseline,
                         n_candidate, checks)


def _describe_model(c: CanaryCheck) -> str:
    if c.metric.startswith("kpi:"):
        return f"{c.metric[4:]} {c.baseline_value:.3g} -> {c.candidate_value:.3g}"
    return f"{c.metric} {c.baseline_value:.3g} -> {c.candidate_value:.3g}"
