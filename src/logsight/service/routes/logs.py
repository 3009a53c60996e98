"""The API routes: log anomalies of a window against a baseline (read only, cached)."""

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

    @router.get("/v1/anomalies", response_model=AnalysisResponse, tags=["logs"],
             dependencies=guarded, responses=errors)
    async def anomalies(
        service: Annotated[str | None, Query(max_length=256)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        baseline_start: Annotated[str | None, Query(
            alias="baseline_from", max_length=64,
            description="Baseline start (default: the window before)")] = None,
        baseline_end: Annotated[str | None, Query(alias="baseline_to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Anomalous ctx.log windows of the current window against a baseline (read only;
        ctx.cached briefly)."""
        return await ctx.compared_windows(
            "log_anomalies", (start, end), (baseline_start, baseline_end),
            ("baseline_from", "baseline_to"), namespace, service=service)

    return router
