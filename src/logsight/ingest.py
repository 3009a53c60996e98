"""Ship an existing file into the cluster: raw log lines or NDJSON, through the streams' ingest
pipelines, so a log file is searchable and analysable like live data.

Each line gets an id from (file, line number, content), so ingesting the same file again
delivers nothing twice. Nothing is lost: a line the pipeline rejects lands in the dead-letter
index with the reason (the pipeline does that), a line that is not valid UTF-8 is sent with
U+FFFD replacements plus its exact bytes in base64 (and so is dead-lettered with both), and a
line the engine refuses at index time is dead-lettered here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.envoy import parse_line as parse_envoy_line
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
    fmt: str = "auto",
) -> IngestReport:
    """Send every non-empty line of ``path`` to ``kind``'s stream in ``namespace``.

    ``fmt``: ``auto`` (the pipeline parses JSON and raw lines) or ``envoy`` (Envoy / Istio
    access logs, parsed by :mod:`logsight.envoy`; a line that is not one is dead-lettered).
    ``missing_time``: what a raw log line without a timestamp gets - ``dead-letter`` (the
    pipeline's rule) or ``now`` (the time of this ingest).
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
    for number, raw in _lines(p):
        report.lines += 1
        doc, error = _document(kind, raw, service=service, fallback_time=fallback, fmt=fmt)
        line_id = _line_id(stream, p, number, raw)
        if doc is None:
            _dead_letter(engine, [(line_id, raw, f"line {number}: {error}")], stream, report)
            continue
        batch.append((line_id, raw, doc))
        if len(batch) >= batch_size:
            _send(engine, batch, stream, report)
            batch = []
    if batch:
        _send(engine, batch, stream, report)
    if refresh:
        engine.refresh(stream)
        engine.refresh(names.DEADLETTER_INDEX)
    return report


def _send(
    engine: Engine, batch: list[tuple[str, bytes, dict[str, Any]]], stream: str,
    report: IngestReport,
) -> None:
    result_items = engine.request(
        "POST",
        "/_bulk",
        body="".join(
            json.dumps({"create": {"_index": stream, "_id": i}}) + "\n" + json.dumps(d) + "\n"
            for i, _, d in batch
        ),
        ndjson=True,
    )["items"]
    refused: list[tuple[str, bytes, str]] = []
    pipeline_rejected: list[str] = []
    for (line_id, raw, _), item in zip(batch, result_items, strict=True):
        op = item["create"]
        status = int(op.get("status", 500))
        if status == 409:
            report.duplicates += 1
        elif status >= 300:
            err = op.get("error") or {}
            refused.append((line_id, raw, f"{err.get('type')}: {err.get('reason')}"))
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


def _dead_letter(
    engine: Engine, items: list[tuple[str, bytes, str]], stream: str, report: IngestReport
) -> None:
    now = iso(datetime.now(UTC))
    actions = []
    for line_id, raw, reason in items:
        actions.append((
            {"create": {"_index": names.DEADLETTER_INDEX, "_id": line_id}},
            {
                "@timestamp": now,
                "original_text": raw.decode("utf-8", "replace"),
                "original": {"base64": base64.b64encode(raw).decode()},
                "failure": {"stage": "ingest", "stream": stream, "message": reason},
            },
        ))
        report.add_reason(reason.split(": ", 1)[-1] if reason.startswith("line ") else reason)
    result = engine.bulk(actions)
    report.dead_lettered += result.ok
    report.duplicates += result.duplicates
