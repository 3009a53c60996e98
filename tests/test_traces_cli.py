"""Span files: field-name variants, clear errors, and ``logsight traces`` end to end on files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logsight.analysis.traces import analyze_spans
from logsight.cli import main
from logsight.cli.traces_cmd import DOWNSTREAM_NOTE, format_p_value
from logsight.sources.traces import load_spans_file, spans_frame
from logsight.writer import ALL_NAMESPACES, critical_path_documents

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


# -- times out of range (user test: OverflowError on a 24-digit end time) -----------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("end_time_unix_nano", 999999999999999999999999,
         "line 2: end_time_unix_nano 999999999999999999999999 is out of range"),
        ("end_time_unix_nano", "999999999999999999999999",
         "line 2: end_time_unix_nano 999999999999999999999999 is out of range"),
        ("end_time_unix_nano", -5, "line 2: end_time_unix_nano -5 is out of range"),
        ("start_time_unix_nano", 1e30, "line 2: start_time_unix_nano 1e+30 is out of range"),
        ("duration_ms", 1e30, "line 2: duration_ms 1e+30 is out of range"),
        ("duration_ms", -1e30, "line 2: duration_ms -1e+30 is out of range"),
        ("start", "9999-01-01T00:00:00Z", "line 2: start '9999-01-01T00:00:00Z' is out of range"),
        ("start", "1900-01-01T00:00:00Z", "line 2: start '1900-01-01T00:00:00Z' is out of range"),
    ],
)
def test_out_of_range_times_are_named_not_a_traceback(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    bad = {"trace_id": "t", "span_id": "x", "service": "s", "name": "n",
           "start_time_unix_nano": T0, "end_time_unix_nano": T0 + MS}
    if field in ("duration_ms", "start"):
        del bad["end_time_unix_nano" if field == "duration_ms" else "start_time_unix_nano"]
    bad[field] = value
    path = tmp_path / "huge.ndjson"
    path.write_text(json.dumps(trace(0, 5.0)[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError) as err:
        load_spans_file(path)
    assert message in str(err.value)
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-(2**80), max_value=2**80))
@example(2**63 - 1)
@example(2**63)
@example(0)
@example(-1)
def test_unix_nanoseconds_are_kept_exactly_or_refused(start: int) -> None:
    """Invariant: a start time is either read back exactly (it fits an int64 from the epoch
    on) or refused with an 'out of range' ValueError - never wrapped, rounded or overflowed."""
    rec = {"trace_id": "t", "span_id": "s", "service": "a", "name": "n",
           "start_time_unix_nano": str(start), "end_time_unix_nano": start}
    if 0 <= start <= 2**63 - 1:
        assert spans_frame([rec])["start_ns"].iloc[0] == start
    else:
        with pytest.raises(ValueError, match="record 0: start_time_unix_nano .* out of range"):
            spans_frame([rec])


# -- the regressions table explains itself -------------------------------------------------------
@pytest.mark.parametrize(("p", "text"), [
    (1.39e-14, "1.39e-14"), (0.0004, "4.00e-04"), (0.001, "0.001"), (0.5, "0.500"),
    (1.0, "1.000"), (0.0, "0.000"), (None, "n/a"), (float("nan"), "n/a"),
])
def test_p_values_keep_their_size(p: float | None, text: str) -> None:
    assert format_p_value(p) == text


def test_regressions_table_has_a_note_and_readable_p_values(tmp_path: Path) -> None:
    base = write_ndjson(tmp_path / "base.ndjson",
                        [r for i in range(40) for r in trace(i, 20.0 + (i % 7))])
    cur = write_ndjson(tmp_path / "cur.ndjson",
                       [r for i in range(40) for r in trace(i, 60.0 + (i % 7))])
    args = ["traces", "regressions", "--input", str(cur), "--baseline-input", str(base)]
    as_json = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)["regressions"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    header, _, *lines = result.output.splitlines()
    assert header.split()[-1] == "note"
    by_op = {r["operation"]: r for r in as_json}
    api = next(line for line in lines if "GET /x" in line)
    # the root got much slower, is not a regression, and the table now says why
    assert by_op["GET /x"]["p95_ratio"] > 1.5 and not by_op["GET /x"]["regressed"]
    assert api.rstrip().endswith(DOWNSTREAM_NOTE)
    predict = next(line for line in lines if "predict" in line)
    assert predict.rstrip().endswith("regressed: latency, critical path share")
    tiny = by_op["predict"]["p_value_latency"]
    assert 0 < tiny < 1e-3
    assert format_p_value(tiny) in predict and "e-" in format_p_value(tiny)
    db = next(line for line in lines if "query" in line)
    assert not db.rstrip().endswith(DOWNSTREAM_NOTE)


@pytest.mark.parametrize(("command", "option", "words"), [
    ("bottlenecks", "--top", "How many operations"),
    ("regressions", "--min-count", "Fewest spans"),
    ("regressions", "--from", "ISO-8601 time, 'now', or an age such as 15m, 6h, now-2h"),
    ("bottlenecks", "--to", "ISO-8601 time, 'now', or an age such as 15m, 6h, now-2h"),
])
def test_options_have_help(command: str, option: str, words: str) -> None:
    out = CliRunner().invoke(main, ["traces", command, "--help"], terminal_width=300).output
    line = next(x for x in out.splitlines() if x.strip().startswith(option))
    assert words in line


# -- no data is said, with a non-zero exit --------------------------------------------------------
def test_unknown_entry_point_in_a_file_is_explained(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "spans.ndjson", [r for i in range(3) for r in trace(i, 5.0)])
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path),
                                       "--service", "nosuch"])
    assert result.exit_code == 1, result.output
    assert "root span of service 'nosuch'" in result.output
    assert "entry points seen: ['api GET /x']" in result.output
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n")
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(empty)])
    assert result.exit_code == 1 and "no spans in" in result.output


def test_critical_path_documents_name_their_namespace() -> None:
    analysis = analyze_spans(spans_frame([r for i in range(3) for r in trace(i, 5.0)]))
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, 1, tzinfo=UTC)
    per_ns = {ns: critical_path_documents(analysis, window_start=start, window_end=end,
                                          namespace=ns) for ns in ("ut1", "ut2", None)}
    assert {d["namespace"] for _, d in per_ns[None]} == {ALL_NAMESPACES} == {"*"}
    assert {d["namespace"] for _, d in per_ns["ut1"]} == {"ut1"}
    ids = [{i for i, _ in docs} for docs in per_ns.values()]
    assert len(ids[0]) == len(analysis.spans.groupby(["service", "name"])) == 3
    # the same aggregates of three namespaces (or all of them) never share an _id
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = critical_path_documents(analysis, window_start=start, window_end=end,
                                    namespace="ut1")
    assert [i for i, _ in again] == [i for i, _ in per_ns["ut1"]]


# -- --from/--to apply to span files too (user test: they were silently ignored) ----------------
def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def test_file_window_keeps_traces_by_their_root_start(tmp_path: Path) -> None:
    """Traces start every 10 s; [T0+100 s, T0+200 s) holds traces 10..19 whole (children
    included), the trace starting exactly at --to is out, and a rootless trace counts by its
    first span."""
    records = [r for i in range(30) for r in trace(i, 30.0)]
    # a trace whose root was not exported: its first span (at T0+150 s) places it
    records.append({"trace_id": "cut", "span_id": "c", "parent_id": "gone", "service": "db",
                    "name": "query", "start_time_unix_nano": T0 + 150_000 * MS,
                    "duration_ms": 1})
    path = write_ndjson(tmp_path / "spans.ndjson", records)
    args = ["traces", "bottlenecks", "--input", str(path), "--json",
            "--from", _iso_ns(T0 + 100_000 * MS), "--to", _iso_ns(T0 + 200_000 * MS)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["stats"]["spans"] == 10 * 3 + 1
    counts = {(r["service"], r["operation"]): r["count"] for r in out["bottlenecks"]}
    assert counts == {("api", "GET /x"): 10, ("ml", "predict"): 10, ("db", "query"): 11}
    # an open end: from trace 25 on, to the file's last trace
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path), "--json",
                                       "--from", _iso_ns(T0 + 250_000 * MS)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["stats"]["spans"] == 5 * 3


def test_file_window_that_misses_the_file_is_said(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "spans.ndjson", [r for i in range(4) for r in trace(i, 5.0)])
    result = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path),
                                       "--from", "2020-01-01", "--to", "2020-01-02"])
    assert result.exit_code == 1, result.output
    assert "no traces in" in result.output and "2020-01-01T00:00:00Z (--from)" in result.output
    assert f"its 4 traces start from {_iso_ns(T0)[:19]}Z to " in result.output
    inverted = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(path),
                                         "--from", "2020-01-02", "--to", "2020-01-01"])
    assert inverted.exit_code == 2 and "--from must be before --to" in inverted.output
    assert "Traceback" not in result.output + inverted.output


def test_file_regressions_take_both_windows(tmp_path: Path) -> None:
    """One file, fast traces then slow ones: the windows split it into baseline and current;
    without them the file is compared with itself and nothing regresses."""
    records = [r for i in range(40) for r in trace(i, 20.0 + (i % 7))]
    records += [r for i in range(40, 80) for r in trace(i, 60.0 + (i % 7))]
    path = write_ndjson(tmp_path / "spans.ndjson", records)
    split = _iso_ns(T0 + 400_000 * MS)
    base = ["traces", "regressions", "--input", str(path), "--baseline-input", str(path),
            "--json"]
    result = CliRunner().invoke(main, [*base, "--from", split, "--baseline-to", split])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["regressions"]
    assert [(r["service"], r["operation"]) for r in rows if r["regressed"]] == [("ml", "predict")]
    same = json.loads(CliRunner().invoke(main, base).output)["regressions"]
    assert not any(r["regressed"] for r in same)
    missed = CliRunner().invoke(main, [*base, "--baseline-from", "2020-01-01",
                                       "--baseline-to", "2020-01-02"])
    assert missed.exit_code == 1
    assert "(--baseline-from)" in missed.output and "its 80 traces start" in missed.output
    inverted = CliRunner().invoke(main, [*base, "--baseline-from", split, "--baseline-to",
                                         _iso_ns(T0)])
    assert inverted.exit_code == 2
    assert "--baseline-from must be before --baseline-to" in inverted.output


def test_file_version_regressions_take_the_window(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "spans.ndjson", [r for i in range(4) for r in trace(i, 5.0)])
    result = CliRunner().invoke(main, [
        "traces", "regressions", "--input", str(path), "--service", "api",
        "--baseline-version", "1", "--version", "2", "--from", "2020-01-01", "--to", "2020-01-02"])
    assert result.exit_code == 1 and "no traces in" in result.output
