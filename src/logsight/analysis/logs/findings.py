"""Anomalous windows as ``log_anomaly`` findings, with the deviating features explained."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from logsight.analysis.logs.detector import Deviation, LogAnomalyDetector
from logsight.analysis.logs.features import LEVELS, _is_volume
from logsight.findings import Finding

if TYPE_CHECKING:
    from logsight.analysis.logs.model import LogAnomalyModel


def _neutral_volume(
    det: LogAnomalyDetector, feats: pd.DataFrame, rows: np.ndarray
) -> pd.DataFrame:
    """``feats`` with the volume features of ``rows`` raised to at least the baseline centre:
    a cut-off can only lower counts, so a drop there says nothing, while a rise (a burst in
    the last minute read) is still evidence."""
    if not rows.any():
        return feats
    check_is_fitted(det, "estimator_")
    out = feats.copy()
    cols = [c for c in det.feature_names_ if _is_volume(c) and c in out.columns]
    center, _ = det._baseline_for(out.iloc[np.flatnonzero(rows)])
    idx = [det.feature_names_.index(c) for c in cols]
    sel = out.index[rows]
    out.loc[sel, cols] = np.maximum(out.loc[sel, cols].to_numpy(dtype=float), center[:, idx])
    return out


FEATURE_LABELS = {
    "total": "lines",
    "error_ratio": "share of error/fatal lines",
    "rate": "lines per second",
    "tpl_other": "lines of other known templates",
    "new_templates": "never-seen templates",
    "new_lines": "lines of never-seen templates",
    "new_error_lines": "error lines of never-seen templates",
    "distinct_templates": "distinct templates",
    **{f"level_{lv}": f"{lv} lines" for lv in LEVELS},
}


def _label(model: LogAnomalyModel, feature: str) -> str:
    if feature.startswith("tpl_") and feature != "tpl_other":
        cid = int(feature[4:])
        cluster = model.miner.clusters.get(cid)
        return f"lines of template {cid} '{cluster.template if cluster else '?'}'"
    return FEATURE_LABELS.get(feature, feature)


def _finding(
    model: LogAnomalyModel,
    service: str,
    wstart: pd.Timestamp,
    delta: pd.Timedelta,
    score: float,
    devs: list[Deviation],
    rows: pd.DataFrame,
    observed: pd.Series,
    decision: pd.Series,
    *,
    namespace: str | None,
    max_samples: int,
) -> Finding:
    new_templates, samples = _line_evidence(model, rows, max_samples)
    line_range = [str(rows["id"].iloc[0]), str(rows["id"].iloc[-1])] if len(rows) else None
    return build_finding(model, service, wstart, delta, score, devs, new_templates, samples,
                         observed, decision, namespace=namespace, line_range=line_range)


def _line_evidence(
    model: LogAnomalyModel, rows: pd.DataFrame, max_samples: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The never-seen templates (with an example line) and the sample ids of a window's lines."""
    new_rows = rows[~rows["template"].isin(list(model.known))]
    new_templates: list[dict[str, Any]] = []
    for cid, part in new_rows.groupby("template", sort=False):
        cluster = model.miner.clusters.get(int(cid))
        new_templates.append(
            {
                "template_id": int(cid),
                "template": cluster.template if cluster else "",
                "count": len(part),
                "example": str(part["message"].iloc[0])[:500],
                "example_id": str(part["id"].iloc[0]),
            }
        )
    new_templates.sort(key=lambda d: -int(d["count"]))
    # samples: lines of new templates first, then errors, then the rest
    priority = np.where(
        ~rows["template"].isin(list(model.known)),
        0,
        np.where(rows["level"].isin(["error", "fatal"]), 1, 2),
    )
    samples = rows.assign(_p=priority).sort_values("_p", kind="stable")["id"].head(max_samples)
    return new_templates, [str(s) for s in samples]


def build_finding(
    model: LogAnomalyModel,
    service: str,
    wstart: pd.Timestamp,
    delta: pd.Timedelta,
    score: float,
    devs: list[Deviation],
    new_templates: list[dict[str, Any]],
    samples: list[str],
    observed: pd.Series,
    decision: pd.Series,
    *,
    namespace: str | None,
    line_range: list[str] | None = None,
) -> Finding:
    """The ``log_anomaly`` finding of one window, from its evidence (whether it came from the
    window's lines or from counts and a bounded read of examples)."""
    deviations = [dict(d.as_dict(), label=_label(model, d.feature)) for d in devs]
    errors = int(observed.get("level_error", 0) + observed.get("level_fatal", 0))
    parts = []
    if deviations:
        d0 = deviations[0]
        parts.append(
            f"{d0['label']} was {d0['observed']:g} (baseline {d0['baseline']:g}, z={d0['z']:+.1f})"
        )
    if new_templates:
        parts.append(
            f"{len(new_templates)} never-seen template(s), e.g. {new_templates[0]['template']!r}"
        )
    summary = "; ".join(parts) or "unusual mix of log features"
    overwhelming = bool(decision["overwhelming"])
    forest = bool(decision["outlier"] and decision["meaningful"])
    severity = "high" if errors and (new_templates or score > 0.1 or overwhelming) else "medium"
    if observed.get("level_fatal", 0) > 0:
        severity = "critical"
    wend = wstart + delta
    return Finding(
        kind="log_anomaly",
        title=f"Anomalous logs in {service} at {wstart.isoformat()}",
        summary=summary,
        severity=severity,
        score=score,
        service=service,
        window_start=wstart.to_pydatetime(),
        window_end=wend.to_pydatetime(),
        evidence={
            "deviations": deviations,
            "new_templates": new_templates[:10],
            "lines": int(observed.get("total", 0)),
            "errors": errors,
            "window": model.window,
            # which half of the decision rule fired (see the module docstring)
            "rule": "isolation_forest" if forest else "overwhelming_error_evidence",
            "forest_outlier": bool(decision["outlier"]),
            "overwhelming": overwhelming,
            # without timestamps windows are line buckets on a synthetic clock: say which lines
            "line_range": line_range,
        },
        sample_ids=list(samples),
        namespace=namespace,
    )
