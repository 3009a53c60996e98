"""Usage rows priced by a :class:`~logsight.analysis.cost.model.CostModel`, summed per window
and allocation, and joined with the predictions the services served.

Per sample: ``cpu_cost = max(cpu_alloc, cpu_used) * hours * cpu_hour``, the same for memory
(GiB), ``gpu_cost = gpu_count * hours * gpu_hour(gpu_model)``; on an instance type the whole
instance-hour instead (``instance_cost``; the per-resource columns stay as quantities only).
Per window (``bucket``, a pandas frequency such as ``1h``) a service's cost is split over the
model versions it served in proportion to their predictions in that window, so
``cost_per_1k_predictions`` of a version is what its traffic cost; a window without predictions
keeps the service's own tags (a training job: its ``model`` / ``model_version`` labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.cost.model import CostModel

COST_COLUMNS = ("cpu_cost", "memory_cost", "gpu_cost", "instance_cost", "total_cost")
QUANTITIES = ("cpu_core_hours", "memory_gb_hours", "gpu_hours", "hours")
KEYS = ("service", "team", "model", "model_version", "stage", "capacity", "instance_type")


def price_usage(usage: pd.DataFrame, model: CostModel) -> tuple[pd.DataFrame, list[str]]:
    """The usage rows with the charged quantities, their costs and the allocation columns
    (:data:`KEYS` but ``model_version`` from the tags); notes on prices that were missing."""
    notes: list[str] = []
    u = usage.copy()
    services = sorted(set(u["service"]))
    alloc = {s: model.allocation(s) for s in services}

    def tag(name: str) -> pd.Series:
        yaml = u["service"].map({s: a.tags.get(name, "") for s, a in alloc.items()})
        own = u[f"tag.{name}"] if f"tag.{name}" in u else pd.Series("", index=u.index)
        return own.where(own != "", yaml).fillna("").astype(str)

    for name in ("team", "model", "model_version", "stage"):
        u[name] = tag(name)
    u["model_version"] = u["model_version"].where(u["model_version"] != "",
                                                  u["service_version"])
    u["capacity"] = u["service"].map({s: a.capacity for s, a in alloc.items()})
    u["instance_type"] = u["service"].map({s: a.instance_type or "" for s, a in alloc.items()})
    u["cpu_core_hours"] = np.fmax(u["cpu_alloc"], u["cpu_used"]).fillna(0.0) * u["hours"]
    u["memory_gb_hours"] = np.fmax(u["mem_alloc_gb"], u["mem_used_gb"]).fillna(0.0) * u["hours"]
    u["gpu_hours"] = u["gpu_count"] * u["hours"]
    cpu_p = np.zeros(len(u))
    mem_p = np.zeros(len(u))
    gpu_p = np.zeros(len(u))
    inst_p = np.zeros(len(u))
    # prices per (capacity, instance type, GPU model): a handful of combinations, not rows
    for (cap, it, gm), idx in u.groupby(["capacity", "instance_type", "gpu_model"]).groups.items():
        pos = u.index.get_indexer(idx)
        if it:
            inst_p[pos] = model.instance_hour(it, cap)
            continue
        prices, own = model.rates(cap)
        if not own:
            notes.append(f"no {cap} prices: on_demand prices used")
        cpu_p[pos], mem_p[pos] = prices.cpu_hour, prices.memory_gb_hour
        if (u["gpu_count"].to_numpy()[pos] > 0).any():
            g = prices.gpu(gm or None)
            if g is None:
                notes.append(f"no {cap} GPU price for {gm or 'an unnamed GPU'!r} (and no "
                             "default): its GPU-hours cost 0")
            gpu_p[pos] = g or 0.0
    on_instance = u["instance_type"] != ""
    u["cpu_cost"] = np.where(on_instance, 0.0, u["cpu_core_hours"] * cpu_p)
    u["memory_cost"] = np.where(on_instance, 0.0, u["memory_gb_hours"] * mem_p)
    u["gpu_cost"] = np.where(on_instance, 0.0, u["gpu_hours"] * gpu_p)
    u["instance_cost"] = u["hours"] * inst_p
    u["total_cost"] = u["cpu_cost"] + u["memory_cost"] + u["gpu_cost"] + u["instance_cost"]
    return u, sorted(set(notes))


def prediction_counts(predictions: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """Predictions per (window, service, model, model_version) from a frame with
    ``timestamp``, ``service``, ``model``, ``model_version`` columns (one row per prediction,
    or pre-counted with a ``count`` column)."""
    cols = ["window_start", "service", "model", "model_version", "predictions"]
    if predictions is None or predictions.empty:
        return pd.DataFrame(columns=cols)
    p = predictions
    ts = pd.to_datetime(p["timestamp"], utc=True, format="ISO8601")
    frame = pd.DataFrame({
        "window_start": ts.dt.floor(bucket),
        "service": p["service"].fillna("").astype(str),
        "model": p["model"].fillna("").astype(str),
        "model_version": p["model_version"].fillna("").astype(str),
        "predictions": p["count"].astype(float) if "count" in p else 1.0,
    })
    return frame.groupby(cols[:-1], as_index=False)["predictions"].sum()


@dataclass
class CostRow:
    """The cost of one allocation in one window (a document of ``logsight-cost``)."""

    window_start: datetime
    window_end: datetime
    service: str
    team: str
    model: str
    model_version: str
    stage: str
    capacity: str
    instance_type: str
    hours: float
    cpu_core_hours: float
    memory_gb_hours: float
    gpu_hours: float
    cpu_cost: float
    memory_cost: float
    gpu_cost: float
    instance_cost: float
    total_cost: float
    predictions: int
    cost_per_1k_predictions: float | None
    currency: str = "USD"


def per_1k(cost: float, predictions: float) -> float | None:
    return 1000.0 * cost / predictions if predictions > 0 else None


def cost_rows(priced: pd.DataFrame, counts: pd.DataFrame, *, bucket: str,
              currency: str = "USD", start: datetime | None = None,
              end: datetime | None = None) -> list[CostRow]:
    """Sum the priced samples per (window, allocation) and split each service's window over
    the model versions it served (see the module doc). Samples are placed by the start of the
    interval they cover; only those starting in ``[start, end)`` count."""
    p = priced
    if start is not None:
        p = p[p["start"] >= pd.Timestamp(start)]
    if end is not None:
        p = p[p["start"] < pd.Timestamp(end)]
    if p.empty:
        return []
    p = p.assign(window_start=p["start"].dt.floor(bucket))
    group = ["window_start", *KEYS]
    sums = p.groupby(group, as_index=False)[[*QUANTITIES, *COST_COLUMNS]].sum()
    c = counts.rename(columns={"model": "p_model", "model_version": "p_version"})
    c = c.assign(share=c["predictions"] / c.groupby(["window_start", "service"])[
        "predictions"].transform("sum"))
    j = sums.merge(c, on=["window_start", "service"], how="left")
    served = j["share"].notna()
    j["model"] = j["p_model"].where(served, j["model"])
    j["model_version"] = j["p_version"].where(served, j["model_version"])
    share = j["share"].fillna(1.0)
    for col in (*QUANTITIES, *COST_COLUMNS):
        j[col] = j[col] * share
    j["predictions"] = j["predictions"].fillna(0.0)
    width = pd.tseries.frequencies.to_offset(bucket)
    rows: list[CostRow] = []
    for r in j.sort_values(["window_start", "service", "model", "model_version"]).to_dict(
            "records"):
        ws = pd.Timestamp(r["window_start"])
        rows.append(CostRow(
            window_start=ws.to_pydatetime(), window_end=(ws + width).to_pydatetime(),
            **{k: str(r[k]) for k in KEYS}, hours=float(r["hours"]),
            cpu_core_hours=float(r["cpu_core_hours"]),
            memory_gb_hours=float(r["memory_gb_hours"]), gpu_hours=float(r["gpu_hours"]),
            cpu_cost=float(r["cpu_cost"]), memory_cost=float(r["memory_cost"]),
            gpu_cost=float(r["gpu_cost"]), instance_cost=float(r["instance_cost"]),
            total_cost=float(r["total_cost"]), predictions=int(round(r["predictions"])),
            cost_per_1k_predictions=per_1k(float(r["total_cost"]), float(r["predictions"])),
            currency=currency))
    return rows


@dataclass
class CostSummary:
    """Totals of one group (a service, a model version, a stage, a team, or everything)."""

    key: dict[str, str]
    cpu_cost: float
    memory_cost: float
    gpu_cost: float
    instance_cost: float
    total_cost: float
    gpu_hours: float
    predictions: int
    cost_per_1k_predictions: float | None
    first_window: datetime | None = None
    last_window: datetime | None = None


def summarize(rows: list[CostRow], by: tuple[str, ...]) -> list[CostSummary]:
    """Totals per value of ``by`` (a tuple of :class:`CostRow` field names; () = all),
    costliest first."""
    groups: dict[tuple[str, ...], list[CostRow]] = {}
    for r in rows:
        groups.setdefault(tuple(str(getattr(r, k)) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        total = sum(r.total_cost for r in rs)
        preds = sum(r.predictions for r in rs)
        out.append(CostSummary(
            key=dict(zip(by, key, strict=True)), cpu_cost=sum(r.cpu_cost for r in rs),
            memory_cost=sum(r.memory_cost for r in rs), gpu_cost=sum(r.gpu_cost for r in rs),
            instance_cost=sum(r.instance_cost for r in rs), total_cost=total,
            gpu_hours=sum(r.gpu_hours for r in rs), predictions=preds,
            cost_per_1k_predictions=per_1k(total, preds),
            first_window=min(r.window_start for r in rs),
            last_window=max(r.window_end for r in rs)))
    return sorted(out, key=lambda s: (-s.total_cost, tuple(s.key.values())))


@dataclass
class CostReport:
    rows: list[CostRow]
    by_service: list[CostSummary]
    by_model_version: list[CostSummary]
    by_stage: list[CostSummary]
    by_team: list[CostSummary]
    total: CostSummary | None
    currency: str = "USD"
    bucket: str = "1h"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"currency": self.currency, "bucket": self.bucket,
                "total": asdict(self.total) if self.total else None,
                "by_service": [asdict(s) for s in self.by_service],
                "by_model_version": [asdict(s) for s in self.by_model_version],
                "by_stage": [asdict(s) for s in self.by_stage],
                "by_team": [asdict(s) for s in self.by_team], "notes": list(self.notes)}


def cost_report(usage: pd.DataFrame, predictions: pd.DataFrame | None, model: CostModel, *,
                bucket: str = "1h", start: datetime | None = None,
                end: datetime | None = None) -> tuple[CostReport, pd.DataFrame]:
    """The report and the priced samples (for the findings)."""
    priced, notes = price_usage(usage, model)
    if start is not None:
        priced = priced[priced["start"] >= pd.Timestamp(start)]
    if end is not None:
        priced = priced[priced["start"] < pd.Timestamp(end)]
    counts = prediction_counts(predictions if predictions is not None else pd.DataFrame(),
                               bucket)
    rows = cost_rows(priced, counts, bucket=bucket, currency=model.currency)
    total = summarize(rows, ())
    report = CostReport(
        rows=rows, by_service=summarize(rows, ("service",)),
        by_model_version=summarize(rows, ("model", "model_version", "stage")),
        by_stage=summarize(rows, ("stage",)), by_team=summarize(rows, ("team",)),
        total=total[0] if total else None, currency=model.currency, bucket=bucket,
        notes=notes)
    return report, priced
