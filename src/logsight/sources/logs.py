"""Read log lines from the cluster (point in time + search_after) or from a file into the log
frame of :mod:`logsight.analysis.logs`, behind one protocol (:class:`LogSource`:
:class:`ClusterLogs`, :class:`LogFileSource`) that the log job (:mod:`logsight.jobs.logs`)
reads through.

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
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis.logs import LOG_COLUMNS, empty_log_frame, prepare_frame
from logsight.errors import BadRequest, NoData
from logsight.levels import RAW_LINE_WORDS, normalize_level
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
def raw_level(text: str) -> str | None:
    """The level of a plain-text line (after its timestamp): the first of the first eight
    tokens that is an upper-case level word (``INFO``, ``[ERROR]``, ``WARN:`` ...)."""
    for tok in text.split(None, 8)[:8]:
        lm = _LEVEL_TOKEN_RE.match(tok)
        if lm and lm.group(1) in RAW_LINE_WORDS:  # upper case only: the keys are
            return normalize_level(RAW_LINE_WORDS[lm.group(1)])
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


class LogFileError(BadRequest):
    """A log file that cannot be read as the format its first line announces (the message
    names the file and the line); a bad ``input``."""

    def __init__(self, message: str) -> None:
        super().__init__("input", message)


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


def _raw_row(n: int, line: str, service: str) -> dict[str, Any]:
    """One raw line as a frame row, read on its own (:func:`parse_raw_line`); the count
    reader's one-pass path (:mod:`logsight.sources.logfilecounts`)."""
    ts, level, message = parse_raw_line(line)
    return {"id": f"line:{n}", "timestamp": ts, "service": service, "level": level,
            "message": message, "version": None}


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


# -- the sources the log job reads -------------------------------------------------------------
@dataclass
class LogRead:
    """What a log source read: the frame and the bad lines it skipped (files)."""

    frame: pd.DataFrame
    skipped: list[tuple[int, str]] = field(default_factory=list)
    # files: how the file was read (format, timestamp format, joined lines, invalid UTF-8)
    info: dict[str, Any] | None = None


class LogSource(Protocol):
    """Log lines for the log job; ``None`` bounds are open (a file's own first / last line)."""

    namespace: str | None

    def lines(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None) -> LogRead: ...

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None) -> str: ...


def _t(ts: datetime) -> str:
    return iso(ts, timespec="seconds")


class ClusterLogs:
    """The logs streams of ``namespace`` (None: every namespace), or ``index`` when given."""

    def __init__(self, engine: Engine, namespace: str | None = None, *,
                 index: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace
        self.index = index

    def lines(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None) -> LogRead:
        return LogRead(read_logs(self.engine, start=start, end=end, service=service,
                                 namespace=self.namespace, index=self.index))

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None) -> str:
        """What was searched (and, for a service, which services the range does have)."""
        target = self.index or names.read_target(names.LOGS, self.namespace)
        if self.index:
            where = f"index {self.index!r}"
        elif self.namespace:
            where = f"namespace {self.namespace!r} ({target})"
        else:
            where = f"any namespace ({target})"
        missing = "*" not in target and "," not in target and not self.engine.exists(target)
        what = f"no log lines of service {service!r}" if service else "no log lines"
        s = _t(start) if start else "the start"
        e = _t(end) if end else "the end"
        msg = f"{what} in {where} between {s} and {e}"
        if missing:
            return f"{msg}: {target} does not exist"
        if service:
            seen = sorted(log_services(self.engine, start=start, end=end,
                                       namespace=self.namespace, index=self.index))
            msg += f"; services seen: {seen}" if seen else "; no lines of any service either"
        return msg


class LogFileSource:
    """A log file (raw lines or NDJSON, see :func:`load_log_file`). ``service`` names the
    service of raw lines; for NDJSON a ``service`` asked of :meth:`lines` keeps only its lines."""

    namespace: str | None = None

    def __init__(self, path: str | Path, *, service: str | None = None,
                 skip_bad_lines: bool = False) -> None:
        self.path = Path(path)
        self.service = service
        self.skip_bad_lines = skip_bad_lines

    def lines(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None) -> LogRead:
        data = load_log_file(self.path, service=self.service, skip_bad_lines=self.skip_bad_lines)
        frame = data.frame
        if data.format == "ndjson" and service is not None:
            seen = sorted(set(frame["service"]))
            frame = filter_log_frame(frame, service=service)
            if frame.empty:
                raise NoData(f"no lines of service {service!r} in {self.path}; services seen: "
                             f"{seen}", parameters=("service",))
        if start is not None or end is not None:
            ts = frame["timestamp"].dropna()
            if ts.empty:
                raise BadRequest("window", f"the lines of {self.path} have no timestamps to "
                                 "filter on")
            kept = filter_log_frame(frame, start=start, end=end)
            if kept.empty:
                span = f"{_t(ts.min().to_pydatetime())} to {_t(ts.max().to_pydatetime())}"
                raise NoData(
                    f"no lines of {self.path} between {_t(start) if start else 'its start'} "
                    f"and {_t(end) if end else 'its end'}; its lines span {span}",
                    parameters=("window",))
            frame = kept
        info: dict[str, Any] = {
            "format": data.format, "timestamp_format": data.timestamp_format,
            "continuation_lines": data.continuation_lines,
            "invalid_utf8_lines": data.decode.count if data.decode else 0, "notes": data.notes,
        }
        return LogRead(frame, data.skipped, info)

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None) -> str:
        return f"{self.path} holds no log lines"
