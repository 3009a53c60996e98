"""The cost job: what each service, model version, stage and team cost in a window, from the
resource metrics priced by a cost model and joined with the predictions served; the cost rows
stored in ``logsight-cost`` and the findings (cost per 1,000 predictions up after a deploy,
idle GPU, over-provisioned memory) in ``logsight-findings``.

The cost model: a YAML file (``--cost-model`` / ``cost_model``), else the file named by
``LOGSIGHT_COST_MODEL``, else the bundled illustrative list prices
(``analysis/cost/default-prices.yaml``); see :mod:`logsight.analysis.cost.model`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from logsight.analysis import cost as C
from logsight.errors import BadRequest, NoData
from logsight.findings import Finding, _jsonable
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.sources.metrics import ClusterMetrics, MetricsFiles, MetricsSource
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer, cost_documents

__all__ = ["DEFAULT_COST_MODEL", "BadRequest", "NoData", "ClusterMetrics", "ClusterWriter", "CostRequest",
           "CostResult", "MetricsFiles", "Scope", "Window", "cost", "cost_model_from_text",
           "load_cost_model",
           "resolve_cost_model"]

DEFAULT_COST_MODEL = Path(C.__file__).with_name("default-prices.yaml")
COST_MODEL_ENV = "LOGSIGHT_COST_MODEL"


def load_cost_model(path: str | Path) -> C.CostModel:
    """Parse and validate a cost model file; BadRequest (``cost_model``) saying what is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise BadRequest("cost_model", f"cannot read the cost model {p}: {e.strerror or e}"
                         ) from None
    return cost_model_from_text(text, where=str(p))


def cost_model_from_text(text: str, *, where: str = "the cost model") -> C.CostModel:
    """Parse and validate a cost model given as YAML text."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadRequest("cost_model", f"{where}: not valid YAML ({e})") from None
    try:
        return C.CostModel.from_mapping(doc)
    except C.CostModelError as e:
        raise BadRequest("cost_model", f"{where}: {e}") from None


def resolve_cost_model(path: str | Path | None = None) -> tuple[C.CostModel, str]:
    """The cost model and where it came from (the path, ``$LOGSIGHT_COST_MODEL``'s, or the
    bundled default)."""
    chosen = path or os.environ.get(COST_MODEL_ENV) or DEFAULT_COST_MODEL
    return load_cost_model(chosen), str(chosen)


@dataclass(frozen=True)
class CostRequest:
    window: Window = Window()
    scope: Scope = Scope()
    cost_model: C.CostModel | None = None  # None: resolve_cost_model()
    bucket: str = "1h"
    min_increase_pct: float = 20.0  # cost per 1k predictions, version vs its predecessor
    idle_gpu_pct: float = 10.0
    min_gpu_hours: float = 1.0
    rightsizing_ratio: float = 0.30  # p95 memory under this share of the allocation
    rightsizing_min_hours: float = 168.0  # over at least a week of samples
    require_data: bool = True  # NoData when the window holds no metrics (the scheduler: no)


@dataclass
class CostResult:
    report: C.CostReport
    findings: list[Finding]
    window: Window
    samples: int
    cost_model: str = ""
    empty_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.report.rows)

    def summary(self) -> dict[str, Any]:
        rep = self.report
        flat = {g: summary_rows(getattr(rep, g)) for g in
                ("by_service", "by_model_version", "by_stage", "by_team")}
        total = summary_rows([rep.total])[0] if rep.total else None
        return _jsonable({**rep.summary(), **flat, "total": total, "samples": self.samples,
                          "cost_model": self.cost_model,
                          "window": {"start": iso(self.window.start),
                                     "end": iso(self.window.end)}})


def _check_bucket(bucket: str) -> str:
    try:
        width = pd.Timedelta(pd.tseries.frequencies.to_offset(bucket))
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("bucket", f"bucket {bucket!r} is not a duration such as 15min, 1h "
                         "or 1D") from None
    if width < pd.Timedelta(minutes=1):
        raise BadRequest("bucket", f"bucket {bucket!r} is shorter than a minute")
    if width > pd.Timedelta(days=366):
        raise BadRequest("bucket", f"bucket {bucket!r} is longer than a year")
    return bucket


def cost(request: CostRequest, source: MetricsSource, writer: Writer | None = None
         ) -> CostResult:
    """Price the window's samples, split them over the versions served, summarise, find."""
    r, sc = request, request.scope
    bucket = _check_bucket(r.bucket)
    model, origin = (r.cost_model, "given") if r.cost_model else resolve_cost_model()
    start, end = r.window.start, r.window.end
    metrics = source.metrics(start, end, service=sc.service)
    usage = C.usage_frame(metrics)
    preds = source.predictions(start, end, bucket=bucket, service=sc.service)
    report, priced = C.cost_report(usage, preds, model, bucket=bucket, start=start, end=end)
    empty = None
    if priced.empty:  # samples are placed by the interval they cover: count after placing
        scope = f" of service {sc.service!r}" if sc.service else ""
        empty = (f"no resource metrics{scope} in {source.describe()} between "
                 f"{iso(start) or 'the first'} and {iso(end) or 'the last'} sample; start "
                 "the sampler (logsight.configure(..., resource_metrics=True))")
        if r.require_data:
            raise NoData(empty, parameters=("window", "service"))
    findings: list[Finding] = []
    if not priced.empty:
        ws: datetime = start or priced["start"].min().to_pydatetime()
        we: datetime = end or priced["timestamp"].max().to_pydatetime()
        ns = sc.namespace
        findings = [
            *C.cost_per_prediction_findings(report.rows, window_start=ws, window_end=we,
                                            min_increase_pct=r.min_increase_pct, namespace=ns),
            *C.idle_gpu_findings(priced, window_start=ws, window_end=we,
                                 idle_pct=r.idle_gpu_pct, min_gpu_hours=r.min_gpu_hours,
                                 namespace=ns, currency=model.currency),
            *C.overprovisioned_memory_findings(priced, model, window_start=ws, window_end=we,
                                               max_ratio=r.rightsizing_ratio,
                                               min_hours=r.rightsizing_min_hours, namespace=ns),
        ]
    if writer is not None:
        writer.cost(cost_documents(report.rows, namespace=sc.namespace))
        writer.findings(findings)
    return CostResult(report, findings, r.window, len(priced), origin, empty,
                      notes=list(report.notes))


def summary_rows(summaries: list[C.CostSummary]) -> list[dict[str, Any]]:
    """Summaries as flat JSON-safe dicts (the key's fields first)."""
    out = []
    for s in summaries:
        d = asdict(s)
        key = d.pop("key")
        out.append(_jsonable({**key, **d}))
    return out
