"""Run the demo end to end against a cluster: simulate, ship, analyse, grade, report.

Every analysis is scoped to the demo's namespace and to the run's simulated time range, and
runs the way a scheduler would: the first ``baseline_minutes`` are "normal", then consecutive
windows are analysed one after another. Findings are written with their stable ids.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from logsight import names
from logsight.demo import simulator as sim
from logsight.demo.incidents import (
    FEATURE_SHIFT,
    MODEL_NAME,
    MatchReport,
    Schedule,
    default_schedule,
    match_findings,
)
from logsight.demo.report import (
    DemoReport,
    FindingGroup,
    group_findings,
    incident_rows,
    render_html,
    text_report,
)
from logsight.findings import FINDINGS_INDEX, Finding, write_findings

if TYPE_CHECKING:
    from logsight.engine import Engine

T = TypeVar("T")

# A bottleneck finding is raised when one operation holds at least this share of the critical
# path: in this system's normal traffic no operation holds more than ~45%.
BOTTLENECK_MIN_SHARE = 0.5
MAX_OPERATIONS = 50  # operations kept per window (the simulated system has five)


@dataclass
class DemoResult:
    namespace: str
    t0: datetime
    schedule: Schedule
    findings: list[Finding]
    groups: list[FindingGroup]
    match: MatchReport
    report: DemoReport
    html: Path
    timings: dict[str, float] = field(default_factory=dict)
    emitted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return text_report(self.report)


def reset_namespace(engine: Engine, namespace: str) -> None:
    """Remove the namespace's streams, findings and cost rows, so a re-run starts clean."""
    for kind in names.STREAM_TYPES:
        engine.delete_index(names.stream(kind, namespace))
    for index in (FINDINGS_INDEX, names.COST_INDEX):
        if engine.exists(index):
            engine.delete_by_query(index, {"term": {"namespace": namespace}})


def _progress(enabled: bool, desc: str, total: int | None = None
              ) -> Callable[[Iterable[T]], Iterable[T]]:
    def wrap(it: Iterable[T]) -> Iterable[T]:
        if not enabled:
            return it
        from tqdm import tqdm

        return tqdm(it, desc=desc, total=total, unit="req" if "simul" in desc else "step",
                    file=sys.stderr, leave=True, dynamic_ncols=True)
    return wrap


