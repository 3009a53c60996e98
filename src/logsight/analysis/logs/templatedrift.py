"""Template drift per deploy: the template mix before and after a ``service.version``
change, tested with the shared registered drift tests (``template_drift`` findings)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis import drift as _drift
from logsight.analysis.drift import DRIFT_TESTS
from logsight.analysis.logs.features import prepare_frame
from logsight.analysis.templates import TemplateMiner
from logsight.findings import Finding
from logsight.timeutil import short_time

# -- template drift per deploy -----------------------------------------------------------------
# The drift tests are the shared registered ones (logsight.analysis.drift), so a template PSI
# means the same as a feature PSI. These aliases keep ``from logsight.analysis.logs import
# psi_test, js_test`` working.
psi_test = _drift.psi_test


js_test = _drift.jensenshannon_test


def _template_tests() -> list[str]:
    """Registered tests on category counts that drift *above* their threshold: the severity
    rule of :func:`template_drift` ("high" beyond twice the threshold) needs a distance."""
    return sorted(
        name for name, t in DRIFT_TESTS.items()
        if t.inputs == "counts" and _drift.CATEGORICAL in t.kinds and t.direction == "above"
    )


def _contributions(test: str, before: np.ndarray, after: np.ndarray, epsilon: float
                   ) -> tuple[str, np.ndarray]:
    """Per-template terms of the score, smoothed exactly as the test smooths: PSI terms (sum
    = PSI, empty templates at frequency ``epsilon``, no renormalisation) for ``psi`` and any
    other test; for ``jensenshannon`` the JS divergence terms (sum = distance squared, base 2,
    no smoothing needed). Every term is >= 0, so the largest are the most shifted templates."""
    p = before / before.sum()
    q = after / after.sum()
    if test == "jensenshannon":
        m = (p + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            # 0 * log(0 / m) is 0 by convention
            tp = np.where(p > 0, p * np.log2(p / m), 0.0)
            tq = np.where(q > 0, q * np.log2(q / m), 0.0)
        return "jensenshannon_divergence", (tp + tq) / 2
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return "psi", (q - p) * np.log(q / p)


def template_drift(
    frame: pd.DataFrame,
    templates: np.ndarray,
    *,
    miner: TemplateMiner | None = None,
    test: str = "psi",
    threshold: float | None = None,
    epsilon: float = _drift.PSI_EPSILON,
    min_lines: int = 20,
    top: int = 10,
    namespace: str | None = None,
    weights: np.ndarray | None = None,
    first_seen: Mapping[tuple[str, str], pd.Timestamp] | None = None,
) -> list[Finding]:
    """A ``template_drift`` finding for every change of ``version`` within a service whose
    template distribution before vs after drifts according to ``test`` (a registered test of
    :data:`logsight.analysis.drift.DRIFT_TESTS` on category counts: ``"psi"`` or
    ``"jensenshannon"``) at ``threshold`` (default: the test's registered default).
    ``epsilon`` is the PSI frequency of a template absent on one side, used both by the test
    and by the per-template contributions in the evidence. Rows need ``timestamp``,
    ``service`` and ``version``; sides with fewer than ``min_lines`` are skipped.

    The finding is keyed on (service, ``"prev->next"``, time of the first line of the new
    version): ``window_start`` and ``window_end`` are both that instant, so every run over a
    range that contains the deploy rewrites the same finding instead of adding one.

    ``weights``: lines per row when ``frame`` is a count frame (timestamps are then window
    starts, and ``first_seen`` gives the time of each (service, version)'s first line)."""
    allowed = _template_tests()
    if test not in allowed:
        raise ValueError(f"unknown drift test {test!r} for templates; choose one of {allowed}")
    spec = DRIFT_TESTS[test]
    if threshold is None:
        threshold = spec.threshold
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if min_lines < 1:
        raise ValueError(f"min_lines must be at least 1, got {min_lines}")
    kw: dict[str, Any] = {"threshold": threshold}
    if "epsilon" in spec.config_params:  # only smoothed tests take it (JS needs none)
        kw["epsilon"] = epsilon
    frame = prepare_frame(frame)
    w = np.ones(len(frame)) if weights is None else np.asarray(weights, dtype=float)
    df = frame.assign(template=np.asarray(templates, dtype=np.int64), _w=w)
    df = df[df["version"].notna() & (df["version"].astype(str) != "")]
    findings: list[Finding] = []
    for service, part in df.groupby("service", sort=True):
        part = part.sort_values("timestamp", kind="stable")
        firsts = part.groupby("version", sort=False)["timestamp"].min()
        if first_seen:
            firsts = pd.Series({v: first_seen.get((str(service), str(v)), t)
                                for v, t in firsts.items()}, dtype=firsts.dtype)
        firsts = firsts.sort_values()
        first_of = {str(v): t for v, t in firsts.items()}
        versions = [str(v) for v in firsts.index]
        for prev, nxt in zip(versions, versions[1:], strict=False):
            before = part[part["version"].astype(str) == prev]
            after = part[part["version"].astype(str) == nxt]
            if before["_w"].sum() < min_lines or after["_w"].sum() < min_lines:
                continue
            cats = sorted(set(before["template"]) | set(after["template"]))
            b = before.groupby("template")["_w"].sum().reindex(cats, fill_value=0).to_numpy(float)
            a = after.groupby("template")["_w"].sum().reindex(cats, fill_value=0).to_numpy(float)
            result = spec.fn(b, a, **kw)
            if not result.drifted:
                continue
            measure, contrib = _contributions(test, b, a, epsilon)
            order = np.argsort(-contrib, kind="stable")[:top]
            shifted = []
            for j in order:
                cid = int(cats[j])
                cluster = miner.clusters.get(cid) if miner else None
                shifted.append(
                    {
                        "template_id": cid,
                        "template": cluster.template if cluster else "",
                        "share_before": round(float(b[j] / b.sum()), 4),
                        "share_after": round(float(a[j] / a.sum()), 4),
                        "contribution": round(float(contrib[j]), 4),
                    }
                )
            deployed = _pydt(first_of[nxt] if first_seen else after["timestamp"].min())
            findings.append(
                Finding(
                    kind="template_drift",
                    title=f"Log templates of {service} shifted after deploy {prev} -> {nxt}",
                    summary=(
                        f"{result.test}={result.score:.3f} (threshold {result.threshold}); "
                        f"most shifted: {shifted[0]['template']!r} "
                        f"{shifted[0]['share_before']:.1%} -> {shifted[0]['share_after']:.1%}"
                    ),
                    severity="medium" if result.score < 2 * result.threshold else "high",
                    score=result.score,
                    service=str(service),
                    subject=f"{prev}->{nxt}",
                    model_version=nxt,
                    window_start=deployed,
                    window_end=deployed,
                    evidence={
                        "test": result.test,
                        "score": result.score,
                        "threshold": result.threshold,
                        "direction": result.direction,
                        "epsilon": kw.get("epsilon"),
                        "version_before": prev,
                        "version_after": nxt,
                        "first_line_after": short_time(deployed),
                        "lines_before": len(before),
                        "lines_after": len(after),
                        "contribution_measure": measure,
                        "shifted_templates": shifted,
                    },
                    sample_ids=[str(i) for i in after["id"].head(5)],
                    namespace=namespace,
                )
            )
    return findings


def _pydt(ts: Any) -> datetime | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).to_pydatetime()
