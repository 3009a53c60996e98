"""Log anomalies by counts, without the engine: weighted window features equal the features of
the lines they count (property), the file fingerprint's known values, and a time-stamped file
read by counts in one pass finds what the line path finds (same ids, nothing extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_logs_counts_integration import MINUTES, T0, _incidents

from logsight.analysis.logs import window_features
from logsight.analysis.logs.counts import LogCounts, split_counts
from logsight.errors import BadRequest, NoData
from logsight.jobs import logs as L
from logsight.jobs.base import Scope, Window
from logsight.sources.logfilecounts import fingerprint


def test_fingerprint_known_values() -> None:
    # FNV-1a 64 of the empty string is the offset basis
    assert fingerprint("") == "cbf29ce484222325"
    # tokens with a digit are one variable: these two lines share a key, a third does not
    assert fingerprint("took 12 ms for user7") == fingerprint("took 345 ms for user81")
    assert fingerprint("took 12 ms for user7") != fingerprint("took 12 s for user7")
    assert fingerprint("a  b") == fingerprint("a b")  # empty tokens are skipped
    many = " ".join(["x"] * 100)
    assert fingerprint(many) == fingerprint(" ".join(["x"] * 64) + " ...")


rows = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5), st.integers(0, 4),
              st.sampled_from(["info", "warn", "error", "fatal"]), st.integers(1, 7)),
    min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows)
def test_weighted_features_equal_the_lines_they_count(data: list[tuple[Any, ...]]) -> None:
    counts = pd.DataFrame(data, columns=["service", "minute", "template", "level", "count"])
    windows = T0 + pd.to_timedelta(counts["minute"], unit="min")
    weighted = window_features(
        counts, counts["template"].to_numpy(), pd.Series(windows), top=[0, 1], known={0, 1, 2},
        window_seconds=60.0, weights=counts["count"].to_numpy())
    lines = counts.loc[counts.index.repeat(counts["count"])].reset_index(drop=True)
    by_line = window_features(
        lines, lines["template"].to_numpy(),
        pd.Series(T0 + pd.to_timedelta(lines["minute"], unit="min")), top=[0, 1],
        known={0, 1, 2}, window_seconds=60.0)
    pd.testing.assert_frame_equal(weighted, by_line)


def _write(path: Path, docs: list[tuple[str, dict[str, Any]]]) -> None:
    order = sorted(docs, key=lambda d: d[1]["@timestamp"])
    path.write_text("".join(json.dumps(dict(d, _id=i)) + "\n" for i, d in order))


def _run(path: Path, method: L.Method, **kw: Any) -> L.LogAnomaliesResult:
    request = L.LogAnomaliesRequest(Window(None, None), Scope(), method=method, **kw)
    return L.anomalies(request, L.LogFileSource(path))


def test_file_by_counts_finds_what_lines_find(tmp_path: Path) -> None:
    path = tmp_path / "incidents.ndjson"
    _write(path, _incidents("file"))
    counts, lines = _run(path, "counts"), _run(path, "lines")
    assert counts.method == "counts" and lines.method == "lines"
    assert counts.lines == lines.lines
    assert {f.id for f in counts.findings} == {f.id for f in lines.findings}
    assert len(counts.findings) >= 4
    by_id = {f.id: f for f in lines.findings}
    for f in counts.findings:
        assert f.evidence["lines"] == by_id[f.id].evidence["lines"]
        assert f.score == pytest.approx(by_id[f.id].score, abs=1e-9)
        # a silent window has no line to show; the others show as many lines as on lines
        assert len(f.sample_ids) == len(by_id[f.id].sample_ids)
        assert set(f.sample_ids) <= {json.loads(x)["_id"] for x in path.read_text().splitlines()}
    burst = next(f for f in counts.findings
                 if f.window_start == (T0 + pd.Timedelta(minutes=20)).to_pydatetime())
    assert burst.evidence["new_templates"][0]["example"].startswith("payment provider")
    # a window read by both is the same window table
    assert counts.windows["anomalous"].sum() == lines.windows["anomalous"].sum()


def test_file_without_timestamps_is_read_by_lines(tmp_path: Path) -> None:
    path = tmp_path / "plain.log"
    rng = np.random.default_rng(0)
    path.write_text("".join(f"INFO request {rng.integers(999)} served\n" for _ in range(400)))
    result = _run(path, "auto")
    assert result.method == "lines" and result.lines == 400


def test_bad_method_and_empty_splits_are_clear() -> None:
    with pytest.raises(BadRequest) as err:
        L.LogAnomaliesRequest(Window(None, None), method="sideways")  # type: ignore[arg-type]  # the bad value under test
    assert err.value.parameter == "method"
    empty = LogCounts(pd.DataFrame(columns=["window", "count"]), {})
    with pytest.raises(NoData):
        split_counts(empty, 0.5, window="1min")


def test_file_counts_respect_the_range(tmp_path: Path) -> None:
    path = tmp_path / "incidents.ndjson"
    _write(path, _incidents("rng"))
    start = (T0 + pd.Timedelta(minutes=5)).to_pydatetime()
    end = (T0 + pd.Timedelta(minutes=MINUTES - 3)).to_pydatetime()
    kw: dict[str, Any] = {}
    got = {}
    for method in ("counts", "lines"):
        request = L.LogAnomaliesRequest(Window(start, end), Scope(), method=method, **kw)
        got[method] = L.anomalies(request, L.LogFileSource(path))
    assert got["counts"].lines == got["lines"].lines
    assert {f.id for f in got["counts"].findings} == {f.id for f in got["lines"].findings}
