"""The API routes: cost per service, model version, stage and team (read only, cached)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from logsight import names
from logsight.engine import Engine
from logsight.errors import EngineUnavailable, LogsightError
from logsight.jobs import cost as cost_job
from logsight.service.context import ServiceContext, _finding_out, _json, times_key
from logsight.service.errors import api_error, error_responses
from logsight.service.models import FindingOut, Window
from logsight.timeutil import iso


class CostSummaryOut(BaseModel):
    """Totals of one group: ``service``, or ``model``/``model_version``/``stage``, or
    ``stage``, or ``team`` (none for the grand total)."""

    model_config = ConfigDict(extra="allow")

    total_cost: float
    cpu_cost: float
    memory_cost: float
    gpu_cost: float
    instance_cost: float
    gpu_hours: float
    predictions: int
    cost_per_1k_predictions: float | None = None
    first_window: str | None = None
    last_window: str | None = None


class CostRowOut(BaseModel):
    """One window of one allocation (the documents of ``logsight-cost``)."""

    model_config = ConfigDict(extra="allow")

    window_start: str
    window_end: str
    service: str
    team: str
    model: str
    model_version: str
    stage: str
    total_cost: float
    predictions: int
    cost_per_1k_predictions: float | None = None


class CostResponse(BaseModel):
    window: Window
    currency: str
    bucket: str
    cost_model: str = Field(description="where the prices came from (a file, or logsight's "
                            "bundled illustrative list prices)")
    samples: int
    total: CostSummaryOut | None
    by_service: list[CostSummaryOut]
    by_model_version: list[CostSummaryOut]
    by_stage: list[CostSummaryOut]
    by_team: list[CostSummaryOut]
    windows: list[CostRowOut]
    findings: list[FindingOut]
    notes: list[str]
    empty_reason: str | None = None


def _summaries(rows: list[dict[str, Any]]) -> list[CostSummaryOut]:
    return [CostSummaryOut.model_validate(r) for r in rows]


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/cost", response_model=CostResponse, tags=["cost"], dependencies=guarded,
                responses=errors)
    async def cost(
        service: Annotated[str | None, Query(max_length=256)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        bucket: Annotated[str, Query(max_length=16, description="Width of the cost windows "
                                     "(15min, 1h, 1D)")] = "1h",
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """What each service, model version, stage and team cost in the window, per window
        and per 1,000 predictions, priced by the service's cost model (`LOGSIGHT_COST_MODEL`,
        else logsight's illustrative list prices), with the cost findings (read only: nothing
        is stored; `POST /v1/analyses/cost` stores rows and findings). Cached briefly."""
        now = ctx.clock()
        s, e = ctx.parse_window(start, end, now=now)
        ns = ctx.check_namespace(namespace)
        times, fixed = times_key(now, [(("from", start), ("to", end))])
        key = ("cost", ns, service, bucket, times)

        def work() -> bytes:
            engine: Engine = ctx.holder.get()
            ctx.require_namespace(engine, ns)
            ctx.require_known(engine, "service", service, [names.METRICS], ns)
            try:
                result = cost_job.cost(
                    cost_job.CostRequest(cost_job.Window(s, e),
                                         cost_job.Scope(namespace=ns, service=service),
                                         bucket=bucket, require_data=False),
                    cost_job.ClusterMetrics(engine, ns))
            except EngineUnavailable:
                raise
            except LogsightError as err:
                raise api_error(err, {"window": "from/to", "window.start": "from",
                                      "window.end": "to"}) from None
            summary = result.summary()
            return _json(CostResponse(
                window=Window(start=iso(s), end=iso(e)), currency=summary["currency"],
                bucket=bucket, cost_model=result.cost_model, samples=result.samples,
                total=CostSummaryOut.model_validate(summary["total"]) if summary["total"]
                else None,
                by_service=_summaries(summary["by_service"]),
                by_model_version=_summaries(summary["by_model_version"]),
                by_stage=_summaries(summary["by_stage"]),
                by_team=_summaries(summary["by_team"]),
                windows=[CostRowOut.model_validate(r) for r in result.rows()],
                findings=[_finding_out(f) for f in result.findings],
                notes=result.notes, empty_reason=result.empty_reason,
            ))

        return await ctx.cached(key, fixed, [e], work)

    return router
