"""Per-trace, per-operation rows (what the completion job stores) sum to the raw analysis's
per-operation totals, and the ranking rebuilt from the sums is the raw ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.analysis.traces import aggregate_operations, analyze_spans, rank_bottlenecks
from logsight.analysis.traces.pertrace import rank_operation_totals, trace_operations


def random_spans(seed: int, traces: int = 30) -> pd.DataFrame:
    """Random trees: each span's parent is an earlier span of its trace; children may stick
    out of their parent (skew), some parents are missing (orphans), ops repeat in a trace."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(traces):
        n = int(rng.integers(1, 25))
        starts = [0]
        ends = [int(rng.integers(50, 200)) * 1_000_000]
        for i in range(1, n):
            p = int(rng.integers(0, i))
            s = starts[p] + int(rng.integers(0, 40)) * 1_000_000
            starts.append(s)
            ends.append(s + int(rng.integers(0, 60)) * 1_000_000)
            parent = f"s{p}" if rng.random() > 0.05 else "lost"
            rows.append((f"t{t}", f"s{i}", parent, f"svc{rng.integers(0, 3)}",
                         f"op{rng.integers(0, 4)}", s, ends[-1],
                         "error" if rng.random() < 0.1 else "ok"))
        rows.append((f"t{t}", "s0", None, "gw", "GET /", 0, ends[0], "ok"))
    return pd.DataFrame(rows, columns=["trace_id", "span_id", "parent_id", "service", "name",
                                       "start_ns", "end_ns", "status"])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_rows_sum_to_the_raw_totals_and_rank_alike(seed: int) -> None:
    analysis = analyze_spans(random_spans(seed))
    rows = trace_operations(analysis)
    assert rows[["trace_id", "service", "operation"]].duplicated().sum() == 0
    assert rows["span_count"].sum() == analysis.stats.spans
    assert rows["is_root_operation"].sum() == analysis.stats.traces
    assert rows["trace_orphans"].sum() == analysis.stats.orphans
    assert rows["trace_clipped"].sum() == analysis.stats.clipped
    agg = aggregate_operations(analysis).set_index(["service", "name"])
    sums = rows.groupby(["service", "operation"]).agg(
        count=("span_count", "sum"), traces=("trace_id", "size"), errors=("errors", "sum"),
        on_critical_path=("on_critical_path", "sum"),
        critical_path_ms=("critical_path_ms", "sum"), self_time_total_ms=("self_ms", "sum"),
    )
    for key, r in sums.iterrows():
        a = agg.loc[key]
        assert (r["count"], r["traces"], r["errors"], r["on_critical_path"]) == (
            a["count"], a["traces"], a["errors"], a["on_critical_path"])
        assert r["critical_path_ms"] == pytest.approx(a["critical_path_ms"], abs=1e-9)
        assert r["self_time_total_ms"] == pytest.approx(a["self_time_total_ms"], abs=1e-9)
    for key, values in rows.groupby(["service", "operation"])["self_ms_values"]:
        assert sum(len(v) for v in values) == agg.loc[key, "count"]
    totals = sums.reset_index()
    got = rank_operation_totals(totals, top=None)
    want = rank_bottlenecks(analysis, top=None)
    assert [(r["service"], r["operation"]) for r in got] == [
        (r["service"], r["operation"]) for r in want]
    for a_, b_ in zip(got, want, strict=True):
        assert a_["critical_path_share"] == pytest.approx(b_["critical_path_share"], abs=1e-12)
        assert a_["rank"] == b_["rank"] and a_["count"] == b_["count"]


def test_empty_and_bad_input() -> None:
    empty = analyze_spans(random_spans(0).iloc[:0])
    assert len(trace_operations(empty)) == 0
    assert rank_operation_totals(pd.DataFrame(columns=["service", "operation", "count",
                                                       "traces", "errors", "on_critical_path",
                                                       "critical_path_ms",
                                                       "self_time_total_ms"])) == []
    with pytest.raises(ValueError, match="lack column"):
        rank_operation_totals(pd.DataFrame({"service": ["a"]}))
