"""``logsight ingest``: files into the real engine, nothing lost, nothing twice."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from logsight import names
from logsight.cli import main
from logsight.engine import Engine
from logsight.ingest import ingest_file

pytestmark = pytest.mark.engine

RAW = (
    b"2024-05-01 10:00:00,123 INFO started\n"
    b"no timestamp line\n"
    b'{"@timestamp":"2024-05-01T10:00:02Z","log.level":"error","message":"json"}\n'
    b"{broken\n"
    b"\n"
    b"bad \xff bytes 2024\n"
)


def _dead(engine: Engine, stream: str) -> list[dict]:
    engine.refresh(names.DEADLETTER_INDEX)
    resp = engine.search(names.DEADLETTER_INDEX,
                         {"size": 50, "query": {"term": {"failure.stream": stream}}})
    return [h["_source"] for h in resp["hits"]["hits"]]


def test_ingest_logs_loses_nothing_and_sends_nothing_twice(engine: Engine, namespace: str,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(RAW)
    report = ingest_file(engine, path, namespace=namespace, service="billing", refresh=True)
    # the untimed line continues the event before it (multi-line events); the JSON line is a
    # document of its own, the broken one and the one with invalid bytes are dead letters
    assert (report.lines, report.indexed, report.dead_lettered) == (5, 2, 2)
    assert (report.timestamp_format, report.continuation_lines) == ("iso8601", 1)
    stream = names.stream(names.LOGS, namespace)
    hits = engine.search(stream, {"size": 10, "sort": [{"@timestamp": "asc"}]})["hits"]["hits"]
    src = [h["_source"] for h in hits]
    assert [s["message"] for s in src] == [
        "2024-05-01 10:00:00,123 INFO started\nno timestamp line", "json"]
    assert src[0]["service"]["name"] == "billing" and src[0]["log"]["level"] == "info"
    dead = _dead(engine, stream)
    reasons = " | ".join(d["failure"]["message"] for d in dead)
    assert "Unexpected character" in reasons and "invalid UTF-8" in reasons
    (bad,) = [d for d in dead if "invalid UTF-8" in d["failure"]["message"]]
    assert base64.b64decode(bad["original"]["logsight"]["original_base64"]) == b"bad \xff bytes 2024"

    again = ingest_file(engine, path, namespace=namespace, service="billing", refresh=True)
    assert (again.indexed, again.dead_lettered, again.duplicates) == (0, 0, 4)
    assert engine.count(stream) == 2


def test_missing_time_now_keeps_untimed_lines(engine: Engine, namespace: str,
                                              tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"no timestamp here\n2024-05-01T10:00:00Z WARN has one\n")
    report = ingest_file(engine, path, namespace=namespace, missing_time="now", refresh=True)
    assert (report.indexed, report.dead_lettered) == (2, 0)
    stream = names.stream(names.LOGS, namespace)
    hits = engine.search(stream, {"size": 10, "sort": [{"@timestamp": "asc"}]})["hits"]["hits"]
    assert hits[0]["_source"]["@timestamp"].startswith("2024-05-01T10:00:00")
    assert hits[1]["_source"]["message"] == "no timestamp here"
    assert "fallback_timestamp" not in hits[1]["_source"].get("logsight", {})


def test_ingest_spans_dead_letters_lines_that_are_not_json(engine: Engine, namespace: str,
                                                           tmp_path: Path) -> None:
    good = {"trace.id": "t1", "span.id": "s1", "span.start_unix_nano": 1714557600000000000,
            "span.duration_ms": 5.0, "service.name": "api", "span.name": "GET /"}
    path = tmp_path / "spans.ndjson"
    path.write_text(json.dumps(good) + "\nnot json\n[1, 2]\n")
    report = ingest_file(engine, path, kind=names.TRACES, namespace=namespace, refresh=True)
    assert (report.indexed, report.dead_lettered) == (1, 2)
    dead = _dead(engine, names.stream(names.TRACES, namespace))
    assert sorted(d["original_text"] for d in dead) == ["[1, 2]", "not json"]
    assert {d["failure"]["stage"] for d in dead} == {"ingest"}


def test_cli(engine: Engine, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(RAW)
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", str(path), "--namespace", namespace, "--url", engine.url])
    assert res.exit_code == 0, res.output
    assert "5 line(s): 2 indexed, 0 already there, 2 dead-lettered" in res.output
    assert "invalid UTF-8" in res.output
    assert "1 line(s) without a timestamp sent with the event before them" in res.output
    res = runner.invoke(main, ["ingest", str(tmp_path / "nope.log"), "--url", engine.url])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(main, ["ingest", str(path), "--namespace", "Bad-NS", "--url", engine.url])
    assert res.exit_code == 2 and "invalid namespace" in res.output


def test_ingest_joins_tracebacks_and_reads_syslog_times(engine: Engine, namespace: str,
                                                         tmp_path: Path) -> None:
    """The same multi-line and timestamp rules as `logs anomalies --input` (issue 19 item 1,
    item 5): a traceback is one document with its first line; syslog times are understood."""
    path = tmp_path / "worker.log"
    path.write_text(
        "Dec  4 09:00:00 worker[12]: INFO started\n"
        "Dec  4 09:00:01 worker[12]: ERROR job 7 failed\n"
        "Traceback (most recent call last):\n"
        '  File "job.py", line 3, in run\n'
        "ValueError: bad input\n"
        "Dec  4 09:00:02 worker[12]: INFO next\n")
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    report = ingest_file(engine, path, namespace=namespace, service="worker", refresh=True,
                         now=now)
    assert (report.lines, report.indexed, report.dead_lettered) == (6, 3, 0)
    assert (report.timestamp_format, report.continuation_lines) == ("syslog", 3)
    stream = names.stream(names.LOGS, namespace)
    hits = engine.search(stream, {"size": 10, "sort": [{"@timestamp": "asc"}]})["hits"]["hits"]
    src = [h["_source"] for h in hits]
    assert [s["@timestamp"][:19] for s in src] == [
        "2026-12-04T09:00:00", "2026-12-04T09:00:01", "2026-12-04T09:00:02"]
    assert src[1]["message"].startswith("worker[12]: ERROR job 7 failed\nTraceback")
    assert src[1]["message"].endswith("ValueError: bad input")
    assert src[1]["log"]["level"] == "error"
