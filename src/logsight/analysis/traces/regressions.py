"""Latency regressions per operation: a current window against a baseline, or two versions of
a service within one window (Mann-Whitney U, Benjamini-Hochberg adjusted), as
``trace_regression`` findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from logsight.analysis.drift import benjamini_hochberg
from logsight.analysis.traces.aggregate import aggregate_operations
from logsight.analysis.traces.spans import OPERATION_KEYS, OrphanPolicy, TraceAnalysis, _validate
from logsight.analysis.traces.tree import analyze_spans
from logsight.errors import BadRequest
from logsight.findings import Finding


# -- regressions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceRegression:
    """Comparison of one operation between a baseline and a current window.

    ``score`` is the smallest Benjamini-Hochberg adjusted one-sided Mann-Whitney U p-value of
    the tests that support a regression; ``direction="below"``: the operation regressed when
    the score is below ``threshold`` and the effect is large enough. ``reasons``: ``latency``
    (the span and its own self time got slower), ``critical_path_share`` (it holds more of the
    critical path); ``downstream`` marks a latency rise explained by slower children (not a
    regression of this operation: the children carry the finding)."""

    service: str
    operation: str
    baseline_count: int
    current_count: int
    baseline_p95_ms: float
    current_p95_ms: float
    p95_ratio: float
    self_p95_ratio: float
    baseline_share: float
    current_share: float
    share_change: float
    p_value_latency: float
    p_value_self: float
    p_value_share: float
    score: float
    threshold: float
    direction: str = "below"
    regressed: bool = False
    downstream: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _trace_fractions(analysis: TraceAnalysis) -> pd.DataFrame:
    """Per (service, name, trace): the share of the trace's critical path the operation held."""
    s, t = analysis.spans, analysis.traces
    per = (
        s.groupby([*OPERATION_KEYS, "trace_index"], sort=False)["critical_path_ms"]
        .sum()
        .reset_index()
    )
    total = per["trace_index"].map(t.set_index("trace_index")["duration_ms"]).to_numpy()
    safe = np.where(total > 0, total, 1.0)
    per["fraction"] = np.where(total > 0, per["critical_path_ms"].to_numpy() / safe, 0.0)
    return per


def _mwu_greater(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0  # identical samples: no evidence either way
    return float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)


