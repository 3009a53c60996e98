"""Trace analysis (pure): hand-built traces with known answers, property tests against a plain
recursive implementation of Jaeger's critical path, aggregation and regressions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logsight.analysis.traces import (
    BOTTLENECK_FIELDS,
    aggregate_operations,
    analyze_spans,
    bottleneck_findings,
    compare_operations,
    group_quantiles,
    rank_bottlenecks,
    regression_findings,
)

MS = 1_000_000


def sp(trace: str, span: str, parent: str | None, a: float, b: float, *, service: str = "svc",
       name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"trace_id": trace, "span_id": span, "parent_id": parent, "service": service,
            "name": name or span, "start_ns": int(a * MS), "end_ns": int(b * MS), **extra}


def by_span(rows: list[dict[str, Any]], **kw: Any) -> tuple[pd.DataFrame, Any]:
    res = analyze_spans(pd.DataFrame(rows), **kw)
    return res.spans.set_index(["trace_id", "span_id"]), res


# -- known answers -----------------------------------------------------------------------------
def test_sequential_children_are_all_critical() -> None:
    s, res = by_span([sp("t", "r", None, 0, 100), sp("t", "a", "r", 10, 40),
                      sp("t", "b", "r", 40, 90)])
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(20)
    assert s.loc[("t", "a"), "critical_path_ms"] == pytest.approx(30)
    assert s.loc[("t", "b"), "critical_path_ms"] == pytest.approx(50)
    assert s.loc[("t", "r"), "self_time_ms"] == pytest.approx(20)
    assert s["on_critical_path"].all()
    assert res.traces.loc[0, "critical_path_ms"] == pytest.approx(100)


def test_nested_chain() -> None:
    s, _ = by_span([sp("t", "r", None, 0, 100), sp("t", "a", "r", 10, 90),
                    sp("t", "b", "a", 20, 80)])
    assert s["critical_path_ms"].tolist() == pytest.approx([20, 20, 60])
    assert s["self_time_ms"].tolist() == pytest.approx([20, 20, 60])
    assert s["depth"].tolist() == [0, 1, 2]


def test_parallel_fan_out_only_slowest_branch_is_critical() -> None:
    s, _ = by_span([sp("t", "r", None, 0, 100), sp("t", "a", "r", 10, 50),
                    sp("t", "b", "r", 10, 90), sp("t", "c", "r", 10, 30),
                    sp("t", "b1", "b", 20, 60)])
    assert s.loc[("t", "b"), "on_critical_path"]
    assert not s.loc[("t", "a"), "on_critical_path"]
    assert not s.loc[("t", "c"), "on_critical_path"]
    assert s.loc[("t", "a"), "critical_path_ms"] == 0
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(20)
    assert s.loc[("t", "b"), "critical_path_ms"] == pytest.approx(40)
    assert s.loc[("t", "b1"), "critical_path_ms"] == pytest.approx(40)
    # union of overlapping children counted once: 10..90
    assert s.loc[("t", "r"), "self_time_ms"] == pytest.approx(20)


def test_fan_out_then_join_walks_back_through_earlier_children() -> None:
    # a and b in parallel, then c after both: c, then b (the last to finish before c) are critical
    s, _ = by_span([sp("t", "r", None, 0, 100), sp("t", "a", "r", 0, 30),
                    sp("t", "b", "r", 0, 50), sp("t", "c", "r", 60, 100)])
    assert s.loc[("t", "c"), "critical_path_ms"] == pytest.approx(40)
    assert s.loc[("t", "b"), "critical_path_ms"] == pytest.approx(50)
    assert s.loc[("t", "a"), "critical_path_ms"] == 0
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(10)


@pytest.mark.parametrize("marker", [{"kind": "consumer"}, {"follows_from": True}])
def test_async_child_outlives_parent_without_blocking_it(marker: dict[str, Any]) -> None:
    rows = [sp("t", "r", None, 0, 100, kind="server", follows_from=False),
            {**sp("t", "x", "r", 50, 300, kind="internal", follows_from=False), **marker},
            sp("t", "y", "x", 100, 250, kind="internal", follows_from=False)]
    s, res = by_span(rows)
    assert s.loc[("t", "x"), "async_child"]
    assert not s.loc[("t", "x"), "clipped"]
    assert s.loc[("t", "x"), "eff_end_ns"] == 300 * MS
    assert s.loc[("t", "r"), "self_time_ms"] == pytest.approx(100)
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(100)
    assert not s.loc[("t", "x"), "on_critical_path"]
    assert s.loc[("t", "x"), "self_time_ms"] == pytest.approx(100)  # 250 - 150 of y
    assert res.stats.async_children == 1 and res.stats.clipped == 0


def test_orphan_attaches_to_root_by_default() -> None:
    rows = [sp("t", "r", None, 0, 100), sp("t", "o", "lost", 20, 60)]
    s, res = by_span(rows)
    assert res.stats.orphans == 1
    assert s.loc[("t", "o"), "orphan"]
    assert s.loc[("t", "o"), "parent_index"] == 0
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(60)
    assert s.loc[("t", "o"), "critical_path_ms"] == pytest.approx(40)


def test_orphan_as_own_root() -> None:
    s, res = by_span([sp("t", "r", None, 0, 100), sp("t", "o", "lost", 20, 60)], orphans="own")
    assert s.loc[("t", "o"), "parent_index"] == -1
    assert s.loc[("t", "r"), "critical_path_ms"] == pytest.approx(100)
    assert s.loc[("t", "o"), "self_time_ms"] == pytest.approx(40)
    assert not s.loc[("t", "o"), "on_critical_path"]
    assert res.traces.loc[0, "entry_operation"] == "r"


def test_trace_without_true_root_uses_earliest_orphan() -> None:
    s, res = by_span([sp("t", "b", "gone", 30, 50), sp("t", "a", "gone", 10, 80)])
    assert res.traces.loc[0, "entry_operation"] == "a"
    assert s.loc[("t", "b"), "parent_index"] == s.index.get_loc(("t", "a"))
    assert res.traces.loc[0, "critical_path_ms"] == pytest.approx(70)


def test_clock_skew_is_clipped_and_counted() -> None:
    s, res = by_span([sp("t", "r", None, 0, 100), sp("t", "c", "r", 80, 130),
                      sp("t", "g", "c", 120, 125)])
    assert res.stats.clipped == 2
    assert s.loc[("t", "c"), "eff_end_ns"] == 100 * MS
    assert s.loc[("t", "c"), "duration_ms"] == pytest.approx(50)  # latency keeps what was reported
    assert s.loc[("t", "c"), "self_time_ms"] == pytest.approx(20)
    assert s.loc[("t", "g"), "self_time_ms"] == 0
    assert s.loc[("t", "r"), "self_time_ms"] == pytest.approx(80)
    assert res.traces.loc[0, "critical_path_ms"] == pytest.approx(100)


def test_errors_and_error_rate() -> None:
    rows = [sp(f"t{i}", "r", None, 0, 10, name="op", status="error" if i < 2 else "ok")
            for i in range(4)]
    res = analyze_spans(pd.DataFrame(rows))
    (row,) = rank_bottlenecks(res)
    assert row["error_rate"] == pytest.approx(0.5)
    assert res.traces["errors"].tolist() == [1, 1, 0, 0]


def test_repairs_duplicates_cycles_self_parent_and_negative_durations() -> None:
    rows = [sp("t", "r", None, 0, 100), sp("t", "r", None, 0, 100),
            sp("t", "x", "y", 10, 20), sp("t", "y", "x", 30, 40),
            sp("t", "s", "s", 50, 60), sp("t", "n", "r", 70, 65)]
    s, res = by_span(rows)
    assert res.stats.duplicates == 1
    assert res.stats.cycles == 2
    assert res.stats.negative == 1
    assert s.loc[("t", "n"), "duration_ms"] == 0
    assert s.loc[("t", "s"), "orphan"]
    assert res.traces.loc[0, "critical_path_ms"] == pytest.approx(100)
    assert (s["self_time_ms"] >= 0).all()


def test_input_frame_is_not_modified_and_bad_frames_are_refused() -> None:
    df = pd.DataFrame([sp("t", "r", None, 0, 100)])
    before = df.copy()
    analyze_spans(df)
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(ValueError, match="lacks column"):
        analyze_spans(df.drop(columns=["name"]))
    with pytest.raises(ValueError, match="integer unix nanoseconds"):
        analyze_spans(df.assign(start_ns=["x"]))
    with pytest.raises(ValueError, match="orphans"):
        analyze_spans(df, orphans="drop")  # type: ignore[arg-type]  # the invalid value is tested


def test_empty_frame() -> None:
    cols = {"trace_id": [], "span_id": [], "service": [], "name": [],
            "start_ns": np.zeros(0, np.int64), "end_ns": np.zeros(0, np.int64)}
    res = analyze_spans(pd.DataFrame(cols))
    assert res.stats.spans == 0 and len(res.traces) == 0
    assert rank_bottlenecks(res) == []


def test_huge_times_use_the_rank_line() -> None:
    # per-parent widths that would overflow int64 offsets take the dense-rank fallback
    big = 4 * 10**18
    rows = [{"trace_id": t, "span_id": "r", "parent_id": None, "service": "s", "name": "r",
             "start_ns": 0, "end_ns": big} for t in ("a", "b")]
    rows += [{"trace_id": t, "span_id": "c", "parent_id": "r", "service": "s", "name": "c",
              "start_ns": 10, "end_ns": big // 2} for t in ("a", "b")]
    s, _ = by_span(rows)
    assert s.loc[("a", "r"), "critical_path_ms"] == pytest.approx((big - big // 2 + 10) / MS)
    assert s.loc[("b", "c"), "self_time_ms"] == pytest.approx((big // 2 - 10) / MS)


def test_group_quantiles_match_numpy() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 5, 300)
    values = rng.gamma(2.0, 10.0, 300)
    got = group_quantiles(codes, values, (0.5, 0.95, 0.99))
    for g in range(5):
        want = np.percentile(values[codes == g], [50, 95, 99])
        assert got[g] == pytest.approx(want)


# -- a toy system: one slow operation dominates ------------------------------------------------
def toy_spans(n_traces: int, *, seed: int, slow_ms: float = 80.0, prefix: str = "t",
              version: str = "1") -> pd.DataFrame:
    """api GET /predict -> [auth (fast), features (parallel with cache), model.infer]."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_traces):
        t = f"{prefix}{i}"
        t0 = i * 1000.0
        auth = rng.gamma(4, 1.0)
        feat = rng.gamma(4, 2.5)
        cache = rng.gamma(4, 1.0)
        infer = rng.normal(slow_ms, slow_ms / 10)
        a_end = t0 + 1 + auth
        f_end = a_end + feat
        i_end = f_end + abs(infer)
        rows += [
            sp(t, "r", None, t0, i_end + 2, service="api", name="GET /predict", version=version,
               status="error" if rng.random() < 0.05 else "ok"),
            sp(t, "a", "r", t0 + 1, a_end, service="auth", name="check", version=version),
            sp(t, "f", "r", a_end, f_end, service="features", name="lookup", version=version),
            sp(t, "c", "r", a_end, a_end + cache, service="cache", name="get", version=version),
            sp(t, "m", "r", f_end, i_end, service="model", name="infer", version=version),
        ]
    return pd.DataFrame(rows)


