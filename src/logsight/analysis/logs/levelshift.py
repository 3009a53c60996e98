"""Sustained level shifts in a service's log windows, as one finding per change.

A deploy that changes a template's rate (or the error rate) for good shifts every window after
it; the per-window rule flags only the windows that cross its cut-off, scattered through the
change. :func:`level_shift_findings` finds the change point per (service, feature)
(:mod:`logsight.analysis.changepoint`, against the detector's robust baseline) and makes it one
``log_anomaly`` finding (subject ``level_shift:<feature>``) spanning the change, and the window
findings inside that span whose main deviation is the same feature are folded into it (listed
in its evidence) instead of standing as separate anomalies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from logsight.analysis.changepoint import LevelShift, level_shifts
from logsight.analysis.logs.findings import _label
from logsight.findings import Finding
from logsight.timeutil import parse_window

if TYPE_CHECKING:
    from logsight.analysis.logs.model import LogAnomalyModel

# features whose sustained change is a finding: template and level counts, and volume
SHIFT_PREFIXES = ("tpl_", "level_")
SHIFT_FEATURES = ("total",)
MIN_WINDOWS = 3


def _shiftable(col: str) -> bool:
    return (col.startswith(SHIFT_PREFIXES) and col != "tpl_other") or col in SHIFT_FEATURES


def level_shift_findings(
    model: LogAnomalyModel, feats: pd.DataFrame, window_findings: list[Finding], *,
    namespace: str | None, min_windows: int = MIN_WINDOWS, min_z: float = 6.0,
) -> tuple[list[Finding], list[Finding]]:
    """(level-shift findings, the window findings left after folding) for the scored windows
    ``feats`` (index (service, window), complete windows only)."""
    det = model.detector
    delta = parse_window(model.window)
    shifts_out: list[Finding] = []
    remaining = list(window_findings)
    if feats.empty:
        return shifts_out, remaining
    for service in feats.index.get_level_values("service").unique():
        if service not in det.center_.index:
            continue  # no baseline of its own: nothing to shift from
        series = feats.xs(service, level="service").sort_index()
        cols = [c for c in series.columns if _shiftable(str(c))]
        if len(series) < min_windows or not cols:
            continue
        found = level_shifts(series[cols], det.center_.loc[service], det.scale_.loc[service],
                             min_windows=min_windows, min_z=min_z)
        for sh in found[:3]:  # the strongest few; more are usually one change seen many ways
            start, end = sh.start, sh.last + delta
            folded = [f for f in remaining if f.service == service and f.kind == "log_anomaly"
                      and _top_feature(f) == sh.feature
                      and start <= pd.Timestamp(f.window_start) < end]
            remaining = [f for f in remaining if f not in folded]
            shifts_out.append(_finding(model, str(service), sh, end, folded,
                                       namespace=namespace))
    return shifts_out, remaining


def _top_feature(f: Finding) -> str | None:
    devs = f.evidence.get("deviations") or []
    return str(devs[0]["feature"]) if devs else None


def _finding(model: LogAnomalyModel, service: str, sh: LevelShift, end: pd.Timestamp,
             folded: list[Finding], *, namespace: str | None) -> Finding:
    label = _label(model, sh.feature)
    verb = "rose" if sh.direction == "up" else "fell"
    summary = (f"{label} {verb} from {sh.baseline:g} per window (baseline) to {sh.after:.3g} "
               f"from {sh.start:%H:%M} on and stayed there ({sh.windows} windows, z={sh.z:+.1f})")
    errors = sh.feature in ("level_error", "level_fatal") and sh.direction == "up"
    return Finding(
        kind="log_anomaly",
        title=f"Sustained change in {service}'s logs from {sh.start.isoformat()}",
        summary=summary,
        severity="high" if errors else "medium",
        score=abs(sh.z),
        service=service,
        subject=f"level_shift:{sh.feature}",
        window_start=sh.start.to_pydatetime(),
        window_end=end.to_pydatetime(),
        evidence={
            "rule": "level_shift",
            "change_point": sh.as_dict(),
            "feature_label": label,
            "window": model.window,
            "folded_windows": [str(pd.Timestamp(f.window_start).isoformat()) for f in folded],
        },
        sample_ids=[s for f in folded for s in f.sample_ids][:10],  # the folded windows' own
        namespace=namespace,
    )


__all__ = ["level_shift_findings"]
