"""The API routes: service and cluster health (open without an API key)."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime

from fastapi import APIRouter
from fastapi.params import Depends
from fastapi.responses import JSONResponse

from logsight import __version__
from logsight.engine import EngineAuthError, EngineError
from logsight.jobs import JOBS
from logsight.service.context import (
    ServiceContext,
)
from logsight.service.errors import REFUSED, RequestTimeout
from logsight.service.models import (
    EngineHealth,
    Health,
    SchedulerHealth,
)
from logsight.timeutil import iso


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()

    @router.get("/health", response_model=Health, tags=["service"],
             responses={503: {"model": Health, "description": "The cluster is unreachable"},
                        502: {"model": Health,
                              "description": "The cluster refused our credentials"}})
    async def health() -> JSONResponse:
        """Service and cluster state; open without an API key (for load balancers)."""

        def probe() -> EngineHealth:
            try:
                engine = ctx.holder.get()
                state = engine.health()
            except EngineAuthError:  # a configuration error: 502, not "try again" (503)
                return EngineHealth(reachable=False, error=REFUSED)
            except EngineError as e:
                return EngineHealth(reachable=False, error=f"cluster unavailable ({e.status})")
            return EngineHealth(reachable=True, flavor=engine.flavor, version=engine.version,
                                cluster_status=str(state.get("status")))

        try:
            eng = await ctx.blocking(probe)
        except RequestTimeout:
            eng = EngineHealth(reachable=False, error="cluster health timed out")
        sched = SchedulerHealth(
            enabled=ctx.scheduler is not None,
            running=bool(ctx.scheduler and ctx.scheduler.running),
            tasks=[t.name for t in ctx.scheduler.tasks] if ctx.scheduler else [],
            last_pass=iso(ctx.scheduler.last_pass) if ctx.scheduler and ctx.scheduler.last_pass else None,
        )
        body = Health(status="ok" if eng.reachable else "degraded", version=__version__,
                      engine=eng, scheduler=sched, analyses={k: True for k in JOBS})
        refused = eng.error == REFUSED
        return JSONResponse(body.model_dump(),
                            status_code=200 if eng.reachable else 502 if refused else 503,
                            headers=None if eng.reachable or refused else {
                                "Retry-After": str(ctx.cfg.retry_after)})

    return router