def run_demo(
    engine: Engine,
    *,
    url: str | None = None,
    namespace: str = "demo",
    schedule: Schedule | None = None,
    out_dir: str | Path = "logsight-demo",
    random_state: int | None = 0,
    now: datetime | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    reset: bool = True,
) -> DemoResult:
    """Simulate the system with its incidents, analyse it, grade the findings, and write the
    HTML report under ``out_dir``. ``url`` is where the simulated services ship (default: the
    engine's own URL)."""
    schedule = schedule or default_schedule()
    names.check_namespace(namespace)
    out = Path(out_dir)
    timings: dict[str, float] = {}
    now = now or datetime.now(UTC)
    t0 = sim.start_time(schedule, now)
    end = t0 + timedelta(minutes=schedule.duration_minutes)
    baseline_end = t0 + timedelta(minutes=schedule.baseline_minutes)

    if reset:
        reset_namespace(engine, namespace)

    # 1. simulate and ship through the real instrumentation
    tick = time.monotonic()
    run_id = sim.new_run_id()
    plan = sim.plan_requests(schedule, t0, random_state=random_state, run_id=run_id)
    echo(f"simulating {schedule.duration_minutes} minutes of {len(plan)} requests across 4 "
         f"services from {t0:%H:%M} UTC (ground truth {schedule.feedback_delay_hours[0]:g}-"
         f"{schedule.feedback_delay_hours[1]:g} h later) into namespace {namespace!r}")
    clock = sim.SimClock(t0.timestamp())
    spool = sim.default_spool_root()
    services = sim.instrument(url or engine.url, namespace, clock, spool_dir=spool)
    try:
        stats = sim.emit_plan(plan, services, clock,
                              progress=_progress(progress, "simulating", len(plan)))
    finally:
        sim.shutdown(services)
        shutil.rmtree(spool, ignore_errors=True)
    for kind in names.STREAM_TYPES:
        engine.refresh(names.stream(kind, namespace))
    timings["simulate_and_ship_s"] = time.monotonic() - tick
    echo(f"shipped {stats.documents} documents ({stats.spans} spans, {stats.logs} log lines, "
         f"{stats.predictions} predictions, {stats.feedback} delayed labels) in "
         f"{timings['simulate_and_ship_s']:.1f} s")

    # 2. analyse
    tick = time.monotonic()
    findings: list[Finding] = []
    plots: dict[str, Any] = {}
    windows = schedule.analysis_windows(t0)
    steps: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("log anomalies", partial(_logs, engine, namespace, t0, end, baseline_end,
                                  random_state, plots)),
        ("trace baseline", partial(_trace_baseline, engine, namespace, t0, baseline_end,
                                   plots)),
    ]
    for ws, we in windows:
        steps.append((f"trace bottlenecks {ws:%H:%M}",
                      partial(_traces, engine, namespace, ws, we, plots)))
    for ws, we in windows:
        steps.append((f"drift {ws:%H:%M}",
                      partial(_drift, engine, namespace, (t0, baseline_end), (ws, we))))
    steps.append(("model performance", partial(_performance, engine, namespace, t0, end,
                                               baseline_end, random_state, plots)))
    bar = _progress(progress, "analysing", len(steps))
    for _label, step in bar(steps):
        findings.extend(step())
    written = write_findings(engine, findings)
    timings["analyse_s"] = time.monotonic() - tick

    # 2b. the simulated fleet's resources and cost (its own services; after the analyses
    # above, which never read the metrics stream, and kept out of the graded findings)
    fleet_stats = _fleet_cost(engine, namespace, t0, echo)

    # 3. grade and report
    tick = time.monotonic()
    match = match_findings(schedule, findings)
    groups = group_findings(findings)
    for g in groups:
        for kind, fs in match.found.items():
            if any(f in fs for f in g.findings):
                g.incident = kind
    groups.sort(key=lambda g: (g.incident is None, g.window_start))
    plots["latency"] = _latency(engine, namespace, t0, end)
    plots["drift"] = _drift_sample(engine, namespace, t0, baseline_end, end, schedule, groups)
    report = DemoReport(
        title="logsight demo: a simulated ML system with four injected incidents",
        namespace=namespace,
        engine=f"{engine.flavor} {engine.version} at {engine.url}",
        t0=t0,
        simulated_minutes=schedule.duration_minutes,
        incidents=incident_rows(schedule.incidents, t0, match.found),
        groups=groups,
        critical_path=plots.get("critical_path", {}),
        latency=plots.get("latency"),
        anomaly=plots.get("anomaly"),
        drift=plots.get("drift"),
        accuracy=plots.get("accuracy", []),
        baseline=(t0, baseline_end),
        stats={"requests": len(plan), "documents shipped": stats.documents,
               "findings written": written, **fleet_stats,
               **{k: f"{v:.1f} s" for k, v in timings.items()}},
    )
    html_path = render_html(report, out / "report.html")
    timings["report_s"] = time.monotonic() - tick
    report.stats["report_s"] = f"{timings['report_s']:.1f} s"
    return DemoResult(
        namespace=namespace, t0=t0, schedule=schedule, findings=findings, groups=groups,
        match=match, report=report, html=html_path, timings=timings,
        emitted={"requests": stats.requests, "spans": stats.spans, "logs": stats.logs,
                 "predictions": stats.predictions, "feedback": stats.feedback},
    )


