"""The HTTP API: ``create_app(engine_factory=..., settings=...)`` builds a fresh app with all
its state on ``app.state`` (engine holder, settings, scheduler, the routes' context), so tests
build as many as they like and nothing is global.

The routes live in ``logsight.service.routes`` (one ``APIRouter`` module per resource), the
state and steps they share in :mod:`logsight.service.context`, the checks every ``/v1`` route
runs first (API key, strict query) in :mod:`logsight.service.deps`.

Every cluster call runs in a worker thread under the request timeout; a client's mistake is a
4xx with a message saying what is wrong, an unreachable cluster a 503 with Retry-After.

The read-only analysis routes (``GET /v1/bottlenecks``, ``/v1/anomalies``, ``/v1/drift``,
``/v1/performance``) answer from a short-lived result cache with single flight
(:mod:`logsight.service.cache`), and compute in a thread pool of their own
(``analysis_threads``) so cheap requests (``/health``, ``/v1/findings``) never wait for a
thread behind them.
"""

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from logsight import __version__
from logsight.jobs import run_job
from logsight.service import routes
from logsight.service.context import (
    Clock,
    EngineFactory,
    EngineHolder,
    Runner,
    ServiceContext,
    default_engine_factory,
    times_key,
)
from logsight.service.deps import guarded
from logsight.service.errors import install_error_handlers
from logsight.service.scheduler import ScheduledTask, Scheduler, default_tasks, utc_now
from logsight.service.selflog import ServiceLog, service_log
from logsight.service.settings import ServiceSettings

__all__ = ["EngineHolder", "create_app", "create_app_from_env", "times_key"]


def create_app(
    engine_factory: EngineFactory | None = None,
    settings: ServiceSettings | None = None,
    *,
    clock: Clock = utc_now,
    log_handle: Any = None,
    scheduler_tasks: Sequence[ScheduledTask] | None = None,
    runner: Runner = run_job,
    close_log_handle: bool = False,
) -> FastAPI:
    """A new app. ``engine_factory`` connects to the cluster (default: ``LOGSIGHT_URL``);
    ``settings`` default to :meth:`ServiceSettings.from_env`; ``clock`` is the service's now
    (time windows and the result cache's expiry); ``log_handle`` is a
    :class:`logsight.Logsight` for the service's own logs (stdlib logging without one);
    ``scheduler_tasks`` replace the default tasks (one per available analysis); ``runner``
    runs an analysis for the API routes (default :func:`logsight.jobs.run_job`);
    ``close_log_handle`` closes ``log_handle`` when the app shuts down (it owns it)."""
    cfg = settings or ServiceSettings.from_env()
    holder = EngineHolder(engine_factory or default_engine_factory)
    log: ServiceLog = service_log(log_handle, "logsight.service")
    scheduler: Scheduler | None = None
    if cfg.scheduler:
        scheduler = Scheduler(
            holder.get,
            list(scheduler_tasks) if scheduler_tasks is not None else default_tasks(cfg),
            owner=cfg.replica_id, lease_ttl=cfg.lease_ttl, scope=cfg.namespace or "all",
            poll=cfg.scheduler_poll, clock=clock,
            log=service_log(log_handle, "logsight.scheduler"),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        log.info("service.started", auth=cfg.auth, scheduler=cfg.scheduler,
                 namespace=cfg.namespace or "*")
        try:
            yield
        finally:
            if scheduler is not None:
                await anyio.to_thread.run_sync(scheduler.stop)
            holder.close()
            log.info("service.stopped")
            if close_log_handle and log_handle is not None:
                await anyio.to_thread.run_sync(functools.partial(log_handle.close, timeout=5.0))

    app = FastAPI(
        title="logsight",
        version=__version__,
        description=(
            "Log and trace analytics for ML systems. Times are ISO-8601 (naive = UTC) or ages "
            "such as `15m`, `now-2h`, `7d`. Every `/v1` route needs an API key "
            "(`X-API-Key` or `Authorization: ApiKey <key>`) unless the service runs with "
            "`--no-auth`. An unknown query parameter (one the route does not document) is "
            "refused with 422 `invalid_request` naming it: a misspelt filter would otherwise "
            "be ignored and the answer cover more than was asked. "
            "`namespace` defaults to the service's configured namespace (`--namespace` / "
            "`LOGSIGHT_NAMESPACE`), all namespaces when none is configured."
        ),
        lifespan=lifespan,
    )
    app.state.settings = cfg
    app.state.engine = holder
    app.state.scheduler = scheduler
    install_error_handlers(app, retry_after=cfg.retry_after)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.failed", path=request.url.path, error=type(exc).__name__)
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    ctx = ServiceContext(cfg, holder, clock=clock, runner=runner, log=log)
    ctx.scheduler = scheduler
    app.state.cache = ctx.cache
    app.state.analysis_slots = ctx.analysis_slots
    app.state.context = ctx
    checks = guarded(cfg)
    for module in routes.MODULES:
        app.include_router(module.router(ctx, checks))
    return app


def create_app_from_env() -> FastAPI:
    """The app as configured by the environment, for ``uvicorn --factory
    logsight.service.app:create_app_from_env`` and ``logsight serve --workers N`` (each worker
    process builds its own): settings from :meth:`ServiceSettings.from_env`, the cluster at
    ``LOGSIGHT_URL``, the service's own logs shipped unless ``LOGSIGHT_SELF_LOG=off``."""
    import os

    from logsight.engine import connect
    from logsight.service.selflog import configure_self_logging

    settings = ServiceSettings.from_env()
    url = os.environ.get("LOGSIGHT_URL") or None
    self_log = os.environ.get("LOGSIGHT_SELF_LOG", "on").strip().lower() not in (
        "off", "0", "false", "no")
    handle = configure_self_logging(
        url, namespace=settings.self_log_namespace) if self_log else None
    return create_app(lambda: connect(url), settings, log_handle=handle,
                      close_log_handle=True)
