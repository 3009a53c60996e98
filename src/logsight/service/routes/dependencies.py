"""The API routes: the service dependency map (read only, cached)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from logsight.engine import Engine
from logsight.jobs import JobParams
from logsight.service.context import ServiceContext, _finding_out, _json, times_key
from logsight.service.errors import error_responses
from logsight.service.models import FindingOut, Window
from logsight.timeutil import iso


class DependencyEdgeOut(BaseModel):
    source: str = Field(description="The calling service")
    target: str = Field(description="The called service")
    calls: int
    rate_per_s: float | None = Field(description="Calls per second over the window")
    errors: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    via: str = Field(description="span (parent/child across services), peer (peer.service of "
                     "a client span), mesh; joined with + when several")


class DependenciesResponse(BaseModel):
    window: Window
    baseline: Window | None = None
    edges: list[DependencyEdgeOut]
    findings: list[FindingOut] = Field(
        description="dependency_new / dependency_vanished against the baseline window")


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/dependencies", response_model=DependenciesResponse, tags=["traces"],
                dependencies=guarded, responses=errors)
    async def dependencies(
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        baseline_from: Annotated[str | None, Query(max_length=64, description=(
            "Baseline start (default: one window length before baseline_to)"))] = None,
        baseline_to: Annotated[str | None, Query(max_length=64, description=(
            "Baseline end (default: from)"))] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """The edges between services in the window (client/server span pairs, parent/child
        across services, peer.service), with rate, error rate and p95 latency per edge, and
        the edges that are new or vanished against the baseline window (read only: `POST
        /v1/analyses/dependencies` stores the map and the findings)."""
        now = ctx.clock()
        s, e = ctx.parse_window(start, end, now=now)
        bs, be = ctx.baseline_window(s, e, baseline_from, baseline_to,
                                     ("baseline_from", "baseline_to"), now=now,
                                     kind="dependencies")
        ns = ctx.check_namespace(namespace)
        times, fixed = times_key(now, [(("from", start), ("to", end)),
                                       (("baseline_from", baseline_from),
                                        ("baseline_to", baseline_to))])
        key = ("dependencies", ns, times)

        def check(engine: Engine) -> None:
            ctx.require_namespace(engine, ns)

        def work() -> bytes:
            rows, findings = ctx.run("dependencies", JobParams(
                start=s, end=e, baseline_start=bs, baseline_end=be, namespace=ns,
                write=False), check=check)
            return _json(DependenciesResponse(
                window=Window(start=iso(s), end=iso(e)),
                baseline=Window(start=iso(bs), end=iso(be)),
                edges=[DependencyEdgeOut.model_validate(r) for r in rows],
                findings=[_finding_out(f) for f in findings]))

        return await ctx.cached(key, fixed, [e], work)

    return router


__all__ = ["router"]