# -- steps -------------------------------------------------------------------------------------
def _fleet_cost(engine: Engine, namespace: str, t0: datetime,
                echo: Callable[[str], None]) -> dict[str, str]:
    """Ship :mod:`logsight.demo.fleet` (a training job, a GPU inference service, a leaking
    feature service) from ``t0``, price it and find its waste; the cost rows are stored in
    ``logsight-cost``, the findings only reported (the demo grades its incidents' findings)."""
    from logsight.demo import fleet
    from logsight.jobs import cost as cost_job
    from logsight.jobs import resources as resources_job

    for kind, docs in ((names.METRICS, fleet.metrics_documents(t0)),
                       (names.MLEVENTS, fleet.prediction_documents(t0))):
        index = names.stream(kind, namespace)
        res = engine.bulk((({"create": {"_index": index, "_id": d["event.id"]}}, d)
                           for d in docs), refresh="wait_for")
        if res.errors:
            raise RuntimeError(f"fleet documents not written: {res.errors[0].reason}")
    window = cost_job.Window(t0, t0 + timedelta(hours=4))
    scope = cost_job.Scope(namespace=namespace)
    cost = cost_job.cost(
        cost_job.CostRequest(window, scope, rightsizing_min_hours=4,
                             cost_model=cost_job.cost_model_from_text(fleet.COST_MODEL_YAML)),
        cost_job.ClusterMetrics(engine, namespace), cost_job.ClusterWriter(engine, findings=False))
    res_ = resources_job.resource_anomalies(resources_job.ResourcesRequest(window, scope),
                                            resources_job.ClusterMetrics(engine, namespace))
    rep = cost.report
    stages = ", ".join(f"{s.key['stage']} {s.total_cost:.2f}" for s in rep.by_stage)
    per_1k = ", ".join(f"v{s.key['model_version']} {s.cost_per_1k_predictions:.2f}"
                       for s in rep.by_model_version if s.cost_per_1k_predictions is not None)
    found = sorted(f"{f.kind} ({f.service})" for f in [*cost.findings, *res_.findings])
    total = rep.total.total_cost if rep.total else 0.0
    echo(f"simulated fleet: {total:.2f} {rep.currency} over 4 h ({stages}); per 1,000 "
         f"predictions {per_1k}; found {', '.join(found) or 'nothing'}")
    return {"fleet cost": f"{total:.2f} {rep.currency} ({stages})",
            "fleet cost per 1k predictions": per_1k, "fleet findings": ", ".join(found)}


def _logs(engine: Engine, namespace: str, t0: datetime, end: datetime, baseline_end: datetime,
          random_state: int | None, plots: dict[str, Any]) -> list[Finding]:
    from logsight.jobs import logs as J

    # findings are written with every other step's by the caller; drift per deploy is not
    # part of this step
    res = J.anomalies(J.LogAnomaliesRequest(J.Window(t0, end), J.Scope(namespace=namespace),
                                            baseline=baseline_end, drift=False,
                                            random_state=random_state),
                      J.ClusterLogs(engine, namespace))
    plots["anomaly"] = res.windows[["service", "window", "score", "anomalous"]]
    return res.findings


def _shares(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{r['service']} {r['operation']}": float(r["critical_path_share"] or 0.0)
            for r in rows}


def _bottlenecks(engine: Engine, namespace: str, start: datetime, end: datetime) -> Any:
    from logsight.jobs import traces as J

    return J.bottlenecks(J.BottlenecksRequest(J.Window(start, end), J.Scope(namespace=namespace),
                                              top=MAX_OPERATIONS, min_share=BOTTLENECK_MIN_SHARE),
                         J.ClusterSpans(engine, namespace))


def _trace_baseline(engine: Engine, namespace: str, start: datetime, end: datetime,
                    plots: dict[str, Any]) -> list[Finding]:
    rows = _bottlenecks(engine, namespace, start, end).bottlenecks
    cp = plots.setdefault("critical_path", {})
    for k in [k for k in cp if k.startswith("baseline")]:
        del cp[k]
    cp[f"baseline {start:%H:%M}-{end:%H:%M}"] = _shares(rows)
    return []


def _traces(engine: Engine, namespace: str, start: datetime, end: datetime,
            plots: dict[str, Any]) -> list[Finding]:
    result = _bottlenecks(engine, namespace, start, end)
    rows, findings = result.bottlenecks, result.findings
    # the plot compares the baseline with the last window analysed
    cp = plots.setdefault("critical_path", {})
    for k in [k for k in cp if not k.startswith("baseline")]:
        del cp[k]
    cp[f"last window {start:%H:%M}-{end:%H:%M}"] = _shares(rows)
    return findings