def test_slow_operation_ranks_first_and_becomes_a_finding() -> None:
    res = analyze_spans(toy_spans(200, seed=1))
    rows = rank_bottlenecks(res, top=3)
    assert [r["operation"] for r in rows][0] == "infer"
    assert set(rows[0]) == set(BOTTLENECK_FIELDS)
    assert rows[0]["critical_path_share"] > 0.6
    assert sum(r["critical_path_share"] for r in rank_bottlenecks(res, top=None)) == (
        pytest.approx(1.0)
    )
    findings = bottleneck_findings(rows, window_start="2024-01-01T00:00:00Z",
                                   window_end="2024-01-01T01:00:00Z")
    assert [f.subject for f in findings] == ["infer"]
    assert findings[0].kind == "trace_bottleneck" and findings[0].severity == "high"
    again = bottleneck_findings(rows, window_start="2024-01-01T00:00:00Z",
                                window_end="2024-01-01T01:00:00Z")
    assert findings[0].id == again[0].id
    # the cache read runs in parallel with the slower feature lookup: never critical
    cache = next(r for r in rank_bottlenecks(res, top=None) if r["operation"] == "get")
    assert cache["on_critical_path_ratio"] < 0.05


def test_aggregate_by_entry_point_and_version_shares_within_entry_point() -> None:
    df = pd.concat([toy_spans(50, seed=2, version="1"),
                    toy_spans(50, seed=3, version="2", prefix="u")])
    res = analyze_spans(df)
    keys = ("entry_service", "entry_operation", "service", "name", "version")
    agg = aggregate_operations(res, keys=keys, share_within=keys[:2])
    assert agg["critical_path_share"].sum() == pytest.approx(1.0)
    assert set(agg["version"]) == {"1", "2"}
    assert (agg.groupby("version")["count"].sum() == 250).all()


