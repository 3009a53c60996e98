"""Cost findings: ``cost_per_prediction_increase`` (a deploy made each prediction dearer),
``idle_gpu`` (GPUs paid for and barely used) and ``overprovisioned_memory`` (p95 usage far
below the allocation: a rightsizing suggestion with the number and what it saves)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from logsight.analysis.cost.allocate import CostRow, per_1k
from logsight.analysis.cost.model import CostModel
from logsight.findings import Finding


def _t(ts: pd.Timestamp | datetime) -> datetime:
    return pd.Timestamp(ts).to_pydatetime()


def cost_per_prediction_findings(
    rows: list[CostRow], *, window_start: datetime, window_end: datetime,
    min_increase_pct: float = 20.0, min_predictions: int = 100, namespace: str | None = None,
) -> list[Finding]:
    """Per (service, model): the versions in the order they started serving; each version
    whose cost per 1,000 predictions is ``min_increase_pct`` above its predecessor's (both with
    ``min_predictions``) is a finding dated from its first window (the deploy)."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    first: dict[tuple[str, str, str], datetime] = {}
    for r in rows:
        if r.predictions <= 0:
            continue
        v = acc.setdefault((r.service, r.model), {}).setdefault(r.model_version, [0.0, 0.0])
        v[0] += r.total_cost
        v[1] += r.predictions
        k = (r.service, r.model, r.model_version)
        first[k] = min(first.get(k, r.window_start), r.window_start)
    out: list[Finding] = []
    for (service, model), versions in acc.items():
        order = sorted((first[(service, model, ver)], ver) for ver in versions)
        for (_, prev), (deployed, cur) in zip(order, order[1:], strict=False):
            (pc, pn), (cc, cn) = versions[prev], versions[cur]
            if pn < min_predictions or cn < min_predictions:
                continue
            before, after = per_1k(pc, pn), per_1k(cc, cn)
            if not before or after is None:
                continue
            pct = 100.0 * (after / before - 1.0)
            if pct < min_increase_pct:
                continue
            out.append(Finding(
                kind="cost_per_prediction_increase",
                title=f"{model} {cur}: cost per 1,000 predictions up {pct:.0f}% after the "
                      "deploy",
                summary=(f"Service {service!r}: {model} version {cur} (serving from "
                         f"{deployed:%Y-%m-%d %H:%M}) costs {after:.4f} per 1,000 "
                         f"predictions, {pct:.1f}% more than version {prev} ({before:.4f}); "
                         f"{int(cn)} predictions for {cc:.2f} against {int(pn)} for "
                         f"{pc:.2f}."),
                severity="high" if pct >= 100 else "medium" if pct >= 50 else "low",
                score=pct, service=service, subject=f"{model}:{prev}->{cur}", model=model,
                model_version=cur, window_start=deployed, window_end=window_end,
                namespace=namespace,
                evidence={"baseline_version": prev, "version": cur, "increase_pct": pct,
                          "cost_per_1k_before": before, "cost_per_1k_after": after,
                          "predictions_before": int(pn), "predictions_after": int(cn),
                          "cost_before": pc, "cost_after": cc,
                          "period_start": window_start}))
    return out