def _drift(engine: Engine, namespace: str, reference: tuple[datetime, datetime],
           current: tuple[datetime, datetime]) -> list[Finding]:
    from logsight.jobs import drift as J

    # many windows x features are tested: BH correction and a strict level keep the run's
    # false alarms near zero while a real shift still gives p-values far below it
    config = J.DriftConfig(correction="bh",
                           thresholds=J.DriftThresholds(ks_p_value=1e-3, chisquare_p_value=1e-3))
    return J.drift(J.DriftRequest(J.Window(*current), J.Window(*reference, name="reference"),
                                  J.Scope(namespace=namespace, model=MODEL_NAME), config=config),
                   J.ClusterEvents(engine, namespace)).findings


def _performance(engine: Engine, namespace: str, start: datetime, end: datetime,
                 baseline_end: datetime, random_state: int | None, plots: dict[str, Any]
                 ) -> list[Finding]:
    from logsight.jobs import performance as J

    result = J.performance(
        J.PerformanceRequest(J.Window(start, end), J.Scope(namespace=namespace, model=MODEL_NAME),
                             reference=J.Window(start, baseline_end, name="reference"),
                             random_state=random_state),
        J.ClusterEvents(engine, namespace))
    report, findings = result.report, result.findings
    plots["accuracy"] = [
        {"version": v.version, "accuracy": getattr(v.metrics, "accuracy", None),
         "n": v.n_labelled}
        for v in report.versions
    ]
    return findings


def _latency(engine: Engine, namespace: str, start: datetime, end: datetime
             ) -> pd.DataFrame | None:
    from logsight.jobs import traces as J

    spans = J.ClusterSpans(engine, namespace).spans(start, end)
    if spans.empty:
        return None
    minute = pd.to_datetime(spans["start_ns"], unit="ns", utc=True).dt.floor("min")
    frame = pd.DataFrame({
        "minute": minute,
        "operation": spans["service"].astype(str) + " " + spans["name"].astype(str),
        "ms": (spans["end_ns"] - spans["start_ns"]).to_numpy(dtype=float) / 1e6,
    })
    return frame.groupby(["minute", "operation"])["ms"].quantile(0.95).unstack("operation")


def _drift_sample(engine: Engine, namespace: str, t0: datetime, baseline_end: datetime,
                  end: datetime, schedule: Schedule, groups: list[FindingGroup]
                  ) -> dict[str, Any] | None:
    """Reference vs current values of the drifted feature: the largest feature_drift group,
    over the group's whole range (what the findings table shows for it: first window's start
    to last window's end); without a drift finding, the feature the schedule shifted over the
    incident's window, so the plot still shows what happened."""
    from logsight.jobs import drift as J

    drifted = [g for g in groups if g.kind == "feature_drift"]
    cur_end = end
    n_windows: int | None = None
    if drifted:
        g = max(drifted, key=lambda g: len(g.findings))
        feature = str(g.subject)
        cur_start, cur_end = g.window_start, g.window_end
        n_windows = len(g.findings)
    else:
        inc = schedule.incident(FEATURE_SHIFT)
        if inc is None:
            return None
        feature = inc.target
        cur_start, cur_end = inc.window(t0)
    col = f"feature.{feature}"
    events = J.ClusterEvents(engine, namespace)
    ref = events.events("prediction", model=MODEL_NAME, start=t0, end=baseline_end)
    cur = events.events("prediction", model=MODEL_NAME, start=cur_start, end=cur_end)
    if col not in ref or col not in cur:
        return None
    return {"feature": feature,
            "reference": ref[col].dropna().astype(float).to_numpy(),
            "current": cur[col].dropna().astype(float).to_numpy(),
            "windows": ((t0, baseline_end), (cur_start, cur_end)), "n_windows": n_windows}
