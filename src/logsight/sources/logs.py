"""Read log lines from the cluster (point in time + search_after) or from a file into the log
frame of :mod:`logsight.analysis.logs`, and run the log anomaly analysis end to end.

The frame has one row per line with the columns ``id`` (document id, or ``line:N`` for a
file), ``timestamp`` (UTC), ``service``, ``level``, ``message`` and ``version``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis.logs import (
    LOG_COLUMNS,
    LogAnalysisResult,
    LogAnomalyDetector,
    LogAnomalyModel,
    detect_log_anomalies,
    empty_log_frame,
    empty_window_table,
    mine_templates,
    normalize_level,
    prepare_frame,
    score_logs,
    template_drift,
)
from logsight.analysis.templates import TemplateMiner
from logsight.findings import Finding, write_findings
from logsight.names import F
from logsight.sources import rawlog
from logsight.sources.textfile import DecodeReport, iter_lines
from logsight.timeutil import as_utc, iso

if TYPE_CHECKING:
    from logsight.engine import Engine

_SOURCE_FIELDS = [
    F.TIMESTAMP,
    F.MESSAGE,
    F.LEVEL,
    F.SERVICE,
    F.SERVICE_VERSION,
    F.ERROR_MESSAGE,
]


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    """A field of a document whether it is stored flat (``"log.level"``) or nested."""
    if dotted in doc:
        return doc[dotted]
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _doc_row(doc_id: Any, doc: Mapping[str, Any], service: str | None = None) -> dict[str, Any]:
    """A log frame row of an ECS document; ``service`` (when given) if it names none."""
    message = _get(doc, F.MESSAGE)
    if message is None:
        message = _get(doc, F.ERROR_MESSAGE) or ""
    own = _get(doc, F.SERVICE)
    return {
        "id": str(doc_id),
        "timestamp": _get(doc, F.TIMESTAMP),
        "service": own if service is None else own or service,
        "level": _get(doc, F.LEVEL),
        "message": str(message),
        "version": _get(doc, F.SERVICE_VERSION),
    }


def docs_to_frame(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """(id, ECS document) pairs as a log frame."""
    rows = [_doc_row(doc_id, src) for doc_id, src in docs]
    if not rows:
        return empty_log_frame()
    return prepare_frame(pd.DataFrame(rows, columns=list(LOG_COLUMNS)))


def logs_query(
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if start is not None or end is not None:
        rng: dict[str, Any] = {}
        if start is not None:
            rng["gte"] = iso(start)
        if end is not None:
            rng["lt"] = iso(end)
        filters.append({"range": {F.TIMESTAMP: rng}})
    if service:
        filters.append({"term": {F.SERVICE: service}})
    return {"bool": {"filter": filters}}


def read_logs(
    engine: Engine,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    service: str | None = None,
    namespace: str | None = None,
    index: str | None = None,
    page_size: int = 2000,
) -> pd.DataFrame:
    """Log lines in [start, end) (optionally of one service) from the logs stream of
    ``namespace`` (default: every namespace), or from ``index`` when given, in time order."""
    target = index or names.read_target(names.LOGS, namespace)
    hits = engine.scan(
        target,
        logs_query(start=start, end=end, service=service),
        source=_SOURCE_FIELDS,
        page_size=page_size,
    )
    return docs_to_frame((h["_id"], h.get("_source", {})) for h in hits)


def log_services(
    engine: Engine,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    namespace: str | None = None,
    index: str | None = None,
    size: int = 50,
) -> dict[str, int]:
    """Line count per ``service.name`` in [start, end) of the same target :func:`read_logs`
    reads (the ``size`` busiest services); empty when the target does not exist."""
    target = index or names.read_target(names.LOGS, namespace)
    body = {
        "size": 0,
        "query": logs_query(start=start, end=end),
        "aggs": {"services": {"terms": {"field": F.SERVICE, "size": size}}},
    }
    resp = engine.search(target, body, ignore_unavailable="true", allow_no_indices="true")
    buckets = (resp.get("aggregations") or {}).get("services", {}).get("buckets", [])
    return {str(b["key"]): int(b["doc_count"]) for b in buckets}


# -- files -----------------------------------------------------------------------------------
_LEVEL_TOKEN_RE = re.compile(r"^[\[(<]?([A-Za-z]+)[\])>:,]*$")
_LEVEL_WORDS = {
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "FATAL",
    "CRITICAL", "CRIT", "ALERT", "EMERG", "PANIC", "FAILURE",
}
_LEVEL_ALIASES_RAW = {"FAILURE": "error"}


def raw_level(text: str) -> str | None:
    """The level of a plain-text line (after its timestamp): the first of the first eight
    tokens that is an upper-case level word (``INFO``, ``[ERROR]``, ``WARN:`` ...)."""
    for tok in text.split(None, 8)[:8]:
        lm = _LEVEL_TOKEN_RE.match(tok)
        if lm and lm.group(1).upper() == lm.group(1) and lm.group(1) in _LEVEL_WORDS:
            word = lm.group(1)
            return _LEVEL_ALIASES_RAW.get(word) or normalize_level(word)
    return None


def parse_raw_line(line: str, *, fmt: str | None = None,
                   now: datetime | None = None) -> tuple[str | None, str | None, str]:
    """(ISO timestamp or None, level or None, message) of one plain-text log line: a leading
    timestamp in ``fmt`` (default: the first of :data:`~logsight.sources.rawlog.FORMATS` that
    matches) is taken off, and :func:`raw_level` is the level. A file is better read with
    :func:`load_log_file`, which decides the format once for the whole file."""
    for f in ((fmt,) if fmt else rawlog.FORMATS):
        st = rawlog.parse_stamp(line, f, now=now)
        if st is not None:
            return iso(st.time), raw_level(st.rest), st.rest.rstrip("\n")
    return None, raw_level(line), line.rstrip("\n")


LogFormat = Literal["raw", "ndjson"]


class LogFileError(ValueError):
    """A log file that cannot be read as the format its first line announces (the message
    names the file and the line)."""


@dataclass
class LogFile:
    """A log file read into a log frame: its format (decided by its first non-empty line) and
    the bad lines skipped (``skip_bad_lines``), each as (line number, what is wrong)."""

    path: Path
    frame: pd.DataFrame
    format: LogFormat
    skipped: list[tuple[int, str]] = field(default_factory=list)
    # raw files: the timestamp format found (see logsight.sources.rawlog), None when none was
    timestamp_format: str | None = None
    # raw files: lines without a timestamp joined to the event before them (stack traces)
    continuation_lines: int = 0
    # lines that were not valid UTF-8, read with U+FFFD (logsight.sources.textfile)
    decode: DecodeReport | None = None

    @property
    def notes(self) -> list[str]:
        """What the user should be told about how the file was read."""
        out = []
        if self.format == "raw":
            if self.timestamp_format:
                out.append(f"timestamps: {self.timestamp_format} (e.g. "
                           f"{rawlog.FORMAT_EXAMPLES[self.timestamp_format]})")
            else:
                out.append("no timestamps found: windows are counted in lines")
            if self.continuation_lines:
                out.append(f"{self.continuation_lines} line(s) without a timestamp were joined "
                           "to the event before them (multi-line events)")
        if self.decode is not None and self.decode.message:
            out.append(self.decode.message)
        return out


def _ndjson_timestamp(value: Any) -> pd.Timestamp | None:
    """The UTC time of an ``@timestamp`` (ISO-8601 text or epoch milliseconds, the two forms
    the cluster's date mapping takes); None when it is neither."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            ts = pd.Timestamp(value, unit="ms", tz="UTC")
        elif isinstance(value, str) and value.strip():
            ts = pd.to_datetime(value.strip(), utc=True, format="ISO8601")
        else:
            return None
    except (ValueError, TypeError, OverflowError):
        return None
    return None if pd.isna(ts) else pd.Timestamp(ts)


def _ndjson_row(n: int, line: str, default_service: str) -> dict[str, Any]:
    """The frame row of NDJSON line ``n``; LogFileError (without the file name) when the line
    is not a JSON object with a usable ``@timestamp``."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as e:
        raise LogFileError(f"line {n} is not JSON ({e.msg})") from None
    if not isinstance(doc, dict):
        raise LogFileError(f"line {n} is not a JSON object")
    raw_ts = _get(doc, F.TIMESTAMP)
    if raw_ts is None:
        raise LogFileError(f"line {n} has no {F.TIMESTAMP}")
    ts = _ndjson_timestamp(raw_ts)
    if ts is None:
        raise LogFileError(f"line {n}: {F.TIMESTAMP} {raw_ts!r} is not a time")
    row = _doc_row(doc.get("_id") or _get(doc, F.EVENT_ID) or f"line:{n}", doc, default_service)
    row["timestamp"] = ts
    return row


def _raw_rows(events: list[rawlog.RawEvent], service: str) -> list[dict[str, Any]]:
    return [{"id": f"line:{ev.line}", "timestamp": iso(ev.time) if ev.time else None,
             "service": service, "level": raw_level(ev.text), "message": ev.text,
             "version": None} for ev in events]


def load_log_file(
    path: str | Path, *, service: str | None = None, skip_bad_lines: bool = False
) -> LogFile:
    """Read a log file. Its first non-empty line decides the format: a line starting with
    ``{`` makes it NDJSON (one ECS document per line with ``@timestamp``, ``log.level``,
    ``message``, ``service.name``), anything else raw text lines.

    ``service`` is the service raw lines belong to (default: the file name without
    extension); NDJSON documents carry their own ``service.name`` (the file name when they
    name none) and ``service`` does not change them: filter the frame instead.

    In an NDJSON file a line that is not a JSON object, or whose ``@timestamp`` is missing or
    not a time, raises LogFileError naming the line; with ``skip_bad_lines`` such lines are
    skipped and listed in :attr:`LogFile.skipped`."""
    p = Path(path)
    if p.is_dir():
        raise LogFileError(f"{p} is a directory, not a log file")
    if not p.is_file():
        raise LogFileError(f"log file not found: {p}")
    fmt: LogFormat | None = None
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    raw_lines: list[tuple[int, str]] = []
    decode = DecodeReport(p)
    for n, line in iter_lines(p, decode):
        if not line.strip():
            continue
        if fmt is None:
            fmt = "ndjson" if line.lstrip().startswith("{") else "raw"
        if fmt == "raw":
            raw_lines.append((n, line))
            continue
        try:
            rows.append(_ndjson_row(n, line, p.stem))
        except LogFileError as e:
            if not skip_bad_lines:
                raise LogFileError(f"{p}: {e}") from None
            skipped.append((n, str(e)))
    ts_format: str | None = None
    continued = 0
    if raw_lines:
        now = datetime.now(UTC)
        ts_format = rawlog.detect_format((t for _, t in raw_lines), now=now)
        events = rawlog.group_events(raw_lines, ts_format, now=now)
        continued = sum(ev.continuation_lines for ev in events)
        rows = _raw_rows(events, service or p.stem)
    if not rows:
        raise LogFileError(
            f"{p} holds no log lines" if not skipped
            else f"{p} holds no readable log lines ({len(skipped)} bad line(s) skipped)"
        )
    frame = prepare_frame(pd.DataFrame(rows, columns=list(LOG_COLUMNS)))
    return LogFile(p, frame, fmt or "raw", skipped, timestamp_format=ts_format,
                   continuation_lines=continued, decode=decode)


def read_log_file(
    path: str | Path, *, service: str | None = None, skip_bad_lines: bool = False
) -> pd.DataFrame:
    """The log frame of :func:`load_log_file` (raw lines or NDJSON ECS documents; ``service``
    names the service of raw lines, default the file name without extension)."""
    return load_log_file(path, service=service, skip_bad_lines=skip_bad_lines).frame


def filter_log_frame(
    frame: pd.DataFrame,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    service: str | None = None,
) -> pd.DataFrame:
    """Rows of ``frame`` in [start, end) (rows without a timestamp are dropped when a bound
    is given) and, with ``service``, of that service only. Never changes ``frame``."""
    keep = np.ones(len(frame), dtype=bool)
    ts = frame["timestamp"]
    if start is not None:
        keep &= np.asarray((ts >= pd.Timestamp(as_utc(start))).fillna(False), dtype=bool)
    if end is not None:
        keep &= np.asarray((ts < pd.Timestamp(as_utc(end))).fillna(False), dtype=bool)
    if service is not None:
        keep &= frame["service"].to_numpy() == service
    return frame[keep].reset_index(drop=True)


# -- end to end ------------------------------------------------------------------------------
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
    row is scored against it. A saved model is a joblib pickle, so the parameter is
    deliberately not called ``model``: the service's ``model`` field (an ML model name) must
    never reach it. ``start`` / ``end``: the range the frame was read from (windows it cuts
    off are not scored; see :func:`~logsight.analysis.logs.score_logs`). ``save_model`` writes the model used (feature schema and version included)."""
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


def _bound(t: datetime | str | None) -> datetime | None:
    """An explicit read bound as a time; None when open or not a plain time (date math is
    resolved by the cluster, so the data's own first / last window is treated as cut off)."""
    if t is None or isinstance(t, datetime):
        return t
    try:
        return pd.Timestamp(t).to_pydatetime()
    except ValueError:
        return None


def run_log_analysis(
    engine: Engine,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    service: str | None = None,
    namespace: str | None = None,
    index: str | None = None,
    window: str = "1min",
    baseline: float | str | datetime | None = 0.5,
    contamination: float | str = "auto",
    drift: bool = True,
    write: bool = True,
    detector_path: LogAnomalyModel | str | Path | None = None,
    save_model: str | Path | None = None,
    random_state: int | None = 0,
) -> LogAnalysisResult:
    """Read logs in [start, end) from the cluster, learn the baseline (by default the first
    half of the time range; or a timestamp, or a duration such as ``"10min"``), score every
    (service, window) after it, flag the anomalous ones and template drift per deploy, and
    (with ``write``) index the findings in ``logsight-findings`` under stable ids (a re-run
    updates them, never duplicates). Returns the per-window scores and the findings.
    ``detector_path`` / ``save_model``: score with a saved model instead of a baseline /
    keep the model (see :func:`analyse_log_frame`)."""
    frame = read_logs(
        engine, start=start, end=end, service=service, namespace=namespace, index=index
    )
    result = analyse_log_frame(
        frame, window=window, baseline=baseline, contamination=contamination,
        namespace=namespace, drift=drift, random_state=random_state,
        detector_path=detector_path, save_model=save_model,
        start=_bound(start), end=_bound(end),
    )
    if write and result.findings:
        write_findings(engine, result.findings)
    return result


def run_log_anomalies(
    engine: Engine,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    service: str | None = None,
    namespace: str | None = None,
    index: str | None = None,
    window: str = "1min",
    baseline: float | str | datetime | None = 0.5,
    contamination: float | str = "auto",
    drift: bool = True,
    write: bool = True,
    random_state: int | None = 0,
) -> list[Finding]:
    """The findings of :func:`run_log_analysis` (same reading, scoring and writing).

    Deliberately takes neither a saved-model path nor a save path: the service calls this
    with API fields, and a saved model is a pickle (loading one runs code) while saving
    writes a server file. Use :func:`run_log_analysis` for those."""
    return run_log_analysis(
        engine, start=start, end=end, service=service, namespace=namespace, index=index,
        window=window, baseline=baseline, contamination=contamination, drift=drift,
        write=write, random_state=random_state,
    ).findings
