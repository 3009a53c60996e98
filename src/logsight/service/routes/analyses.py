"""The API routes: the analyses by name: list them, run one now (stores findings)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.params import Depends

from logsight import names
from logsight.engine import Engine
from logsight.jobs import JOBS, JobParams
from logsight.service.context import (
    AnalysisKind,
    ServiceContext,
)
from logsight.service.errors import bad_request, error_responses
from logsight.service.models import (
    AnalysisRequest,
    AnalysisResponse,
    is_relative,
)


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/analyses", tags=["analyses"], dependencies=guarded,
             responses=error_responses(401))
    async def analyses() -> dict[str, dict[str, Any]]:
        """The analyses `POST /v1/analyses/{kind}` runs, and whether this build has them."""
        return {k: {"available": True, "findings": list(s.finding_kinds),
                    "needs_model": s.needs_model, "description": s.description}
                for k, s in JOBS.items()}

    @router.post("/v1/analyses/{kind}", response_model=AnalysisResponse, tags=["analyses"],
              dependencies=guarded, responses=errors)
    async def run_now(
        kind: Annotated[AnalysisKind, Path(description="Which analysis to ctx.run")],
        body: AnalysisRequest | None = None,
    ) -> AnalysisResponse:
        """Run one analysis now over a window and return its findings (stored unless
        `write` is false; stable ids, so a re-ctx.run overwrites instead of duplicating).
        `namespace` defaults to the service's configured namespace; without one configured
        an analysis reads, and writes findings for, every namespace."""
        req = body or AnalysisRequest.model_validate({})
        spec = JOBS[kind]
        # one reading of the ctx.clock for every time of the request; relative times floored to
        # the minute, so a re-ctx.run within the same minute has the same window (finding ids
        # include it) and overwrites instead of adding copies
        now = ctx.clock()
        s, e = ctx.parse_window(req.start, req.end, now=now, align=True)
        base: tuple[datetime, datetime] | None = None
        if spec.uses_baseline:
            base = ctx.baseline_window(s, e, req.baseline_start, req.baseline_end,
                                   ("baseline_from", "baseline_to"), now=now, kind=kind,
                                   align=True)
        relative = [req.start, req.end] + (
            [req.baseline_start, req.baseline_end] if spec.uses_baseline else [])
        aligned = any(v is None or is_relative(v) for v in relative[:2]) or any(
            v is not None and is_relative(v) for v in relative[2:])
        if spec.needs_model and not req.model:
            raise bad_request(f"analysis {kind!r} needs a model", "missing_model")
        ns = ctx.check_namespace(req.namespace)

        def check(engine: Engine) -> None:
            ctx.require_namespace(engine, ns)
            ctx.require_known(engine, "service", req.service, [spec.stream], ns)
            ctx.require_known(engine, "model", req.model, [names.MLEVENTS], ns)
            ctx.require_version(engine, req.model, req.version, ns)

        params = JobParams(start=s, end=e, baseline_start=base[0] if base else None,
                        baseline_end=base[1] if base else None, service=req.service,
                        operation=req.operation, model=req.model, version=req.version,
                        namespace=ns, top=req.top, write=req.write, estimate=req.estimate)
        out = await ctx.blocking(ctx.run, kind, params, check=check, analysis_slot=True,
                             baseline_names=("baseline_from", "baseline_to"))
        ctx.log.info("analysis.run", kind=kind, findings=len(out[1]), written=req.write,
                 namespace=ns or "*")
        return ctx.analysis_response(kind, s, e, base, req.write, out, aligned=aligned)

    return router
