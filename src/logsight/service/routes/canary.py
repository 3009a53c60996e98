"""The API routes: canary verdicts (read only, cached)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from logsight import names
from logsight.engine import Engine
from logsight.jobs import JobParams
from logsight.service.context import ServiceContext, _finding_out, _json, times_key
from logsight.service.errors import error_responses
from logsight.service.models import FindingOut, Window
from logsight.timeutil import iso


class CanaryVerdictOut(BaseModel):
    service: str
    baseline_version: str
    candidate_version: str
    verdict: str = Field(description="promote | hold | roll back")
    reason: str
    n_baseline: int
    n_candidate: int
    checks: list[dict[str, Any]] = Field(
        description="metric, baseline/candidate value, effect, limit, p_value, p_adjusted, "
        "status (pass | suspect | fail | insufficient)")


class CanaryResponse(BaseModel):
    window: Window
    verdicts: list[CanaryVerdictOut]
    findings: list[FindingOut]


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/canary", response_model=CanaryResponse, tags=["traces"],
                dependencies=guarded, responses=errors)
    async def canary(
        service: Annotated[str | None, Query(max_length=256, description=(
            "The service (default: every service running two versions)"))] = None,
        version: Annotated[str | None, Query(max_length=256, description=(
            "The candidate version (default: the version with the fewest requests)"))] = None,
        model: Annotated[str | None, Query(max_length=256, description=(
            "A model's canary: its versions compared on accuracy / loss and KPIs (needs "
            "version)"))] = None,
        baseline_version: Annotated[str | None, Query(max_length=256, description=(
            "The version compared with (default: the one with the most requests)"))] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """One verdict per canary - promote, hold or roll back - with the evidence (latency
        and error rate of each version's requests, significance-tested). Read only: `POST
        /v1/analyses/canary` stores the findings."""
        now = ctx.clock()
        s, e = ctx.parse_window(start, end, now=now)
        ns = ctx.check_namespace(namespace)
        times, fixed = times_key(now, [(("from", start), ("to", end))])
        key = ("canary", ns, service, model, version, baseline_version, times)

        def check(engine: Engine) -> None:
            ctx.require_namespace(engine, ns)
            ctx.require_known(engine, "service", service, [names.TRACES], ns)

        def work() -> bytes:
            rows, findings = ctx.run("canary", JobParams(
                start=s, end=e, service=service, model=model, version=version,
                baseline_version=baseline_version, namespace=ns, write=False), check=check)
            return _json(CanaryResponse(
                window=Window(start=iso(s), end=iso(e)),
                verdicts=[CanaryVerdictOut.model_validate(r) for r in rows],
                findings=[_finding_out(f) for f in findings]))

        return await ctx.cached(key, fixed, [e], work)

    return router
