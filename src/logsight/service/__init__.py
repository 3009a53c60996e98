"""The analytics service: HTTP API (FastAPI), API-key auth and the in-service scheduler.

The only package that imports FastAPI. Build an app with :func:`create_app`; ``logsight
serve`` runs one under uvicorn."""

from logsight.service.app import EngineHolder, create_app, create_app_from_env
from logsight.service.cache import ResultCache
from logsight.service.scheduler import LeaseStore, ScheduledTask, Scheduler, default_tasks
from logsight.service.settings import ServiceSettings

__all__ = [
    "EngineHolder",
    "LeaseStore",
    "ResultCache",
    "ScheduledTask",
    "Scheduler",
    "ServiceSettings",
    "create_app",
    "create_app_from_env",
    "default_tasks",
]