def test_regression_detected_for_the_slowed_operation_only() -> None:
    base = analyze_spans(toy_spans(150, seed=4, slow_ms=40))
    cur = analyze_spans(toy_spans(150, seed=5, slow_ms=90, prefix="u"))
    results = compare_operations(base, cur, alpha=0.01)
    flagged = {(r.service, r.operation) for r in results if r.regressed}
    assert flagged == {("model", "infer")}
    infer = next(r for r in results if r.operation == "infer")
    assert infer.p95_ratio > 1.8
    assert infer.share_change > 0
    assert infer.score < infer.threshold and infer.direction == "below"
    findings = regression_findings(results, window_start="2024-01-02T00:00:00Z",
                                   window_end="2024-01-02T01:00:00Z")
    assert [(f.kind, f.subject, f.severity) for f in findings] == [
        ("trace_regression", "infer", "high")
    ]


def test_no_regression_between_two_samples_of_the_same_system() -> None:
    base = analyze_spans(toy_spans(150, seed=6))
    cur = analyze_spans(toy_spans(150, seed=7, prefix="u"))
    assert not [r for r in compare_operations(base, cur) if r.regressed]


# -- properties --------------------------------------------------------------------------------
@st.composite
def trees(draw: st.DrawFn, *, sequential: bool = False) -> list[dict[str, Any]]:
    """One trace whose children lie inside their parents (integer ms, 0..120)."""
    n = draw(st.integers(1, 12))
    spans = [(-1, 0, draw(st.integers(0, 120)))]
    last_end: dict[int, int] = defaultdict(lambda: -1)
    for _ in range(1, n):
        p = draw(st.integers(0, len(spans) - 1))
        ps, pe = spans[p][1], spans[p][2]
        if sequential:
            lo = max(ps, last_end[p])
            if lo > pe:
                continue
            a = draw(st.integers(lo, pe))
            b = draw(st.integers(a, pe))
            last_end[p] = b if b > a else a + 1  # also keep zero-length siblings apart
        else:
            a = draw(st.integers(ps, pe))
            b = draw(st.integers(a, pe))
        spans.append((p, a, b))
    return [sp("t", f"s{i}", None if p < 0 else f"s{p}", a, b)
            for i, (p, a, b) in enumerate(spans)]


