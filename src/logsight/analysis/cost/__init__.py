"""What each service, model version and stage costs, from the resource metrics and a price
model (pure: frames in, dataclasses out).

* :mod:`~logsight.analysis.cost.model`: the YAML cost model (prices, capacity, tags);
* :mod:`~logsight.analysis.cost.usage`: metrics documents -> used / allocated per sample;
* :mod:`~logsight.analysis.cost.allocate`: priced samples -> cost per window and allocation,
  joined with predictions (cost per 1,000), summaries per service / version / stage / team;
* :mod:`~logsight.analysis.cost.findings`: cost per prediction up after a deploy, idle GPU,
  over-provisioned memory (rightsizing).
"""

from logsight.analysis.cost.allocate import (
    CostReport,
    CostRow,
    CostSummary,
    cost_report,
    cost_rows,
    prediction_counts,
    price_usage,
    summarize,
)
from logsight.analysis.cost.findings import (
    cost_per_prediction_findings,
    idle_gpu_findings,
    overprovisioned_memory_findings,
)
from logsight.analysis.cost.model import (
    GIB,
    Allocation,
    CostModel,
    CostModelError,
    Prices,
)
from logsight.analysis.cost.usage import TAGS, usage_frame

__all__ = ["GIB", "TAGS", "Allocation", "CostModel", "CostModelError", "CostReport", "CostRow",
           "CostSummary", "Prices", "cost_per_prediction_findings", "cost_report", "cost_rows",
           "idle_gpu_findings", "overprovisioned_memory_findings", "prediction_counts",
           "price_usage", "summarize", "usage_frame"]
