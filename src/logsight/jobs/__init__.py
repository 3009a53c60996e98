"""The analyses as jobs: what every face (CLI, API, scheduler, demo) calls, and nothing else.

One module per analysis (:mod:`~logsight.jobs.logs`, :mod:`~logsight.jobs.traces`,
:mod:`~logsight.jobs.drift`, :mod:`~logsight.jobs.performance`): a typed request, a source
(cluster or file, from :mod:`logsight.sources`), an optional writer (:mod:`logsight.writer`), a
typed result. :mod:`~logsight.jobs.registry` runs them by name for the API and the scheduler.
"""

from logsight.jobs.base import JobResult, Scope, Window
from logsight.jobs.registry import JOBS, JobParams, JobSpec, run_job

__all__ = ["JOBS", "JobParams", "JobResult", "JobSpec", "Scope", "Window", "run_job"]