def reference_critical_path(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Jaeger's recursive algorithm, written plainly (children already inside parents)."""
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    root = None
    for r in rows:
        if r["parent_id"] is None:
            root = r
        else:
            children[r["parent_id"]].append(r)
    assert root is not None
    cp: dict[str, float] = defaultdict(float)

    def walk(span: dict[str, Any], until: int) -> None:
        cands = [c for c in children[span["span_id"]]
                 if c["end_ns"] <= until and c["end_ns"] > c["start_ns"]]
        if not cands:
            cp[span["span_id"]] += (until - span["start_ns"]) / MS
            return
        c = max(cands, key=lambda c: (c["end_ns"], -c["start_ns"]))
        cp[span["span_id"]] += (until - c["end_ns"]) / MS
        walk(c, c["end_ns"])
        walk(span, c["start_ns"])

    walk(root, root["end_ns"])
    return {r["span_id"]: cp[r["span_id"]] for r in rows}


def active_leaves_integral(rows: list[dict[str, Any]]) -> float:
    """Sum over unit time steps of the number of active spans that have no active child."""
    parent = {r["span_id"]: r["parent_id"] for r in rows}
    lo = min(r["start_ns"] for r in rows) // MS
    hi = max(r["end_ns"] for r in rows) // MS
    total = 0
    for k in range(lo, hi):
        active = {r["span_id"] for r in rows if r["start_ns"] <= k * MS and (k + 1) * MS <= r["end_ns"]}
        with_child = {parent[s] for s in active if parent[s] is not None}
        total += len(active - with_child)
    return float(total)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_properties_of_self_time_and_critical_path(rows: list[dict[str, Any]]) -> None:
    sibling_intervals = [(r["parent_id"], r["start_ns"], r["end_ns"]) for r in rows
                         if r["end_ns"] > r["start_ns"]]
    assume(len(set(sibling_intervals)) == len(sibling_intervals))  # ties make the path ambiguous
    res = analyze_spans(pd.DataFrame(rows))
    s = res.spans.set_index("span_id")
    root = rows[0]
    root_ms = (root["end_ns"] - root["start_ns"]) / MS
    assert (s["self_time_ms"] >= 0).all()
    assert (s["critical_path_ms"] >= 0).all()
    assert (s["critical_path_ms"] <= s["duration_ms"] + 1e-9).all()
    assert s["critical_path_ms"].sum() <= root_ms + 1e-9
    assert s["critical_path_ms"].sum() == pytest.approx(root_ms)
    assert s["self_time_ms"].sum() == pytest.approx(active_leaves_integral(rows))
    ref = reference_critical_path(rows)
    for span_id, want in ref.items():
        assert s.loc[span_id, "critical_path_ms"] == pytest.approx(want), span_id
    # the row order of the input does not matter
    shuffled = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    s2 = analyze_spans(shuffled).spans.set_index("span_id").loc[s.index]
    assert s2["critical_path_ms"].to_numpy() == pytest.approx(s["critical_path_ms"].to_numpy())
    assert s2["self_time_ms"].to_numpy() == pytest.approx(s["self_time_ms"].to_numpy())


@settings(max_examples=100, deadline=None)
@given(trees(sequential=True))
def test_sum_of_self_times_is_busy_time_when_siblings_never_overlap(
    rows: list[dict[str, Any]],
) -> None:
    res = analyze_spans(pd.DataFrame(rows))
    root_ms = (rows[0]["end_ns"] - rows[0]["start_ns"]) / MS
    # every span lies inside the root, so the union of busy time is the root's interval
    assert res.spans["self_time_ms"].sum() == pytest.approx(root_ms)
    assert (res.spans["self_time_ms"] >= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=5))
def test_many_traces_analyse_like_each_alone(traces: list[list[dict[str, Any]]]) -> None:
    rows = [{**r, "trace_id": f"t{i}"} for i, tr in enumerate(traces) for r in tr]
    together = analyze_spans(pd.DataFrame(rows)).spans.set_index(["trace_id", "span_id"])
    for i, tr in enumerate(traces):
        alone = analyze_spans(pd.DataFrame(tr)).spans.set_index("span_id")
        part = together.loc[f"t{i}"].loc[alone.index]
        assert part["self_time_ms"].to_numpy() == pytest.approx(alone["self_time_ms"].to_numpy())
        assert part["critical_path_ms"].to_numpy() == pytest.approx(
            alone["critical_path_ms"].to_numpy()
        )
