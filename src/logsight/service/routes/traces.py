"""The API routes: trace bottlenecks (read only, cached)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import Response

from logsight import names
from logsight.engine import Engine
from logsight.jobs import JobParams
from logsight.service.context import (
    ServiceContext,
    _finding_out,
    _json,
    times_key,
)
from logsight.service.errors import error_responses
from logsight.service.models import (
    BottleneckRow,
    BottlenecksResponse,
    Window,
)
from logsight.timeutil import iso


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/bottlenecks", response_model=BottlenecksResponse, tags=["traces"],
             dependencies=guarded, responses=errors)
    async def bottlenecks(
        service: Annotated[str | None, Query(max_length=256,
                                             description="Entry-point service")] = None,
        operation: Annotated[str | None, Query(
            max_length=512, description="Entry-point operation (root span name)")] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        top: Annotated[int, Query(ge=1, le=1000)] = 10,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Operations ranked by the critical-path time they contribute (read only: nothing is
        stored; `POST /v1/analyses/bottlenecks` stores findings). Aggregated from the
        trace-completion job's documents where it covered the window, else recomputed from raw
        spans (`answered_from`, `notes`). Cached briefly: see the
        `X-Logsight-Cache` and `Age` headers."""
        now = ctx.clock()
        s, e = ctx.parse_window(start, end, now=now)
        ns = ctx.check_namespace(namespace)
        times, fixed = times_key(now, [(("from", start), ("to", end))])
        key = ("bottlenecks", ns, service, operation, top, times)

        def check(engine: Engine) -> None:
            ctx.require_namespace(engine, ns)
            ctx.require_known(engine, "service", service, [names.TRACES], ns)

        def work() -> bytes:
            result = ctx.run_result("bottlenecks", JobParams(
                start=s, end=e, service=service, operation=operation, namespace=ns, top=top,
                write=False), check=check)
            stats = getattr(result, "stats", {}) or {}
            return _json(BottlenecksResponse(
                window=Window(start=iso(s), end=iso(e)), service=service,
                operation=operation,
                bottlenecks=[BottleneckRow.model_validate(r) for r in result.rows()],
                findings=[_finding_out(f) for f in result.findings],
                answered_from=getattr(result, "answered_from", "spans"),
                notes=list(getattr(result, "notes", [])),
                stats={k: int(v) for k, v in stats.items() if isinstance(v, int)},
            ))

        return await ctx.cached(key, fixed, [e], work)

    return router