def idle_gpu_findings(
    priced: pd.DataFrame, *, window_start: datetime, window_end: datetime,
    idle_pct: float = 10.0, min_gpu_hours: float = 1.0, namespace: str | None = None,
    currency: str = "USD",
) -> list[Finding]:
    """Services whose attached GPUs averaged under ``idle_pct`` utilisation (weighted by
    GPU-hours) over at least ``min_gpu_hours``: what they cost is the waste."""
    g = priced[(priced["gpu_count"] > 0)]
    out: list[Finding] = []
    for service, s in g.groupby("service"):
        hours = float(s["gpu_hours"].sum())
        known = s["gpu_util_pct"].notna()
        if hours < min_gpu_hours or not known.any():
            continue
        util = float(np.average(s.loc[known, "gpu_util_pct"], weights=s.loc[known, "gpu_hours"]))
        if util >= idle_pct:
            continue
        cost = float(s["gpu_cost"].sum() + s.loc[s["instance_type"] != "", "instance_cost"]
                     .sum())
        models = sorted(m for m in set(s["gpu_model"]) if m)
        out.append(Finding(
            kind="idle_gpu", title=f"{service}: GPU idle ({util:.1f}% busy)",
            summary=(f"Service {service!r} kept {hours:.1f} GPU-hours "
                     f"({', '.join(models) or 'GPU'}) at {util:.1f}% mean utilisation "
                     f"(< {idle_pct:g}%), costing {cost:.2f} {currency}: move it to CPU, share "
                     "the GPU, or scale it to zero when idle."),
            severity="high" if cost >= 10 else "medium", score=cost, service=str(service),
            subject="gpu", window_start=window_start, window_end=window_end,
            namespace=namespace,
            evidence={"gpu_hours": hours, "mean_utilization_pct": util, "gpu_cost": cost,
                      "gpu_models": models, "threshold_pct": idle_pct, "currency": currency}))
    return out


def overprovisioned_memory_findings(
    priced: pd.DataFrame, model: CostModel, *, window_start: datetime, window_end: datetime,
    max_ratio: float = 0.30, quantile: float = 0.95, min_hours: float = 168.0,
    headroom: float = 1.3, step_gb: float = 0.125, namespace: str | None = None,
) -> list[Finding]:
    """Services whose memory usage quantile (p95) stayed under ``max_ratio`` of the allocation
    (request, else limit) over at least ``min_hours`` of samples (a week by default): suggest
    ``ceil(p95 * headroom / step_gb) * step_gb`` GiB and what the difference would have saved
    in the period and per 30 days."""
    out: list[Finding] = []
    m = priced[priced["mem_alloc_gb"].notna() & priced["mem_used_gb"].notna()]
    for service, s in m.groupby("service"):
        span_h = float((s["timestamp"].max() - s["start"].min()).total_seconds()) / 3600.0
        if span_h < min_hours:
            continue
        p95 = float(np.quantile(s["mem_used_gb"], quantile))
        alloc = float(s["mem_alloc_gb"].median())
        if alloc <= 0 or p95 >= max_ratio * alloc:
            continue
        suggested = math.ceil(round(p95 * headroom / step_gb, 9)) * step_gb
        if suggested >= alloc:
            continue
        replica_hours = float(s["hours"].sum())
        cap = str(s["capacity"].iloc[0])
        instance = str(s["instance_type"].iloc[0])
        price = 0.0 if instance else model.rates(cap)[0].memory_gb_hour  # type: ignore[arg-type]  # capacity came from the model
        saved = (alloc - suggested) * replica_hours * price
        per_30d = saved * 720.0 / span_h if span_h > 0 else 0.0
        pct = 100.0 * p95 / alloc
        out.append(Finding(
            kind="overprovisioned_memory",
            title=f"{service}: memory over-provisioned (p95 {pct:.0f}% of {alloc:g} GiB)",
            summary=(f"Service {service!r} used at most {p95:.2f} GiB at p{quantile * 100:g} "
                     f"over {span_h:.0f} h, {pct:.1f}% of its {alloc:g} GiB allocation: set the "
                     f"memory request/limit to {suggested:g} GiB (p{quantile * 100:g} x "
                     f"{headroom:g} headroom), saving {saved:.2f} {model.currency} over the "
                     f"period, about {per_30d:.2f} {model.currency} per 30 days"
                     + (f" (on instance type {instance}: choose a smaller one)" if instance
                        else "") + "."),
            severity="medium" if per_30d >= 10 else "low", score=per_30d, service=str(service),
            subject="memory", window_start=window_start, window_end=window_end,
            namespace=namespace,
            evidence={"p95_gb": p95, "allocated_gb": alloc, "ratio": p95 / alloc,
                      "suggested_gb": suggested, "headroom": headroom, "period_hours": span_h,
                      "replica_hours": replica_hours, "saved": saved, "saved_per_30d": per_30d,
                      "currency": model.currency, "threshold_ratio": max_ratio}))
    return out
