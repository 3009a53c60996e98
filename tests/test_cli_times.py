"""Time-window options of the CLI, with the clock passed in: an end left out is now (or, for
a reference window, the current window's start); an end without a start, or an inverted
window, is refused; an overlapping reference is allowed with a warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import click.testing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.cli.drift_cmd import _reference_window, _window
from logsight.sources.traces import spans_frame
from logsight.sources.traces import trace_starts as _trace_starts

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
CUR = ("--current-from", "--current-to")


def test_end_defaults_to_now_and_neither_is_none() -> None:
    assert _window("3h", None, CUR, NOW) == (NOW - 3 * H, NOW)
    assert _window("3h", "1h", CUR, NOW) == (NOW - 3 * H, NOW - H)
    assert _window(None, None, CUR, NOW) is None


def test_end_without_start_and_inverted_windows_are_refused() -> None:
    with pytest.raises(click.UsageError, match="--current-to needs --current-from"):
        _window(None, "1h", CUR, NOW)
    with pytest.raises(click.BadParameter, match="must be before --current-to '3h'"):
        _window("1h", "3h", CUR, NOW)
    with pytest.raises(click.BadParameter, match=r"must be before --current-to \(default: now"):
        _window("2024-05-01T13:00:00Z", None, CUR, NOW)


def test_reference_ends_at_the_current_start(capsys: pytest.CaptureFixture[str]) -> None:
    current = (NOW - 3 * H, NOW)
    assert _reference_window("6h", None, current, NOW) == (NOW - 6 * H, NOW - 3 * H)
    assert _reference_window(None, None, current, NOW) is None
    assert capsys.readouterr().err == ""
    with pytest.raises(click.BadParameter, match="default: the current window's start"):
        _reference_window("2h", None, current, NOW)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 20), st.integers(1, 20), st.integers(0, 20), st.integers(1, 20))
def test_overlap_warning_iff_the_windows_share_time(rs: int, rl: int, cs: int, cl: int) -> None:
    """Invariant: the warning appears exactly when [ref) and [current) intersect."""
    current = (NOW + cs * H, NOW + (cs + cl) * H)
    ref_from, ref_to = NOW + rs * H, NOW + (rs + rl) * H
    runner = click.testing.CliRunner()

    @click.command()
    def cmd() -> None:
        _reference_window(ref_from.isoformat(), ref_to.isoformat(), current, NOW)

    result = runner.invoke(cmd)
    assert result.exit_code == 0, result.output
    overlaps = rs < cs + cl and cs < rs + rl
    assert ("overlaps the current window" in result.stderr) == overlaps


def test_trace_start_is_the_root_start_or_the_first_span() -> None:
    big = 2**60 + 1  # exact past float64's 53 bits: no float detour may round it
    spans = spans_frame([
        {"trace_id": "a", "span_id": "r", "service": "s", "name": "n",
         "start_time_unix_nano": big + 7, "duration_ms": 1},
        {"trace_id": "a", "span_id": "c", "parent_id": "r", "service": "s", "name": "n",
         "start_time_unix_nano": big, "duration_ms": 1},  # a clock-skewed child before root
        {"trace_id": "b", "span_id": "x", "parent_id": "gone", "service": "s", "name": "n",
         "start_time_unix_nano": big + 3, "duration_ms": 1},
        {"trace_id": "b", "span_id": "y", "parent_id": "gone", "service": "s", "name": "n",
         "start_time_unix_nano": big + 5, "duration_ms": 1},
    ])
    assert _trace_starts(spans).to_dict() == {"a": big + 7, "b": big + 3}


def test_every_time_option_takes_the_same_grammar(tmp_path: Path) -> None:
    """One parser behind every time option: ``2024/05/01`` (a date-first spelling), ISO and
    ages mean the same for traces, logs, drift and alerts; a bad value names its option."""
    from click.testing import CliRunner
    from tests.test_traces_cli import T0 as SPANS_T0
    from tests.test_traces_cli import trace, write_ndjson

    from logsight.cli import main
    from logsight.cli.alerts_cmd import _now
    from logsight.cli.common import when

    now = datetime(2024, 6, 1, tzinfo=UTC)
    want = datetime(2024, 5, 1, tzinfo=UTC)
    assert when("2024/05/01", now=now) == want == _now("2024/05/01", clock=now)
    assert when("30d", now=now) == now - timedelta(days=30)
    with pytest.raises(click.BadParameter, match="'6x' is neither"):
        when("6x", now=now, option="--from")
    spans = write_ndjson(tmp_path / "s.ndjson", [s for i in range(3) for s in trace(i, 50)])
    start = datetime.fromtimestamp(SPANS_T0 / 1e9, tz=UTC)
    res = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(spans), "--from",
                                    start.strftime("%Y/%m/%d"), "--json"])
    assert res.exit_code == 0, res.output
    bad = CliRunner().invoke(main, ["traces", "bottlenecks", "--input", str(spans), "--from",
                                    "soon"])
    assert bad.exit_code == 2 and "--from" in bad.output
