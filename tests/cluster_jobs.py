"""The jobs on the cluster with the keyword calls the integration tests use: each builds the
job's request, its cluster source and (with ``write``) the cluster writer, and returns what the
job found. Real jobs against the real engine; only the calling convention is the tests'."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from logsight.jobs import drift as D
from logsight.jobs import logs as L
from logsight.jobs import performance as P
from logsight.jobs import traces as T
from logsight.jobs.base import Scope, Window
from logsight.writer import ClusterWriter


def _writer(engine: Any, write: bool) -> ClusterWriter | None:
    return ClusterWriter(engine) if write else None


def run_log_analysis(engine: Any, *, start: Any, end: Any, namespace: str | None = None,
                     service: str | None = None, baseline: Any = 0.5,
                     write: bool = True) -> L.LogAnomaliesResult:
    request = L.LogAnomaliesRequest(Window(start, end), Scope(namespace=namespace,
                                                              service=service),
                                    baseline=baseline)
    return L.anomalies(request, L.ClusterLogs(engine, namespace), _writer(engine, write))


def run_log_anomalies(engine: Any, **kw: Any) -> list[Any]:
    return run_log_analysis(engine, **kw).findings


def run_bottlenecks(engine: Any, *, start: datetime, end: datetime, namespace: str | None = None,
                    service: str | None = None, operation: str | None = None, top: int = 10,
                    write: bool = True) -> tuple[list[dict[str, Any]], list[Any]]:
    request = T.BottlenecksRequest(Window(start, end), Scope(namespace=namespace,
                                                             service=service,
                                                             operation=operation), top=top)
    r = T.bottlenecks(request, T.ClusterSpans(engine, namespace), _writer(engine, write))
    return r.bottlenecks, r.findings


def run_trace_regressions(engine: Any, *, start: datetime, end: datetime,
                          baseline_start: datetime, baseline_end: datetime,
                          namespace: str | None = None, write: bool = True
                          ) -> tuple[list[Any], list[Any]]:
    request = T.RegressionsRequest(Window(start, end), Window(baseline_start, baseline_end,
                                                              name="baseline"),
                                   Scope(namespace=namespace))
    r = T.regressions(request, T.ClusterSpans(engine, namespace), writer=_writer(engine, write))
    return r.regressions, r.findings


def run_version_regressions(engine: Any, *, start: datetime, end: datetime, service: str,
                            baseline_version: str, candidate_version: str,
                            namespace: str | None = None, write: bool = True
                            ) -> tuple[list[Any], list[Any], Any]:
    request = T.VersionRegressionsRequest(Window(start, end), service=service,
                                          baseline_version=baseline_version,
                                          candidate_version=candidate_version,
                                          namespace=namespace)
    r = T.version_regressions(request, T.ClusterSpans(engine, namespace),
                              _writer(engine, write))
    return r.regressions, r.findings, r.split


def _ref(reference: Any) -> Any:
    return Window(*reference, name="reference") if isinstance(reference, tuple) else reference


def run_drift(engine: Any, *, model: str, reference: Any, current: tuple[Any, Any],
              namespace: str | None = None, version: str | None = None, write: bool = True,
              outliers: bool = True) -> tuple[list[Any], list[Any]]:
    request = D.DriftRequest(Window(*current), _ref(reference),
                             Scope(namespace=namespace, model=model, version=version),
                             outliers=outliers)
    r = D.drift(request, D.ClusterEvents(engine, namespace), _writer(engine, write))
    return r.features, r.findings


def run_drift_raw(engine: Any, *, model: str, reference: tuple[Any, Any],
                  current: tuple[Any, Any], namespace: str | None = None) -> list[Any]:
    request = D.DriftRequest(Window(*current), _ref(reference),
                             Scope(namespace=namespace, model=model))
    return D.drift_raw(request, D.ClusterEvents(engine, namespace))


def run_performance(engine: Any, *, model: str, start: datetime, end: datetime,
                    namespace: str | None = None, reference: tuple[Any, Any] | None = None,
                    baseline_version: str | None = None, write: bool = True
                    ) -> tuple[Any, list[Any]]:
    request = P.PerformanceRequest(Window(start, end), Scope(namespace=namespace, model=model),
                                   reference=_ref(reference) if reference else None,
                                   baseline_version=baseline_version)
    r = P.performance(request, D.ClusterEvents(engine, namespace), _writer(engine, write))
    return r.report, r.findings
