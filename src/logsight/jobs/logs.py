"""The log job: anomalous log windows per service (and template drift per deploy), read
through a :class:`~logsight.sources.logs.LogSource` (the cluster's logs streams or a file).

Where the baseline ends is the request's ``baseline``: a fraction of the range read, a
duration from its start, a time, or a :class:`~logsight.jobs.base.Window` that ends where the
window starts (the API and the scheduler: the range read is then [baseline start, window end)).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from logsight import names
from logsight.analysis.logs import (
    BaselineError,
    LogAnalysisResult,
    LogAnomalyDetector,
    LogAnomalyModel,
    detect_log_anomalies,
    empty_window_table,
    mine_templates,
    score_logs,
    template_drift,
)
from logsight.analysis.logs.counts import (
    LogCounts,
    count_findings,
    fit_count_model,
    score_counts,
    split_counts,
)
from logsight.analysis.logs.levelshift import level_shift_findings
from logsight.analysis.logs.model import window_table
from logsight.analysis.templates import TemplateMiner
from logsight.errors import BadRequest, NoData
from logsight.findings import Finding
from logsight.jobs.base import Scope, Window
from logsight.sources.logcounts import ClusterLogCounts
from logsight.sources.logfilecounts import LogFileCounts
from logsight.sources.logs import ClusterLogs, LogFileSource, LogSource
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer

__all__ = [
    "Scope", "Window", "ClusterLogs", "ClusterWriter", "LogAnomaliesRequest", "LogAnomaliesResult",
           "LogFileSource", "analyse_log_frame", "anomalies"]

Baseline = float | str | datetime | Window | None
# How a cluster is read: "counts" aggregates per (service, window, template key, level) in the
# cluster and reads examples of flagged windows only; "lines" pages out every line (the old
# path, kept for comparison and for indices without the template key); "auto" is counts
# (lines, with a warning, where the cluster's logs lack the key; lines for a file whose lines
# carry no timestamps).
Method = Literal["auto", "counts", "lines"]
METHODS = ("auto", "counts", "lines")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogAnomaliesRequest:
    """What to analyse. No field ever names a file: a saved model is a pickle (loading one
    runs code), so :func:`anomalies` takes it as a separate argument no API field reaches."""

    window: Window
    scope: Scope = Scope()
    baseline: Baseline = 0.5
    window_size: str = "1min"
    window_lines: int = 50  # lines per window when lines have no timestamps (files)
    contamination: float | str = "auto"
    drift: bool = True
    random_state: int | None = 0
    method: Method = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BadRequest("method", f"unknown method {self.method!r}: choose one of "
                             f"{list(METHODS)}")


@dataclass
class LogAnomaliesResult:
    windows: pd.DataFrame  # every scored (service, window)
    findings: list[Finding]
    lines: int
    skipped: list[tuple[int, str]]  # bad lines skipped (files)
    empty_reason: str | None = None
    read: dict[str, Any] | None = None  # files: how the file was read (LogRead.info)
    method: str = "lines"  # how the data was read: "counts" or "lines"
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        # the API answers findings only: a window table per request would be large
        return []


def analyse_log_frame(
    frame: pd.DataFrame,
    *,
    window: str = "1min",
    baseline: float | str | datetime | None = 0.5,
    contamination: float | str = "auto",
    window_lines: int = 50,
    namespace: str | None = None,
    drift: bool = True,
    random_state: int | None = 0,
    detector_path: LogAnomalyModel | str | Path | None = None,
    save_model: str | Path | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> LogAnalysisResult:
    """Log anomalies (and, with ``drift``, template drift per deploy) of a log frame, with
    every scored window (see :meth:`~logsight.analysis.logs.LogAnomalyResult.windows`).

    Without ``detector_path`` the baseline part of the frame trains a model and the rest is
    scored; with ``detector_path`` (a :class:`LogAnomalyModel` or a path to a saved one) every
    row is scored against it. ``start`` / ``end``: the range the frame was read from (windows
    it cuts off are not scored; see :func:`~logsight.analysis.logs.score_logs`).
    ``save_model`` writes the model used (feature schema and version included)."""
    if frame.empty:
        return LogAnalysisResult(empty_window_table(), [], lines=0)
    if detector_path is not None:
        loaded = (detector_path if isinstance(detector_path, LogAnomalyModel)
                  else LogAnomalyModel.load(detector_path))
        result = score_logs(loaded, frame, namespace=namespace, start=start, end=end)
    else:
        det = LogAnomalyDetector(contamination=contamination, random_state=random_state)
        result = detect_log_anomalies(
            frame, baseline=baseline, window=window, window_lines=window_lines,
            namespace=namespace, detector=det, start=start, end=end,
        )
    if save_model is not None:
        result.model.save(save_model)
    findings = list(result.findings)
    if drift and frame["version"].notna().any():
        templates, miner = mine_templates(frame["message"].tolist(), TemplateMiner())
        findings.extend(template_drift(frame, templates, miner=miner, namespace=namespace))
    return LogAnalysisResult(result.windows(), findings, lines=len(frame))


def _read_range(request: LogAnomaliesRequest) -> tuple[datetime | None, datetime | None]:
    w, b = request.window, request.baseline
    if not isinstance(b, Window):
        return w.start, w.end
    if b.end != w.start:
        raise BadRequest("baseline.end", "log anomalies need a baseline that ends where the "
                         "window starts ({baseline.end} = {window.start})")
    return b.start, w.end


def _empty_side(request: LogAnomaliesRequest, frame: pd.DataFrame) -> NoData | None:
    """With a baseline window: which of the two windows holds no lines, said with both."""
    w = request.window
    if not isinstance(request.baseline, Window) or w.start is None:
        return None
    before = int((frame["timestamp"] < pd.Timestamp(w.start)).sum())
    return _empty_side_of(request, before, len(frame))


def _empty_side_of(request: LogAnomaliesRequest, before: int, total: int) -> NoData | None:
    b, w, sc = request.baseline, request.window, request.scope
    if not isinstance(b, Window) or w.start is None:
        return None
    scope = "".join([f" of service {sc.service!r}" if sc.service else "",
                     f" in namespace {sc.namespace!r}" if sc.namespace else ""])
    window = f"{{window.start}}={iso(w.start)} {{window.end}}={iso(w.end)}"
    base = f"{{baseline.start}}={iso(b.start)} {{baseline.end}}={iso(b.end)}"
    if before == 0:
        return NoData(f"the baseline window {base} holds no log lines{scope}; set "
                      "{baseline.start} earlier (the baseline ends where the window starts: "
                      "{baseline.end} = {window.start}) or move {window.start}/{window.end} "
                      "later", parameters=("baseline",))
    if before == total:
        return NoData(f"no log lines{scope} in the window {window} (the baseline window "
                      f"{base} has some); move {{window.start}}/{{window.end}} to a period "
                      "with logs", parameters=("window",))
    return None


def anomalies(
    request: LogAnomaliesRequest, source: LogSource, writer: Writer | None = None, *,
    detector: LogAnomalyModel | str | Path | None = None, save_model: str | Path | None = None,
) -> LogAnomaliesResult:
    """Read the lines, learn the baseline, score every (service, window) after it, flag the
    anomalous ones and template drift per deploy; with a writer, store the findings under
    stable ids (a re-run updates them, never duplicates). ``detector`` / ``save_model``: score
    with a saved model instead of a baseline / keep the model (CLI only)."""
    sc = request.scope
    start, end = _read_range(request)
    warnings: list[str] = []
    counter = _counter(request, source, detector, save_model)
    if isinstance(counter, LogFileCounts):
        data = counter.counts(start, end, service=sc.service, window=request.window_size)
        if data is not None:  # None: lines without timestamps, or nothing to count
            return _by_counts(request, data, counter, source, writer, start, end,
                              skipped=counter.skipped)
    elif counter is not None:
        problem = counter.key_problem(start, end, service=sc.service)
        if problem is None:
            data = counter.counts(start, end, service=sc.service, window=request.window_size)
            return _by_counts(request, data, counter, source, writer, start, end)
        if request.method == "counts":
            raise BadRequest("method", f"cannot count logs by template key: {problem}; run "
                             "`logsight setup` and reindex the logs, or use method 'lines'")
        warnings.append(f"read every line instead of counts ({problem}): run `logsight setup` "
                        "so new logs get the template key, and reindex older logs through the "
                        f"{names.pipeline(names.LOGS)} pipeline to analyse them by counts")
        log.warning(warnings[-1])
    read = source.lines(start, end, service=sc.service)
    frame = read.frame
    if frame.empty:
        return LogAnomaliesResult(empty_window_table(), [], 0, read.skipped,
                                  empty_reason=source.explain_empty(start, end,
                                                                    service=sc.service),
                                  read=read.info)
    baseline = request.baseline
    cut = request.window.start if isinstance(baseline, Window) else baseline
    try:
        result = analyse_log_frame(
            frame, window=request.window_size, baseline=cut,
            contamination=request.contamination, window_lines=request.window_lines,
            namespace=sc.namespace, drift=request.drift, random_state=request.random_state,
            detector_path=detector, save_model=save_model, start=start, end=end,
        )
    except BaselineError:
        side = _empty_side(request, frame)
        if side is not None:
            raise side from None
        raise
    if writer is not None and result.findings:
        writer.findings(result.findings)
    return LogAnomaliesResult(result.windows, result.findings, result.lines, read.skipped,
                              warnings=warnings, read=read.info)


def _counter(request: LogAnomaliesRequest, source: LogSource, detector: object,
             save_model: object) -> ClusterLogCounts | LogFileCounts | None:
    """The count reader of a source when the request is read by counts."""
    if request.method == "counts" and (detector is not None or save_model is not None):
        raise BadRequest("method", "a saved model scores lines: use method 'lines' with it")
    if request.method == "lines" or detector is not None or save_model is not None:
        return None
    if isinstance(source, ClusterLogs):
        return ClusterLogCounts(source.engine, source.namespace, index=source.index)
    if isinstance(source, LogFileSource) and request.method == "counts":
        # asked for by name only: "auto" reads a file by lines, through the file reader's
        # timestamp formats, multi-line events and UTF-8 notes (logsight.sources.rawlog)
        return LogFileCounts(source.path, service=source.service,
                             skip_bad_lines=source.skip_bad_lines)
    return None


def _by_counts(
    request: LogAnomaliesRequest, data: LogCounts, counter: ClusterLogCounts | LogFileCounts,
    source: LogSource, writer: Writer | None, start: datetime | None, end: datetime | None,
    *, skipped: list[tuple[int, str]] | None = None,
) -> LogAnomaliesResult:
    """The analysis on counts (see :mod:`logsight.analysis.logs.counts`): the same model,
    features, decision and findings as on lines, reading only counts and a few examples."""
    sc = request.scope
    skipped = list(skipped or [])
    if data.counts.empty:
        return LogAnomaliesResult(empty_window_table(), [], 0, skipped, method="counts",
                                  empty_reason=source.explain_empty(start, end,
                                                                    service=sc.service))
    baseline = request.baseline
    cut = request.window.start if isinstance(baseline, Window) else baseline
    try:
        base, scored, split = split_counts(data, cut, window=request.window_size)
    except BaselineError:
        w = request.window
        before = (int(data.counts.loc[data.counts["window"] < pd.Timestamp(w.start), "count"]
                      .sum()) if w.start is not None else 0)
        side = _empty_side_of(request, before, data.lines)
        if side is not None:
            raise side from None
        raise
    det = LogAnomalyDetector(contamination=request.contamination,
                             random_state=request.random_state)
    model, key_map = fit_count_model(
        base, data.messages, window=request.window_size, detector=det, start=start, end=split,
        first=data.first, last=data.last)
    score = score_counts(model, scored, data.messages, key_map, start=split, end=end,
                         first=data.first, last=data.last)
    findings = count_findings(score, counter.samples(score.flagged), namespace=sc.namespace)
    if data.first is not None:  # a sustained change is one finding here too
        shifts, findings = level_shift_findings(model, score.features, findings,
                                                namespace=sc.namespace)
        findings = shifts + findings
    if request.drift:
        findings.extend(_count_drift(data, sc.namespace))
    if writer is not None and findings:
        writer.findings(findings)
    windows = window_table(score.features, score.decision, model.window)
    return LogAnomaliesResult(windows, findings, data.lines, skipped, method="counts")


def _count_drift(data: LogCounts, namespace: str | None) -> list[Finding]:
    """Template drift per deploy on counts: every key's template, weighted by its lines."""
    counts = data.counts
    if not counts["version"].notna().any():
        return []
    # the drift miner sees every key (baseline and after), as the line path mines every line
    keys = [str(k) for k in pd.unique(counts["key"])]
    drift_miner = TemplateMiner()
    ids = dict(zip(keys, drift_miner.add_many([data.messages.get(k, k) for k in keys]),
                   strict=True))
    frame = pd.DataFrame({"timestamp": counts["window"], "service": counts["service"],
                          "level": counts["level"], "message": "",
                          "version": counts["version"]})
    return template_drift(frame, counts["key"].map(ids).to_numpy(), miner=drift_miner,
                          namespace=namespace, weights=counts["count"].to_numpy(),
                          first_seen=data.version_first)
