"""The API routes, one module per resource; each ``router(ctx, guarded)`` builds its
``APIRouter`` over the app's :class:`~logsight.service.context.ServiceContext`."""

from logsight.service.routes import (
    analyses,
    canary,
    cost,
    dependencies,
    findings,
    health,
    logs,
    models,
    traces,
)

MODULES = (health, traces, dependencies, canary, logs, models, findings, analyses, cost)

__all__ = ["MODULES"]
