"""Span files: field-name variants, clear errors, and ``logsight traces`` end to end on files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logsight.cli import main
from logsight.sources.traces import load_spans_file, spans_frame

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def write_ndjson(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    return path


def trace(i: int, slow_ms: float) -> list[dict[str, Any]]:
    """root api GET /x -> db query (10 ms) then ml predict (slow_ms), mixed field spellings."""
    t0 = T0 + i * 10_000 * MS
    return [
        {"trace_id": f"t{i}", "span_id": "r", "service.name": "api", "name": "GET /x",
         "start_time_unix_nano": str(t0), "end_time_unix_nano": t0 + int((15 + slow_ms) * MS),
         "status": {"code": 2} if i % 4 == 0 else {"code": 1}, "kind": "SPAN_KIND_SERVER"},
        {"traceId": f"t{i}", "spanId": "a", "parentSpanId": "r", "service": {"name": "db"},
         "name": "query", "startTimeUnixNano": t0 + 2 * MS, "duration_ms": 10, "kind": 3},
        {"trace.id": f"t{i}", "span.id": "b", "parent.id": "r", "service": "ml",
         "span.name": "predict", "span.start_unix_nano": t0 + 12 * MS,
         "span.duration_ms": slow_ms, "span.status": "ok", "span.kind": "internal"},
    ]


def test_field_name_variants_are_read_alike(tmp_path: Path) -> None:
    df = load_spans_file(write_ndjson(tmp_path / "s.ndjson", trace(0, 50.0)))
    assert df["trace_id"].tolist() == ["t0"] * 3
    assert df["parent_id"].isna().tolist() == [True, False, False]
    assert df["parent_id"].tolist()[1:] == ["r", "r"]
    assert df["service"].tolist() == ["api", "db", "ml"]
    assert df["name"].tolist() == ["GET /x", "query", "predict"]
    assert df["status"].tolist() == ["error", "unset", "ok"]
    assert df["kind"].tolist() == ["server", "client", "internal"]
    assert (df["end_ns"] - df["start_ns"]).tolist() == [65 * MS, 10 * MS, 50 * MS]
    assert df["start_ns"].iloc[0] == T0  # a uint64 encoded as a string stays exact


def test_iso_start_and_follows_from() -> None:
    df = spans_frame([
        {"trace_id": "t", "span_id": "s", "service": "a", "name": "n",
         "start": "2023-11-14T22:13:20.5Z", "end": "2023-11-14T22:13:21Z", "ref_type": "FOLLOWS_FROM"},
    ])
    assert df["start_ns"].iloc[0] == T0 + 500 * MS
    assert df["end_ns"].iloc[0] - df["start_ns"].iloc[0] == 500 * MS
    assert bool(df["follows_from"].iloc[0])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2 is not JSON"),
        ('["a"]', "line 2 is not a JSON object"),
        ('{"trace_id": "t", "span_id": "x", "name": "n", "start_time_unix_nano": 1, '
         '"duration_ms": 1}', "line 2: span has no service"),
        ('{"trace_id": "t", "span_id": "x", "service": "s", "name": "n", '
         '"start_time_unix_nano": 1}', "line 2: span has no end"),
        ('{"trace_id": "t", "span_id": "x", "service": "s", "name": "n", '
         '"start": "yesterday", "duration_ms": 1}', "line 2: start must be an ISO-8601 time"),
        ('{"trace_id": "t", "span_id": "x", "service": "s", "name": "n", '
         '"start_time_unix_nano": "soon", "duration_ms": 1}', "must be integer unix nanoseconds"),
    ],
)
def test_bad_lines_get_a_clear_error(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(trace(0, 5.0)[0]) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_spans_file(path)
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path)])
    assert result.exit_code == 2
    assert message.split(":")[-1].strip() in result.output
    assert "Traceback" not in result.output


def test_cli_bottlenecks_json_ranks_the_slow_operation_first(tmp_path: Path) -> None:
    records = [r for i in range(20) for r in trace(i, 80.0)]
    path = write_ndjson(tmp_path / "spans.ndjson", records)
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = out["bottlenecks"]
    assert [(r["service"], r["operation"]) for r in rows] == [
        ("ml", "predict"), ("db", "query"), ("api", "GET /x")
    ]
    for key in ("service", "operation", "critical_path_share", "self_time_p95_ms",
                "latency_p95_ms", "error_rate", "count"):
        assert key in rows[0]
    assert rows[0]["critical_path_share"] == pytest.approx(80 / 95)
    assert rows[0]["count"] == 20
    api = rows[2]
    assert api["error_rate"] == pytest.approx(0.25)
    assert api["self_time_p95_ms"] == pytest.approx(5.0)
    assert out["stats"]["spans"] == 60


def test_cli_table_and_entry_point_filter(tmp_path: Path) -> None:
    records = [r for i in range(5) for r in trace(i, 30.0)]
    records.append({"trace_id": "other", "span_id": "z", "service": "batch", "name": "job",
                    "start_time_unix_nano": T0, "duration_ms": 999})
    path = write_ndjson(tmp_path / "spans.ndjson", records)
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2].split()[1:3] == ["batch", "job"]
    result = CliRunner().invoke(
        main, ["traces", "bottlenecks", "--input", str(path), "--service", "api", "--json"]
    )
    names = [r["operation"] for r in json.loads(result.output)["bottlenecks"]]
    assert names == ["predict", "query", "GET /x"]


def test_cli_regressions_on_files(tmp_path: Path) -> None:
    base = write_ndjson(tmp_path / "base.ndjson",
                        [r for i in range(40) for r in trace(i, 20.0 + (i % 7))])
    cur = write_ndjson(tmp_path / "cur.ndjson",
                       [r for i in range(40) for r in trace(i, 60.0 + (i % 7))])
    result = CliRunner().invoke(main, ["traces", "regressions", "--input", str(cur),
                                       "--baseline-input", str(base), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["regressions"]
    regressed = [(r["service"], r["operation"]) for r in rows if r["regressed"]]
    assert regressed == [("ml", "predict")]
    api = next(r for r in rows if r["operation"] == "GET /x")
    assert api["downstream"] is True
    result = CliRunner().invoke(main, ["traces", "regressions", "--input", str(cur)])
    assert result.exit_code == 2 and "--baseline-input" in result.output


def test_cli_rejects_a_bad_window() -> None:
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--from", "yesterday"])
    assert result.exit_code == 2
    assert "neither an ISO-8601 time" in result.output
