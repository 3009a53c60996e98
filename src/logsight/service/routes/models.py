"""The API routes: model drift and performance (read only, cached)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import Response

from logsight.service.context import (
    ServiceContext,
)
from logsight.service.errors import error_responses
from logsight.service.models import (
    AnalysisResponse,
)


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/drift", response_model=AnalysisResponse, tags=["models"],
             dependencies=guarded, responses=errors)
    async def drift(
        model: Annotated[str, Query(min_length=1, max_length=256)],
        reference_start: Annotated[str | None, Query(
            alias="reference_from", max_length=64,
            description="Reference window start (default: the window before the current)")
        ] = None,
        reference_end: Annotated[str | None, Query(alias="reference_to", max_length=64)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64,
                                           description="Current window start")] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Feature and prediction drift of `model`: reference vs current window (read only;
        ctx.cached briefly)."""
        return await ctx.compared_windows(
            "drift", (start, end), (reference_start, reference_end),
            ("reference_from", "reference_to"), namespace, model=model)

    @router.get("/v1/performance", response_model=AnalysisResponse, tags=["models"],
             dependencies=guarded, responses=errors)
    async def performance(
        model: Annotated[str, Query(min_length=1, max_length=256)],
        version: Annotated[str | None, Query(
            max_length=256, description="Only this model version (404 unknown_version when "
            "the model never sent it)")] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        baseline_start: Annotated[str | None, Query(alias="baseline_from", max_length=64)] = None,
        baseline_end: Annotated[str | None, Query(alias="baseline_to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
        estimate: Annotated[bool, Query(
            description="Estimate each version's accuracy before its labels land (CBPE, from "
            "calibrated probabilities; the baseline window is the labelled calibration "
            "check)")] = False,
    ) -> Response:
        """Model quality from feedback (per version) and KPI changes in a window (read only;
        ctx.cached briefly); with `estimate`, the estimated accuracy next to the realised."""
        return await ctx.compared_windows(
            "performance", (start, end), (baseline_start, baseline_end),
            ("baseline_from", "baseline_to"), namespace, model=model, version=version,
            estimate=estimate)

    return router
