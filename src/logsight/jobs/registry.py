"""The analyses the API and the scheduler run by name, on the cluster.

Each :class:`JobSpec` says what its job needs (a model, a baseline) and turns the one shape of
request the API and the scheduler have (:class:`JobParams`) into the job's own typed request;
:func:`run_job` runs it against the cluster and, with ``write``, stores what it found. Adding
an analysis: a module in ``logsight/jobs/`` and one entry in :data:`JOBS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from logsight import names
from logsight.errors import BadRequest
from logsight.jobs import canary as canary_job
from logsight.jobs import cost as cost_job
from logsight.jobs import dependencies as dependencies_job
from logsight.jobs import drift as drift_job
from logsight.jobs import logs as logs_job
from logsight.jobs import performance as performance_job
from logsight.jobs import resources as resources_job
from logsight.jobs import stored_traces as stored_job
from logsight.jobs import trace_completion as completion_job
from logsight.jobs import traces as traces_job
from logsight.jobs.base import JobResult, Scope, Window
from logsight.writer import ClusterWriter

if TYPE_CHECKING:
    from logsight.engine import Engine


@dataclass(frozen=True)
class JobParams:
    """What an API caller or the scheduler asked for, already validated (windows ordered,
    within limits)."""

    start: datetime
    end: datetime
    baseline_start: datetime | None = None
    baseline_end: datetime | None = None
    service: str | None = None
    operation: str | None = None
    model: str | None = None
    version: str | None = None
    baseline_version: str | None = None  # canary: the version the candidate is compared with
    namespace: str | None = None
    top: int = 10
    write: bool = True
    estimate: bool = False  # performance: CBPE accuracy estimate before the labels

    @property
    def window(self) -> Window:
        return Window(self.start, self.end)

    @property
    def baseline(self) -> Window | None:
        if self.baseline_start is None or self.baseline_end is None:
            return None
        return Window(self.baseline_start, self.baseline_end, name="baseline")

    def scope(self, *, model: bool = True) -> Scope:
        return Scope(namespace=self.namespace, service=self.service, operation=self.operation,
                     model=self.model if model else None, version=self.version)


Run = Callable[["Engine", JobParams], JobResult]


def _writer(engine: Engine, p: JobParams) -> ClusterWriter | None:
    return ClusterWriter(engine) if p.write else None


def _baseline(p: JobParams) -> Window:
    b = p.baseline
    if b is None:
        raise BadRequest("baseline", "this analysis needs a baseline window")
    return b


def _bottlenecks(engine: Engine, p: JobParams) -> JobResult:
    request = traces_job.BottlenecksRequest(p.window, p.scope(model=False), top=p.top)
    spans = traces_job.ClusterSpans(engine, p.namespace)
    if p.write:
        # a stored run also writes the window's critical-path aggregates (the dashboards'):
        # the raw recompute makes them
        return traces_job.bottlenecks(request, spans, _writer(engine, p))
    # a question: from the trace-completion job's documents where it covered the window
    return stored_job.bottlenecks(request, stored_job.StoredTraces(engine, p.namespace), spans)


def _trace_completion(engine: Engine, p: JobParams) -> JobResult:
    # the window's end is the clock (the scheduler's windows end ``lag`` before now); a first
    # run reads the window's ingest times, later runs start where the coverage ends
    return completion_job.complete_traces(
        completion_job.CompletionRequest(now=p.end, namespace=p.namespace,
                                         lookback=p.end - p.start),
        completion_job.StoredTraces(engine, p.namespace),
        completion_job.ClusterWriter(engine) if p.write else None)


def _trace_regressions(engine: Engine, p: JobParams) -> JobResult:
    return traces_job.regressions(
        traces_job.RegressionsRequest(p.window, _baseline(p), p.scope(model=False)),
        traces_job.ClusterSpans(engine, p.namespace), writer=_writer(engine, p))


def _dependencies(engine: Engine, p: JobParams) -> JobResult:
    return dependencies_job.dependencies(
        dependencies_job.DependencyRequest(p.window, p.scope(model=False), baseline=p.baseline),
        traces_job.ClusterSpans(engine, p.namespace), writer=_writer(engine, p),
        mesh=dependencies_job.ClusterMesh(engine, p.namespace))


def _canary(engine: Engine, p: JobParams) -> JobResult:
    if p.model:  # a model's canary: quality and KPIs per version from the ML events
        return canary_job.model_canary(
            canary_job.CanaryRequest(p.window, p.scope(), baseline_version=p.baseline_version),
            drift_job.ClusterEvents(engine, p.namespace), _writer(engine, p))
    return canary_job.canary(
        canary_job.CanaryRequest(p.window, p.scope(model=False),
                                 baseline_version=p.baseline_version),
        traces_job.ClusterSpans(engine, p.namespace), _writer(engine, p))


def _log_anomalies(engine: Engine, p: JobParams) -> JobResult:
    # ``model`` names an ML model elsewhere; the log job takes none (a saved log model is a
    # pickle and no API field may ever reach one): the scope leaves it out
    return logs_job.anomalies(
        logs_job.LogAnomaliesRequest(p.window, p.scope(model=False), baseline=p.baseline or 0.5),
        logs_job.ClusterLogs(engine, p.namespace), _writer(engine, p))


def _drift(engine: Engine, p: JobParams) -> JobResult:
    return drift_job.drift(
        drift_job.DriftRequest(p.window, _baseline(p), p.scope()),
        drift_job.ClusterEvents(engine, p.namespace), _writer(engine, p))


def _performance(engine: Engine, p: JobParams) -> JobResult:
    return performance_job.performance(
        performance_job.PerformanceRequest(p.window, p.scope(), reference=p.baseline,
                                           estimate=p.estimate),
        drift_job.ClusterEvents(engine, p.namespace), _writer(engine, p))


def _cost(engine: Engine, p: JobParams) -> JobResult:
    return cost_job.cost(
        cost_job.CostRequest(p.window, p.scope(), require_data=False),
        cost_job.ClusterMetrics(engine, p.namespace), _writer(engine, p))


def _resources(engine: Engine, p: JobParams) -> JobResult:
    return resources_job.resource_anomalies(
        resources_job.ResourcesRequest(p.window, p.scope(), require_data=False),
        resources_job.ClusterMetrics(engine, p.namespace), _writer(engine, p))


@dataclass(frozen=True)
class JobSpec:
    kind: str
    stream: str  # the stream it reads
    finding_kinds: tuple[str, ...]
    run: Run
    needs_model: bool = False
    uses_baseline: bool = False
    per_model: bool = False  # the scheduler runs it once per model seen in the window
    description: str = ""


JOBS: dict[str, JobSpec] = {
    s.kind: s
    for s in (
        JobSpec("bottlenecks", names.TRACES, ("trace_bottleneck",), _bottlenecks,
                description="Operations ranked by the critical-path time they contribute"),
        JobSpec("trace_regressions", names.TRACES, ("trace_regression",), _trace_regressions,
                uses_baseline=True,
                description="Operations whose latency or critical-path share grew vs a "
                "baseline"),
        JobSpec("dependencies", names.TRACES, ("dependency_new", "dependency_vanished"),
                _dependencies, uses_baseline=True,
                description="The service dependency map (rate, error rate, p95 per edge); "
                "new or vanished edges vs a baseline"),
        JobSpec("canary", names.TRACES, ("canary_verdict",), _canary,
                description="Promote / hold / roll back for each service running two "
                "versions at once (latency and error rate, significance-tested)"),
        JobSpec("log_anomalies", names.LOGS, ("log_anomaly", "template_drift"), _log_anomalies,
                uses_baseline=True,
                description="Anomalous log windows (templates, levels, rates) vs a baseline"),
        JobSpec("drift", names.MLEVENTS, ("feature_drift", "prediction_drift"), _drift,
                needs_model=True, uses_baseline=True, per_model=True,
                description="Feature and prediction drift of a model: reference vs current "
                "window"),
        JobSpec("performance", names.MLEVENTS,
                ("performance_degradation", "version_regression", "kpi_change",
                 "estimated_performance_drop"), _performance,
                needs_model=True, uses_baseline=True, per_model=True,
                description="Model quality from feedback, per version, and KPI changes"),
        JobSpec("cost", names.METRICS,
                ("cost_per_prediction_increase", "idle_gpu", "overprovisioned_memory"), _cost,
                description="Cost per service, model version, stage and 1,000 predictions "
                "from resource metrics and a cost model"),
        JobSpec("resource_anomalies", names.METRICS,
                ("memory_leak", "cpu_saturation", "gpu_memory_pressure"), _resources,
                description="Memory leak trends, CPU saturation (lined up with latency) and "
                "GPU memory pressure in the resource metrics"),
        JobSpec("trace_completion", names.TRACES, (), _trace_completion,
                description="Critical paths of the traces settled since the last run, stored "
                "once per trace and operation (what bottleneck questions aggregate)"),
    )
}


def run_job(engine: Engine, kind: str, params: JobParams) -> JobResult:
    """Run job ``kind`` on the cluster; raises KeyError (unknown kind), the
    :mod:`logsight.errors` kinds, or the engine's errors."""
    spec = JOBS[kind]
    if spec.needs_model and not params.model:
        raise BadRequest("model", f"analysis {kind!r} needs a model")
    return spec.run(engine, params)
