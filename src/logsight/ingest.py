"""Ship an existing file into the cluster: raw log lines or NDJSON, through the streams' ingest
pipelines, so a log file is searchable and analysable like live data.

Each line gets an id from (file, line number, content), so ingesting the same file again
delivers nothing twice. Nothing is lost: a line the pipeline rejects lands in the dead-letter
index with the reason (the pipeline does that), a line that is not valid UTF-8 is sent with
U+FFFD replacements plus its exact bytes in base64 (and so is dead-lettered with both), and a
line the engine refuses at index time is dead-lettered here. A line nested deeper than
:data:`logsight.shipper.limits.MAX_DEPTH` is never sent (the engine's parser would overflow its
stack and hold the whole batch): it is dead-lettered here, with its bytes, and the rest of its
batch goes through.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.envoy import parse_line as parse_envoy_line
from logsight.shipper.limits import deadletter_original, too_deep
from logsight.sources import rawlog
from logsight.sources.textfile import decode_line
from logsight.spans import is_ecs_span, span_from_record
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine


@dataclass
class IngestReport:
    path: str
    stream: str
    lines: int = 0
    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # raw log files: the timestamp format found (logsight.sources.rawlog) and the lines
    # without a timestamp sent as part of the event before them (stack traces)
    timestamp_format: str | None = None
    continuation_lines: int = 0

    def add_reason(self, reason: str) -> None:
        key = reason.splitlines()[0][:160]
        self.reasons[key] = self.reasons.get(key, 0) + 1


def _line_id(stream: str, path: Path, number: int, raw: bytes) -> str:
    h = hashlib.sha1(f"{stream}\n{path.resolve()}".encode())
    h.update(f"\n{number}\n".encode())
    h.update(raw)
    return h.hexdigest()[:24]


FORMATS = ("auto", "envoy")


def _document(
    kind: str, raw: bytes, *, service: str | None, fallback_time: str | None,
    fmt: str = "auto",
) -> tuple[dict[str, Any] | None, str | None]:
    """(document, error): the document to send for one line, or why it cannot be sent."""
    try:
        text = raw.decode("utf-8")
        bad_bytes = False
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        bad_bytes = True
    if fmt == "envoy":  # parsed here: the ECS fields of a mesh access log (logsight.envoy)
        try:
            access = parse_envoy_line(text)
        except ValueError as e:
            return None, f"not an Envoy/Istio access log: {e}"
        access["service.name"] = service or "envoy"
        return access, None
    if kind == names.LOGS:
        # the logs pipeline parses JSON lines and raw lines itself (one place for the rules)
        doc: dict[str, Any] = {"message": text}
    else:
        try:
            parsed = json.loads(text)
        except ValueError as e:
            return None, f"not JSON: {e}"
        if not isinstance(parsed, dict):
            return None, "not a JSON object"
        doc = parsed
        if kind == names.TRACES and not is_ecs_span(doc):
            # an OTel-JSON span (trace_id, start_time_unix_nano, ...): the one span mapping
            # the analyses and the exporter share
            try:
                doc = span_from_record(doc)
            except ValueError as e:
                return None, f"not a span: {e}"
    if service and kind == names.LOGS:
        doc["service"] = {"name": service}
    extra: dict[str, Any] = {}
    if bad_bytes:
        extra["original_base64"] = base64.b64encode(raw).decode()
    if fallback_time and kind == names.LOGS:
        extra["fallback_timestamp"] = fallback_time
    if extra:
        doc["logsight"] = {**doc.get("logsight", {}), **extra} if isinstance(
            doc.get("logsight"), dict) else extra
    return doc, None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


@dataclass
class _Event:
    """One document's worth of a file: its first line's number, its bytes (continuation lines
    joined with newlines) and, for raw log lines in a non-ISO format, the time found."""

    number: int
    raw: bytes
    time: str | None = None
    rest: bytes | None = None  # the text after the timestamp, when the time was taken off
    stamped: bool = False  # starts with a timestamp (only such an event takes continuations)


def _events(path: Path, kind: str, report: IngestReport, now: datetime | None = None, *,
            group: bool = True) -> Iterator[_Event]:
    """The file's events: every line, except that in a raw log file with a timestamp format
    a line without a timestamp continues the event before it (multi-line events, as
    Filebeat's multiline handling groups them; the same rule as ``logs anomalies --input``)."""
    lines = _lines(path)
    if kind != names.LOGS or not group:
        for number, raw in lines:
            yield _Event(number, raw)
        return
    head: list[tuple[int, bytes]] = []
    for item in lines:
        head.append(item)
        if len(head) >= rawlog.DETECT_LINES:
            break
    if not head or head[0][1].lstrip().startswith(b"{"):  # NDJSON: one document per line
        for number, raw in itertools.chain(head, lines):
            yield _Event(number, raw)
        return
    clock = now or datetime.now(UTC)
    fmt = rawlog.detect_format((decode_line(r)[0] for _, r in head), now=clock)
    report.timestamp_format = fmt
    pending: _Event | None = None
    for number, raw in itertools.chain(head, lines):
        stamp = rawlog.parse_stamp(decode_line(raw)[0], fmt, now=clock) if fmt else None
        # a JSON line in a raw file is a document of its own (the pipeline parses it)
        if (stamp is None and pending is not None and pending.stamped
                and not raw.lstrip().startswith(b"{")):
            pending.raw += b"\n" + raw
            if pending.rest is not None:
                pending.rest += b"\n" + raw
            report.continuation_lines += 1
            continue
        if pending is not None:
            yield pending
        if stamp is None:  # no format, or before the first stamped line: an event of its own
            pending = None
            yield _Event(number, raw)
            continue
        # ISO-8601 stays the pipeline's to parse (one place for the rule); other formats
        # are parsed here and sent as @timestamp with the line after the stamp
        pending = (_Event(number, raw, stamped=True) if fmt == "iso8601" else
                   _Event(number, raw, iso(stamp.time), stamp.rest.encode("utf-8"),
                          stamped=True))
    if pending is not None:
        yield pending


def ingest_file(
    engine: Engine,
    path: str | Path,
    *,
    kind: str = names.LOGS,
    namespace: str = names.DEFAULT_NAMESPACE,
    service: str | None = None,
    missing_time: str = "dead-letter",
    batch_size: int = 1000,
    now: datetime | None = None,
    refresh: bool = False,
    retry_for: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    fmt: str = "auto",
) -> IngestReport:
    """Send every non-empty line of ``path`` to ``kind``'s stream in ``namespace``.

    ``fmt``: ``auto`` (the pipeline parses JSON and raw lines) or ``envoy`` (Envoy / Istio
    access logs, parsed by :mod:`logsight.envoy`; a line that is not one is dead-lettered).
    ``missing_time``: what a raw log line without a timestamp gets - ``dead-letter`` (the
    pipeline's rule) or ``now`` (the time of this ingest). Lines the cluster pushes back
    (429, a write block) are retried with a doubling back-off for at most ``retry_for``
    seconds, then dead-lettered with the reason (``logsight deadletter replay`` re-sends
    them once the cause is gone).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: {'is a directory' if p.is_dir() else 'no such file'}")
    if missing_time not in ("dead-letter", "now"):
        raise ValueError("missing_time must be 'dead-letter' or 'now'")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "envoy" and kind != names.LOGS:
        raise ValueError("--format envoy lines are logs (--kind logs)")
    stream = names.stream(kind, namespace)
    report = IngestReport(path=str(p), stream=stream)
    fallback = iso(now or datetime.now(UTC)) if missing_time == "now" else None
    batch: list[tuple[str, bytes, dict[str, Any]]] = []
    # envoy access logs are one request per line: no multi-line grouping
    for ev in _events(p, kind, report, now, group=fmt != "envoy"):
        number, raw = ev.number, ev.raw
        report.lines += 1 + raw.count(b"\n")
        line_id = _line_id(stream, p, number, raw)
        deep = too_deep(raw)  # before parsing: neither Python's parser nor the engine's
        if deep is not None:
            _dead_letter(engine, [(line_id, raw, f"line {number}: {deep}", None)], stream,
                         report)
            continue
        doc, error = _document(kind, raw if ev.rest is None else ev.rest, service=service,
                               fallback_time=fallback, fmt=fmt)
        if doc is not None and ev.time is not None:
            doc["@timestamp"] = ev.time
        if doc is None:
            _dead_letter(engine, [(line_id, raw, f"line {number}: {error}", None)], stream,
                         report)
            continue
        if kind == names.TRACES and isinstance(doc.get("event.id"), str):
            line_id = doc["event.id"]  # a span's own id: exported and ingested, stored once
        batch.append((line_id, raw, doc))
        if len(batch) >= batch_size:
            _send_retrying(engine, batch, stream, report, retry_for, sleep)
            batch = []
    if batch:
        _send_retrying(engine, batch, stream, report, retry_for, sleep)
    if refresh:
        engine.refresh(stream)
        engine.refresh(names.DEADLETTER_INDEX)
    return report


def _send_retrying(
    engine: Engine, batch: list[tuple[str, bytes, dict[str, Any]]], stream: str,
    report: IngestReport, retry_for: float, sleep: Callable[[float], None],
) -> None:
    waited, delay = 0.0, 0.25
    while True:
        last = waited >= retry_for
        batch = _send(engine, batch, stream, report, final=last)
        if not batch:
            return
        step = min(delay, retry_for - waited)
        sleep(step)
        waited += step
        delay = min(delay * 2, 10.0)


def _send(
    engine: Engine, batch: list[tuple[str, bytes, dict[str, Any]]], stream: str,
    report: IngestReport, *, final: bool = True,
) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Send ``batch``; returns the lines to try again (pushed back, and not ``final``)."""
    result_items = engine.request(
        "POST",
        "/_bulk",
        body="".join(
            json.dumps({"create": {"_index": stream, "_id": i}}) + "\n" + json.dumps(d) + "\n"
            for i, _, d in batch
        ),
        ndjson=True,
    )["items"]
    refused: list[tuple[str, bytes, str, dict[str, Any] | None]] = []
    pipeline_rejected: list[str] = []
    again: list[tuple[str, bytes, dict[str, Any]]] = []
    for entry, item in zip(batch, result_items, strict=True):
        line_id, raw, sent = entry
        op = item["create"]
        status = int(op.get("status", 500))
        err_type = str((op.get("error") or {}).get("type", ""))
        if status == 409:
            report.duplicates += 1
        elif not final and (status in (429, 502, 503, 504) or (
                status == 403 and err_type == "cluster_block_exception")):
            again.append(entry)
        elif status >= 300:
            err = op.get("error") or {}
            refused.append((line_id, raw, f"{err.get('type')}: {err.get('reason')}", sent))
        elif op.get("_index") == names.DEADLETTER_INDEX:
            report.dead_lettered += 1
            pipeline_rejected.append(line_id)
        else:
            report.indexed += 1
    if pipeline_rejected:  # the pipeline wrote why; read it back for the report
        docs = engine.request(
            "POST", f"/{names.DEADLETTER_INDEX}/_mget",
            body={"ids": pipeline_rejected}, params={"_source_includes": "failure.message"},
        )["docs"]
        for d in docs:
            report.add_reason(d.get("_source", {}).get("failure", {}).get("message", "unknown"))
    if refused:
        _dead_letter(engine, refused, stream, report)
    return again


def _dead_letter(
    engine: Engine, items: list[tuple[str, bytes, str, dict[str, Any] | None]], stream: str,
    report: IngestReport,
) -> None:
    now = iso(datetime.now(UTC))
    actions = []
    for line_id, raw, reason, sent in items:
        letter: dict[str, Any] = {"@timestamp": now, **deadletter_original(raw),
                                  "failure": {"stage": "ingest", "stream": stream,
                                              "message": reason}}
        if sent is not None:  # what was sent (--service, ...): what a replay sends again
            letter["original"]["document"] = sent
        actions.append(({"create": {"_index": names.DEADLETTER_INDEX, "_id": line_id}},
                        letter))
        report.add_reason(reason.split(": ", 1)[-1] if reason.startswith("line ") else reason)
    result = engine.bulk(actions)
    report.dead_lettered += result.ok
    report.duplicates += result.duplicates