def compare_operations(
    baseline: TraceAnalysis,
    current: TraceAnalysis,
    *,
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_share_change: float = 0.05,
    min_count: int = 20,
    epsilon_ms: float = 1e-3,
) -> list[TraceRegression]:
    """Compare each (service, operation) seen at least ``min_count`` times in both windows.

    Three one-sided Mann-Whitney U tests (current > baseline): span durations, self times, and
    the per-trace fraction of critical time the operation held. p-values are BH-adjusted over
    all tests. Latency regressed when durations and self times both rose significantly with a
    p95 ratio >= ``min_ratio`` (``epsilon_ms`` keeps a zero baseline finite); when only the
    duration rose the operation merely waits on slower children (``downstream``). Critical-path
    share regressed when its test is significant and the window share grew by at least
    ``min_share_change``. Rows are sorted: regressions first, most significant first."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    keys = list(OPERATION_KEYS)
    a = aggregate_operations(baseline).set_index(keys)
    b = aggregate_operations(current).set_index(keys)
    common = [
        key for key in b.index
        if key in a.index and a.at[key, "count"] >= min_count and b.at[key, "count"] >= min_count
    ]
    if not common:
        return []
    da = dict(tuple(baseline.spans.groupby(keys, sort=False)[["duration_ms", "self_time_ms"]]))
    db = dict(tuple(current.spans.groupby(keys, sort=False)[["duration_ms", "self_time_ms"]]))
    fa = dict(tuple(_trace_fractions(baseline).groupby(keys, sort=False)["fraction"]))
    fb = dict(tuple(_trace_fractions(current).groupby(keys, sort=False)["fraction"]))
    m = len(common)
    p = np.ones((3, m))
    self_ratio = np.ones(m)
    for i, key in enumerate(common):
        x, y = db[key], da[key]
        p[0, i] = _mwu_greater(x["duration_ms"].to_numpy(), y["duration_ms"].to_numpy())
        p[1, i] = _mwu_greater(x["self_time_ms"].to_numpy(), y["self_time_ms"].to_numpy())
        p[2, i] = _mwu_greater(fb[key].to_numpy(), fa[key].to_numpy())
        self_ratio[i] = (np.percentile(x["self_time_ms"], 95) + epsilon_ms) / (
            np.percentile(y["self_time_ms"], 95) + epsilon_ms
        )
    adj = benjamini_hochberg(p.ravel()).reshape(3, m)  # many operations are tested at once
    out: list[TraceRegression] = []
    for i, key in enumerate(common):
        ra, rb = a.loc[key], b.loc[key]
        ratio = (float(rb["latency_p95_ms"]) + epsilon_ms) / (
            float(ra["latency_p95_ms"]) + epsilon_ms
        )
        dshare = float(rb["critical_path_share"]) - float(ra["critical_path_share"])
        slower = bool(adj[0, i] < alpha and ratio >= min_ratio)
        self_slower = bool(adj[1, i] < alpha and self_ratio[i] >= min_ratio)
        reasons: list[str] = []
        supporting: list[float] = []
        if slower and self_slower:
            reasons.append("latency")
            supporting.append(max(adj[0, i], adj[1, i]))
        if adj[2, i] < alpha and dshare >= min_share_change:
            reasons.append("critical_path_share")
            supporting.append(adj[2, i])
        out.append(
            TraceRegression(
                service=str(key[0]),
                operation=str(key[1]),
                baseline_count=int(ra["count"]),
                current_count=int(rb["count"]),
                baseline_p95_ms=float(ra["latency_p95_ms"]),
                current_p95_ms=float(rb["latency_p95_ms"]),
                p95_ratio=ratio,
                self_p95_ratio=float(self_ratio[i]),
                baseline_share=float(ra["critical_path_share"]),
                current_share=float(rb["critical_path_share"]),
                share_change=dshare,
                p_value_latency=float(adj[0, i]),
                p_value_self=float(adj[1, i]),
                p_value_share=float(adj[2, i]),
                score=float(min(supporting)) if supporting else float(adj[:, i].min()),
                threshold=alpha,
                regressed=bool(reasons),
                downstream=slower and not self_slower,
                reasons=tuple(reasons),
            )
        )
    out.sort(key=lambda r: (not r.regressed, r.score, -r.p95_ratio))
    return out


def regression_findings(
    results: Sequence[TraceRegression],
    *,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    baseline_start: datetime | str | None = None,
    baseline_end: datetime | str | None = None,
    namespace: str | None = None,
    versions: VersionSplit | None = None,
) -> list[Finding]:
    """``trace_regression`` findings for the regressed rows (severity from the p95 ratio and
    share change: >= 2x or +0.3 high, >= 1.5x or +0.15 medium, else low).

    With ``versions`` (a comparison of two versions of one service in one window, see
    :func:`compare_versions`) the subject is ``"<operation> (<baseline> -> <candidate>)"`` so
    that it never overwrites the window-against-window finding of the same operation and
    window, and the evidence names the service and both versions."""
    out: list[Finding] = []
    for r in results:
        if not r.regressed:
            continue
        if r.p95_ratio >= 2.0 or r.share_change >= 0.3:
            severity = "high"
        elif r.p95_ratio >= 1.5 or r.share_change >= 0.15:
            severity = "medium"
        else:
            severity = "low"
        evidence = {k: v for k, v in r.__dict__.items() if k not in ("service", "operation")}
        evidence["reasons"] = list(r.reasons)
        evidence["baseline_start"] = baseline_start
        evidence["baseline_end"] = baseline_end
        subject, title_extra, summary_extra = r.operation, "", ""
        if versions is not None:
            evidence.update(
                comparison="versions",
                version_service=versions.service,
                baseline_version=versions.baseline_version,
                candidate_version=versions.candidate_version,
                baseline_traces=versions.baseline_traces,
                candidate_traces=versions.candidate_traces,
                mixed_traces=versions.mixed_traces,
            )
            pair = f"{versions.baseline_version} -> {versions.candidate_version}"
            subject = f"{r.operation} ({pair})"
            title_extra = f" in {versions.service} {versions.candidate_version}"
            summary_extra = (
                f" Traces through {versions.service} {versions.candidate_version} "
                f"({versions.candidate_traces}) against {versions.baseline_version} "
                f"({versions.baseline_traces}) in the same window."
            )
        out.append(
            Finding(
                kind="trace_regression",
                title=(
                    f"{r.service} {r.operation} slowed down{title_extra}: p95 x{r.p95_ratio:.2f}"
                ),
                summary=(
                    f"p95 {r.baseline_p95_ms:.1f} -> {r.current_p95_ms:.1f} ms "
                    f"(x{r.p95_ratio:.2f}, adj. p={r.p_value_latency:.2g}); critical-path share "
                    f"{r.baseline_share:.1%} -> {r.current_share:.1%} "
                    f"(adj. p={r.p_value_share:.2g}).{summary_extra}"
                ),
                severity=severity,
                score=max(r.p95_ratio, 1.0 + r.share_change),
                confidence=1.0 - r.score,
                service=r.service,
                subject=subject,
                operation=r.operation,
                window_start=window_start,
                window_end=window_end,
                evidence=evidence,
                namespace=namespace,
            )
        )
    return out


# -- versions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionSplit:
    """Which traces of a window went through which version of ``service`` (see
    :func:`split_by_version`); the span frames hold every span of those traces."""

    service: str
    baseline_version: str
    candidate_version: str
    baseline: pd.DataFrame = field(repr=False)
    candidate: pd.DataFrame = field(repr=False)
    baseline_traces: int = 0
    candidate_traces: int = 0
    mixed_traces: int = 0


def split_by_version(
    spans: pd.DataFrame, *, service: str, baseline_version: str, candidate_version: str
) -> VersionSplit:
    """Split a window's spans by the ``version`` column of ``service``'s spans.

    Whole traces are assigned, not single spans: a trace belongs to a version when ``service``
    ran that version in it, and it keeps all its spans (other services, their versions) so
    the trees, self times and critical paths stay those of the real requests. A trace that
    went through both versions (a retry landing on the other one) cannot be attributed and is
    left out of both sides (``mixed_traces``). The input is not modified."""
    _validate(spans)
    if "version" not in spans.columns:
        raise BadRequest("candidate_version",
                         "span frame has no 'version' column: versions cannot be compared")
    if str(baseline_version) == str(candidate_version):
        raise BadRequest("candidate_version", "baseline and candidate version are the same "
                         f"({baseline_version!r})")
    own = spans["service"].astype(str).to_numpy() == str(service)
    if not own.any():
        raise BadRequest("candidate_version", f"no spans of service {service!r} in the window")
    version = spans["version"].astype(object).where(spans["version"].notna(), "").astype(str)
    version = version.to_numpy()
    trace = spans["trace_id"].to_numpy(dtype=object)
    base_traces = pd.unique(trace[own & (version == str(baseline_version))])
    cand_traces = pd.unique(trace[own & (version == str(candidate_version))])
    missing = [
        v for v, t in ((baseline_version, base_traces), (candidate_version, cand_traces))
        if not len(t)
    ]
    if missing:
        seen = sorted({v for v in version[own] if v})
        raise BadRequest(
            "candidate_version",
            f"service {service!r} has no spans of version(s) {missing} in the window; "
            f"versions seen: {seen}"
        )
    # membership per distinct trace id, broadcast back by code (a window has many spans)
    codes, uniques = pd.factorize(pd.Series(trace))
    ids = pd.Index(uniques)
    base_u, cand_u = ids.isin(base_traces), ids.isin(cand_traces)
    mixed = int((base_u & cand_u).sum())
    in_base = (base_u & ~cand_u)[codes]
    in_cand = (cand_u & ~base_u)[codes]
    return VersionSplit(
        service=str(service),
        baseline_version=str(baseline_version),
        candidate_version=str(candidate_version),
        baseline=spans[in_base],
        candidate=spans[in_cand],
        baseline_traces=int(len(base_traces) - mixed),
        candidate_traces=int(len(cand_traces) - mixed),
        mixed_traces=mixed,
    )


def compare_versions(
    spans: pd.DataFrame,
    *,
    service: str,
    baseline_version: str,
    candidate_version: str,
    orphans: OrphanPolicy = "attach",
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_share_change: float = 0.05,
    min_count: int = 20,
    epsilon_ms: float = 1e-3,
) -> tuple[list[TraceRegression], VersionSplit]:
    """Compare two versions of ``service`` within one window, per (service, operation): the
    traces that went through ``candidate_version`` against those through ``baseline_version``
    (:func:`split_by_version`), with the same tests and thresholds as
    :func:`compare_operations` (its ``baseline`` side is the baseline version). Returns the
    rows and the split (trace counts for the evidence)."""
    split = split_by_version(
        spans, service=service, baseline_version=baseline_version,
        candidate_version=candidate_version,
    )
    results = compare_operations(
        analyze_spans(split.baseline, orphans=orphans),
        analyze_spans(split.candidate, orphans=orphans),
        alpha=alpha, min_ratio=min_ratio, min_share_change=min_share_change,
        min_count=min_count, epsilon_ms=epsilon_ms,
    )
    return results, split
