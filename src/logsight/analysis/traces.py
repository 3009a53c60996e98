"""Trace bottleneck analysis: trace trees, self time and the critical path over spans.

Pure: a span frame in, dataclasses and frames out. The hot path has no per-span Python loop;
the few loops run once per tree level or once per step of the longest sibling chain, each step
a handful of numpy operations over every trace at once.

**Input** (:data:`SPAN_COLUMNS`, one row per span): ``trace_id``, ``span_id``, ``parent_id``
(null or ``""`` for a root), ``service``, ``name``, ``start_ns``/``end_ns`` (int64 unix
nanoseconds); optional ``status`` (``ok|error|unset``), ``kind``
(``server|client|internal|producer|consumer``), ``version`` (service version) and
``follows_from`` (bool). :func:`logsight.sources.traces.spans_frame` builds this frame from
OTel/ECS-shaped records.

**Trees.** Spans are sorted by (trace, start). Data problems are repaired and counted, never
raised: a span whose end is before its start gets zero length (``negative``); a repeated
(trace, span id) keeps one copy (``duplicates``): one with a valid interval over one ending
before its start, then the first in the input; a span whose parent is not in the trace
is an *orphan*; parent cycles are broken by making their members orphans (``cycles``). Each
trace has one *primary root*: a span without a parent reference if there is one, else the
earliest orphan. With ``orphans="attach"`` (default) every other root hangs under the primary
root as a blocking child - a lost span most likely sat between them - and with ``"own"`` they
stand as separate roots whose subtrees are never on the critical path.

**Async children.** A child is *async* (does not block its parent) when ``follows_from`` is true
or its kind is ``consumer``. Async children are not clipped, do not reduce the parent's self
time and are never on the parent's critical path; their own subtrees are analysed as usual.

**Clock skew.** A blocking child that sticks out of its parent's interval is clipped to it (its
descendants are clipped to the clipped interval in turn) and counted (``clipped``). Latency
statistics keep the reported duration; self time and the critical path use clipped intervals.

**Self time** of a span = its (clipped) duration minus the union of its blocking children's
intervals, overlap counted once, so it is never negative.

**Critical path** (Jaeger's algorithm, after Uber's CRISP): start at the primary root's end;
take the blocking child that finished last (ties: the longer one), it is critical over its whole
interval; continue in the parent from that child's start with the last child that finished by
then, and so on until the parent's start; recurse into every chosen child. A span's critical
time is its duration minus the durations of its chosen children, and the critical times of a
trace add up to its root's duration. Zero-length children are never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from logsight.findings import Finding

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "kind",
    "version",
    "follows_from",
)
REQUIRED_COLUMNS = ("trace_id", "span_id", "service", "name", "start_ns", "end_ns")
OPERATION_KEYS = ("service", "name")
NS_PER_MS = 1_000_000.0
OrphanPolicy = Literal["attach", "own"]

# Keys of a ranked bottleneck row (also the JSON the CLI prints), in table order.
BOTTLENECK_FIELDS = (
    "rank",
    "service",
    "operation",
    "critical_path_share",
    "critical_path_ms",
    "on_critical_path_ratio",
    "self_time_p50_ms",
    "self_time_p95_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "count",
    "traces",
)


@dataclass(frozen=True)
class TraceStats:
    """What had to be repaired while building the trees (see the module docstring)."""

    spans: int
    traces: int
    orphans: int
    clipped: int
    async_children: int
    duplicates: int
    negative: int
    cycles: int


@dataclass
class TraceAnalysis:
    """Result of :func:`analyze_spans`.

    ``spans``: the input spans in input order, repeated span ids dropped, index reset, with
    added columns ``trace_index``, ``parent_index`` (row of the parent, -1 for a root),
    ``root_index`` (row of the trace's primary root), ``depth``, ``orphan``, ``async_child``,
    ``clipped``, ``error``, ``eff_start_ns``/``eff_end_ns`` (after clipping), ``duration_ms``
    (reported), ``self_time_ms``, ``critical_path_ms``, ``on_critical_path``. The entry point of
    a span is the ``service``/``name`` of its ``root_index`` row (:func:`entry_points`).

    ``traces``: one row per trace: ``trace_id``, ``trace_index``, ``root_index``, ``entry_service``,
    ``entry_operation``, ``start_ns``, ``duration_ms``, ``critical_path_ms``, ``spans``,
    ``errors``, ``orphans``, ``clipped``.
    """

    spans: pd.DataFrame
    traces: pd.DataFrame
    stats: TraceStats


# -- input -------------------------------------------------------------------------------------
def _validate(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of spans, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"span frame lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    for col in ("start_ns", "end_ns"):
        if len(df) and not pd.api.types.is_integer_dtype(df[col].dtype):
            raise ValueError(f"column {col!r} must hold integer unix nanoseconds")
        if len(df) and df[col].isna().any():
            raise ValueError(f"column {col!r} has missing values")


def _row_flags(values: pd.Series, accept: frozenset[str]) -> np.ndarray:
    """Per row, whether the lower-cased text value is in ``accept``. Compares the distinct values
    only (a column such as status or kind has a handful), then broadcasts by code."""
    codes, uniques = pd.factorize(values)
    hit = np.array([str(u).strip().lower() in accept for u in uniques] + [False], dtype=bool)
    return hit[codes]  # code -1 (missing) picks the trailing False


# -- tree helpers ------------------------------------------------------------------------------
def _resolve_depth(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth of every node; nodes that never reach a root (cycles) get -1 and are returned."""
    depth = np.full(parent.shape[0], -1, dtype=np.int64)
    depth[parent < 0] = 0
    pending = np.flatnonzero(parent >= 0)
    while pending.size:
        pdepth = depth[parent[pending]]
        ready = pdepth >= 0
        if not ready.any():
            break
        depth[pending[ready]] = pdepth[ready] + 1
        pending = pending[~ready]
    return depth, pending


def _levels(depth: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(int(depth.max(initial=0)) + 2))
    return [order[bounds[d] : bounds[d + 1]] for d in range(len(bounds) - 1)]


def _group_line(
    group: np.ndarray, lo: np.ndarray, hi: np.ndarray, values: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Map (group, value) pairs onto one monotone int64 line: group g owns [O_g, O_g + hi-lo],
    disjoint from and ordered like the other groups, so one sort / cummax / searchsorted over
    every group at once never mixes groups. ``lo``/``hi`` are per-group bounds indexed by group
    id and every value lies within its group's bounds. When the total length could overflow
    int64, times are replaced by their dense rank (order is all the line must keep)."""
    width = np.maximum(hi - lo, 0)
    total = float(width.astype(np.float64).sum()) + float(width.size)
    if total < 2.0**62:
        offsets = np.cumsum(width + 1) - (width + 1)
        return [offsets[group] + (v - lo[group]) for v in values]
    uniq = np.unique(np.concatenate([lo, hi, *values]))
    rank = [np.searchsorted(uniq, a).astype(np.int64) for a in (lo, hi, *values)]
    return _group_line(group, rank[0], rank[1], rank[2:])


def _union_lengths(
    parent: np.ndarray, start: np.ndarray, end: np.ndarray, n: int,
    plo: np.ndarray, phi: np.ndarray,
) -> np.ndarray:
    """Per parent row, the length of the union of the given child intervals (which lie inside
    the parent's [plo, phi])."""
    if parent.size == 0:
        return np.zeros(n, dtype=np.int64)
    gs, ge = _group_line(parent, plo, phi, [start, end])
    order = np.argsort(gs, kind="stable")
    gs, ge = gs[order], ge[order]
    length = (end - start)[order]
    prev = np.empty_like(ge)
    prev[0] = np.iinfo(np.int64).min
    np.maximum.accumulate(ge[:-1], out=prev[1:])
    # covered part of each interval that an earlier one did not cover (lines never overlap
    # across parents, so the running max needs no reset at group borders)
    new = np.clip(ge - np.maximum(gs, prev), 0, None)
    new = np.minimum(new, length)
    return np.bincount(parent[order], weights=new, minlength=n).round().astype(np.int64)


def _critical_chains(
    parent: np.ndarray, start: np.ndarray, end: np.ndarray, n: int,
    plo: np.ndarray, phi: np.ndarray,
) -> np.ndarray:
    """For candidate children (arrays aligned), whether each is on its parent's chain: the
    last-finishing child, then the last child finishing by that child's start, and so on."""
    m = parent.size
    in_chain = np.zeros(m, dtype=bool)
    if m == 0:
        return in_chain
    ge, gs = _group_line(parent, plo, phi, [end, start])
    # by end ascending; among equal ends the longer (earlier start) sorts last so it is chosen
    order = np.lexsort((-gs, ge))
    ge_sorted = ge[order]
    pos = np.searchsorted(ge_sorted, gs, side="right") - 1
    ok = pos >= 0
    ok[ok] = parent[order[pos[ok]]] == parent[ok]
    nxt = np.full(m, -1, dtype=np.int64)
    nxt[ok] = order[pos[ok]]
    # chain heads: the last child of each parent in end order
    last = np.ones(m, dtype=bool)
    psorted = parent[order]
    last[:-1] = psorted[:-1] != psorted[1:]
    frontier = order[last]
    while frontier.size:
        in_chain[frontier] = True
        frontier = nxt[frontier]
        frontier = frontier[frontier >= 0]
    return in_chain


# -- the analysis ------------------------------------------------------------------------------
def analyze_spans(df: pd.DataFrame, *, orphans: OrphanPolicy = "attach") -> TraceAnalysis:
    """Build trace trees and compute per-span self time and critical-path time.

    ``df`` follows :data:`SPAN_COLUMNS` (only :data:`REQUIRED_COLUMNS` are required); it is not
    modified. See the module docstring for how orphans, skew and async children are handled.
    """
    _validate(df)
    if orphans not in ("attach", "own"):
        raise ValueError(f"orphans must be 'attach' or 'own', got {orphans!r}")
    # -- sort by (trace, start, longer first) and drop repeated span ids
    tcode_raw, trace_uniques = pd.factorize(df["trace_id"], use_na_sentinel=False)
    start_raw = df["start_ns"].to_numpy(dtype=np.int64)
    end_raw = df["end_ns"].to_numpy(dtype=np.int64)
    negative = end_raw < start_raw
    end_raw = np.where(negative, start_raw, end_raw)
    order = np.lexsort((start_raw - end_raw, start_raw, tcode_raw))

    span_col = df["span_id"]
    parent_col = df["parent_id"] if "parent_id" in df.columns else pd.Series(
        [None] * len(df), dtype=object
    )
    # one code space for span and parent ids, so a parent lookup is an integer search
    ids = pd.concat([span_col, parent_col], ignore_index=True)
    codes, uniques = pd.factorize(ids)
    codes = codes.astype(np.int64)
    blank = np.flatnonzero(pd.Index(uniques).astype(str) == "")
    if blank.size:
        codes[np.isin(codes, blank)] = -1
    scode_raw = codes[: len(df)]
    pcode_raw = codes[len(df) :]
    k = np.int64(len(uniques) + 1)
    key_raw = tcode_raw.astype(np.int64) * k + scode_raw + 1
    # A repeated (trace, span id) keeps one copy: one with a valid interval over one that ends
    # before it starts (a clock or exporter fault), and among those the first in the input, as
    # the docs say — never "the one that starts first", which favoured the broken copy.
    pref = np.lexsort((np.arange(len(df)), negative, key_raw))
    kvals = key_raw[pref]
    dup = np.zeros(len(kvals), dtype=bool)
    dup[1:] = kvals[1:] == kvals[:-1]
    keep_raw = np.ones(len(df), dtype=bool)
    keep_raw[pref[dup]] = False
    order = order[keep_raw[order]]
    n = int(order.size)

    tcode = tcode_raw[order].astype(np.int64)
    start = start_raw[order]
    end = end_raw[order]
    key = key_raw[order]
    pcode = pcode_raw[order]
    has_ref = pcode >= 0

    # -- parent rows via searchsorted on (trace, span id) keys
    kperm = np.argsort(key, kind="stable")
    kvals = key[kperm]
    pkey = tcode * k + pcode + 1
    pos = np.clip(np.searchsorted(kvals, pkey), 0, max(n - 1, 0))
    found = has_ref & (kvals[pos] == pkey) if n else has_ref
    parent = np.where(found, kperm[pos] if n else 0, -1).astype(np.int64)
    parent[parent == np.arange(n)] = -1  # a span that names itself as parent
    orphan = has_ref & (parent < 0)

    depth, cyclic = _resolve_depth(parent)
    n_cycles = int(cyclic.size)
    if n_cycles:
        parent[cyclic] = -1
        orphan[cyclic] = True
        depth, _ = _resolve_depth(parent)

    # -- primary root per trace: no parent reference first, then earliest start
    roots = np.flatnonzero(parent < 0)
    rorder = roots[np.lexsort((roots, orphan[roots], tcode[roots]))]
    first = np.ones(rorder.size, dtype=bool)
    first[1:] = tcode[rorder][1:] != tcode[rorder][:-1]
    n_traces = len(trace_uniques)
    primary = np.full(n_traces, -1, dtype=np.int64)
    primary[tcode[rorder[first]]] = rorder[first]
    if n:
        # traces whose every span was a duplicate cannot exist; keep only traces with spans
        present = np.zeros(n_traces, dtype=bool)
        present[tcode] = True
    else:
        present = np.zeros(n_traces, dtype=bool)
    is_primary = np.zeros(n, dtype=bool)
    is_primary[primary[present]] = True
    if orphans == "attach":
        extra = roots[~is_primary[roots]]
        parent[extra] = primary[tcode[extra]]
        depth, _ = _resolve_depth(parent)

    # -- async children, then clipping top-down
    async_child = np.zeros(n, dtype=bool)
    if "follows_from" in df.columns:
        async_child |= _row_flags(df["follows_from"], frozenset({"true", "1"}))[order]
    if "kind" in df.columns:
        async_child |= _row_flags(df["kind"], frozenset({"consumer"}))[order]
    async_child &= parent >= 0
    eff_start = start.copy()
    eff_end = end.copy()
    levels = _levels(depth) if n else []
    for idx in levels[1:]:
        blocking = idx[~async_child[idx]]
        p = parent[blocking]
        es = np.clip(start[blocking], eff_start[p], eff_end[p])
        eff_start[blocking] = es
        eff_end[blocking] = np.clip(end[blocking], es, eff_end[p])
        # async children keep their own interval (they may outlive the parent)
    clipped = (eff_start != start) | (eff_end != end)
    eff_dur = eff_end - eff_start

    # -- self time: minus the union of blocking children's intervals
    child = np.flatnonzero((parent >= 0) & ~async_child)
    cp_parent = parent[child]
    union = _union_lengths(
        cp_parent, eff_start[child], eff_end[child], n, eff_start, eff_end
    )
    self_ns = eff_dur - union

    # -- critical path
    cand = child[eff_dur[child] > 0]
    in_chain_c = _critical_chains(
        parent[cand], eff_start[cand], eff_end[cand], n, eff_start, eff_end
    )
    in_chain = np.zeros(n, dtype=bool)
    in_chain[cand] = in_chain_c
    on_cp = np.zeros(n, dtype=bool)
    on_cp[primary[present]] = True
    for idx in levels[1:]:
        on_cp[idx] = in_chain[idx] & on_cp[parent[idx]]
    chained = np.flatnonzero(in_chain)
    chain_ns = np.bincount(
        parent[chained], weights=eff_dur[chained].astype(np.float64), minlength=n
    ).round().astype(np.int64)
    cp_ns = np.where(on_cp, eff_dur - chain_ns, 0)

    # -- frames: rows stay in input order (duplicates dropped); nothing textual is copied
    error = np.zeros(n, dtype=bool)
    if "status" in df.columns:
        error = _row_flags(df["status"], frozenset({"error"}))[order]
    kept = np.sort(order)
    out = df.reset_index(drop=True) if kept.size == len(df) else df.iloc[kept].reset_index(
        drop=True
    )
    pos = np.zeros(len(df), dtype=np.int64)
    pos[kept] = np.arange(n)
    row = pos[order]  # output row of each sorted span

    def back(values: np.ndarray) -> np.ndarray:
        res = np.empty_like(values)
        res[row] = values
        return res

    parent_row = np.where(parent >= 0, row[np.maximum(parent, 0)], -1)
    out = out.assign(
        trace_index=back(tcode),
        parent_index=back(parent_row),
        root_index=back(row[primary[tcode]] if n else tcode),
        depth=back(depth),
        orphan=back(orphan),
        async_child=back(async_child),
        clipped=back(clipped),
        error=back(error),
        eff_start_ns=back(eff_start),
        eff_end_ns=back(eff_end),
        duration_ms=back((end - start) / NS_PER_MS),
        self_time_ms=back(self_ns / NS_PER_MS),
        critical_path_ms=back(cp_ns / NS_PER_MS),
        on_critical_path=back(on_cp),
    )
    tidx = np.flatnonzero(present)
    root_sorted = primary[tidx]
    root_rows = row[root_sorted]
    per_trace = np.bincount(tcode, minlength=n_traces)[tidx]

    def tsum(w: np.ndarray) -> np.ndarray:
        return np.bincount(tcode, weights=w.astype(np.float64), minlength=n_traces)[tidx]

    traces = pd.DataFrame(
        {
            "trace_id": np.asarray(trace_uniques, dtype=object)[tidx],
            "trace_index": tidx,
            "root_index": root_rows,
            "entry_service": out["service"].take(root_rows).to_numpy(dtype=object),
            "entry_operation": out["name"].take(root_rows).to_numpy(dtype=object),
            "start_ns": start[root_sorted],
            "duration_ms": eff_dur[root_sorted] / NS_PER_MS,
            "critical_path_ms": tsum(cp_ns) / NS_PER_MS,
            "spans": per_trace,
            "errors": tsum(error).astype(np.int64),
            "orphans": tsum(orphan).astype(np.int64),
            "clipped": tsum(clipped).astype(np.int64),
        }
    )
    stats_ = TraceStats(
        spans=n,
        traces=int(tidx.size),
        orphans=int(orphan.sum()),
        clipped=int(clipped.sum()),
        async_children=int(async_child.sum()),
        duplicates=int(len(df) - n),
        negative=int(negative[keep_raw].sum()),  # a dropped duplicate is not repaired
        cycles=n_cycles,
    )
    return TraceAnalysis(spans=out, traces=traces, stats=stats_)


# -- aggregation -------------------------------------------------------------------------------
def group_quantiles(codes: np.ndarray, values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of ``values`` per group code ``0..G-1`` (linear interpolation, numpy's default
    method), shape (G, len(qs)); NaN for empty groups."""
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    g = int(codes.max(initial=-1)) + 1
    out = np.full((g, len(qs)), np.nan)
    if g == 0:
        return out
    # sort by value, then stably by group: small integer codes take numpy's radix sort
    by_value = np.argsort(values, kind="stable")
    small = codes.astype(np.uint16) if g <= np.iinfo(np.uint16).max else codes
    order = by_value[np.argsort(small[by_value], kind="stable")]
    v = values[order]
    counts = np.bincount(codes, minlength=g)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    for j, q in enumerate(qs):
        pos = starts[has] + q * (counts[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        out[has, j] = v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return out


def entry_points(analysis: TraceAnalysis) -> pd.DataFrame:
    """``entry_service`` / ``entry_operation`` (the trace's primary root) for every span row."""
    s = analysis.spans
    roots = s["root_index"].to_numpy()
    return pd.DataFrame(
        {
            "entry_service": s["service"].take(roots).to_numpy(dtype=object),
            "entry_operation": s["name"].take(roots).to_numpy(dtype=object),
        }
    )


def _group_codes(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense group codes (in order of first appearance) and one row of key values per group."""
    n = len(frame)
    combined = np.zeros(n, dtype=np.int64)
    for c in keys:
        codes, uniques = pd.factorize(frame[c], use_na_sentinel=False)
        combined, _ = pd.factorize(combined * len(uniques) + codes.astype(np.int64))
        combined = combined.astype(np.int64)
    g = int(combined.max(initial=-1)) + 1
    first = np.empty(g, dtype=np.int64)
    first[combined[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first occurrence
    key_frame = frame[list(keys)].iloc[first].reset_index(drop=True)
    for c in keys:
        key_frame[c] = key_frame[c].astype(object).where(key_frame[c].notna(), "")
    return combined, key_frame


def aggregate_operations(
    analysis: TraceAnalysis,
    *,
    keys: Sequence[str] = OPERATION_KEYS,
    share_within: Sequence[str] = (),
) -> pd.DataFrame:
    """Per group of ``keys`` (default (service, name); ``entry_service``/``entry_operation``
    are available too): ``count``, ``traces``, ``errors``, ``error_rate``,
    ``latency_p50/p95/p99_ms``, ``self_time_p50/p95_ms``, ``self_time_total_ms``,
    ``critical_path_ms`` (critical time contributed), ``critical_path_share`` (of all critical
    time, or of the critical time of the rows sharing ``share_within`` keys, e.g. the entry
    point), ``on_critical_path`` (spans on it), ``on_critical_path_ratio`` and
    ``critical_path_traces``; ranked by ``critical_path_ms`` (then ``self_time_total_ms``),
    best first, with a 1-based ``rank``."""
    s = analysis.spans
    keys = list(keys)
    if any(k in ("entry_service", "entry_operation") and k not in s.columns for k in keys):
        s = pd.concat([s, entry_points(analysis)], axis=1)
    unknown = [c for c in [*keys, *share_within] if c not in s.columns]
    if unknown:
        raise ValueError(f"unknown grouping column(s) {unknown}")
    if len(s) == 0:
        return pd.DataFrame(columns=["rank", *keys, "count", "critical_path_ms"])
    codes, out = _group_codes(s, keys)
    g = len(out)
    count = np.bincount(codes, minlength=g)
    errors = np.bincount(codes, weights=s["error"].to_numpy(dtype=np.float64), minlength=g)
    oncp = s["on_critical_path"].to_numpy(dtype=bool)
    cp = np.bincount(codes, weights=s["critical_path_ms"].to_numpy(), minlength=g)
    self_ms = s["self_time_ms"].to_numpy()
    lat = group_quantiles(codes, s["duration_ms"].to_numpy(), (0.5, 0.95, 0.99))
    selfq = group_quantiles(codes, self_ms, (0.5, 0.95))
    tindex = s["trace_index"].to_numpy(dtype=np.int64)
    pair = codes * (int(tindex.max()) + 1) + tindex
    width = int(tindex.max()) + 1
    traces = np.bincount(pd.unique(pair) // width, minlength=g)
    cp_traces = np.bincount(pd.unique(pair[oncp]) // width, minlength=g)
    out["count"] = count
    out["traces"] = traces
    out["errors"] = errors.astype(np.int64)
    out["error_rate"] = errors / count
    out["latency_p50_ms"] = lat[:, 0]
    out["latency_p95_ms"] = lat[:, 1]
    out["latency_p99_ms"] = lat[:, 2]
    out["self_time_p50_ms"] = selfq[:, 0]
    out["self_time_p95_ms"] = selfq[:, 1]
    out["self_time_total_ms"] = np.bincount(codes, weights=self_ms, minlength=g)
    out["critical_path_ms"] = cp
    out["on_critical_path"] = np.bincount(codes, weights=oncp, minlength=g).astype(np.int64)
    out["on_critical_path_ratio"] = out["on_critical_path"] / count
    out["critical_path_traces"] = cp_traces
    if share_within:
        denom = out.groupby(list(share_within), sort=False)["critical_path_ms"].transform("sum")
    else:
        denom = pd.Series(cp.sum(), index=out.index)
    safe = np.where(denom.to_numpy() > 0, denom.to_numpy(), 1.0)
    out["critical_path_share"] = np.where(denom.to_numpy() > 0, cp / safe, 0.0)
    out = out.sort_values(
        ["critical_path_ms", "self_time_total_ms", *keys],
        ascending=[False, False, *([True] * len(keys))],
        kind="stable",
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def rank_bottlenecks(analysis: TraceAnalysis, *, top: int | None = 10) -> list[dict[str, Any]]:
    """Operations ranked by critical-path time contributed, best first, as plain dicts with
    :data:`BOTTLENECK_FIELDS` (``operation`` is the span name)."""
    agg = aggregate_operations(analysis)
    if len(agg) == 0:
        return []
    agg = agg.rename(columns={"name": "operation"})
    if top is not None:
        agg = agg.head(top)
    rows: list[dict[str, Any]] = []
    for rec in agg[list(BOTTLENECK_FIELDS)].to_dict("records"):
        rows.append({k: _plain(v) for k, v in rec.items()})
    return rows


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def bottleneck_findings(
    rows: Sequence[Mapping[str, Any]],
    *,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    min_share: float = 0.2,
    min_count: int = 5,
    namespace: str | None = None,
) -> list[Finding]:
    """``trace_bottleneck`` findings for ranked rows holding at least ``min_share`` of the
    critical-path time (severity: >= 0.5 high, >= 0.3 medium, else low)."""
    out: list[Finding] = []
    for row in rows:
        share = float(row.get("critical_path_share") or 0.0)
        if share < min_share or int(row.get("count") or 0) < min_count:
            continue
        severity = "high" if share >= 0.5 else "medium" if share >= 0.3 else "low"
        svc, op = str(row["service"]), str(row["operation"])
        out.append(
            Finding(
                kind="trace_bottleneck",
                title=f"{svc} {op} holds {share:.0%} of the critical path",
                summary=(
                    f"{op} in {svc} contributed {float(row['critical_path_ms']):.1f} ms of "
                    f"critical-path time ({share:.1%}); self time p95 "
                    f"{_fmt(row.get('self_time_p95_ms'))} ms, latency p95 "
                    f"{_fmt(row.get('latency_p95_ms'))} ms over {int(row['count'])} spans."
                ),
                severity=severity,
                score=share,
                service=svc,
                subject=op,
                operation=op,
                window_start=window_start,
                window_end=window_end,
                evidence=dict(row),
                namespace=namespace,
            )
        )
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.1f}"


# -- regressions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceRegression:
    """Comparison of one operation between a baseline and a current window.

    ``score`` is the smallest Benjamini-Hochberg adjusted one-sided Mann-Whitney U p-value of
    the tests that support a regression; ``direction="below"``: the operation regressed when
    the score is below ``threshold`` and the effect is large enough. ``reasons``: ``latency``
    (the span and its own self time got slower), ``critical_path_share`` (it holds more of the
    critical path); ``downstream`` marks a latency rise explained by slower children (not a
    regression of this operation: the children carry the finding)."""

    service: str
    operation: str
    baseline_count: int
    current_count: int
    baseline_p95_ms: float
    current_p95_ms: float
    p95_ratio: float
    self_p95_ratio: float
    baseline_share: float
    current_share: float
    share_change: float
    p_value_latency: float
    p_value_self: float
    p_value_share: float
    score: float
    threshold: float
    direction: str = "below"
    regressed: bool = False
    downstream: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (many operations are tested at once)."""
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _trace_fractions(analysis: TraceAnalysis) -> pd.DataFrame:
    """Per (service, name, trace): the share of the trace's critical path the operation held."""
    s, t = analysis.spans, analysis.traces
    per = (
        s.groupby([*OPERATION_KEYS, "trace_index"], sort=False)["critical_path_ms"]
        .sum()
        .reset_index()
    )
    total = per["trace_index"].map(t.set_index("trace_index")["duration_ms"]).to_numpy()
    safe = np.where(total > 0, total, 1.0)
    per["fraction"] = np.where(total > 0, per["critical_path_ms"].to_numpy() / safe, 0.0)
    return per


def _mwu_greater(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0  # identical samples: no evidence either way
    return float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)


def compare_operations(
    baseline: TraceAnalysis,
    current: TraceAnalysis,
    *,
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_share_change: float = 0.05,
    min_count: int = 20,
    epsilon_ms: float = 1e-3,
) -> list[TraceRegression]:
    """Compare each (service, operation) seen at least ``min_count`` times in both windows.

    Three one-sided Mann-Whitney U tests (current > baseline): span durations, self times, and
    the per-trace fraction of critical time the operation held. p-values are BH-adjusted over
    all tests. Latency regressed when durations and self times both rose significantly with a
    p95 ratio >= ``min_ratio`` (``epsilon_ms`` keeps a zero baseline finite); when only the
    duration rose the operation merely waits on slower children (``downstream``). Critical-path
    share regressed when its test is significant and the window share grew by at least
    ``min_share_change``. Rows are sorted: regressions first, most significant first."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    keys = list(OPERATION_KEYS)
    a = aggregate_operations(baseline).set_index(keys)
    b = aggregate_operations(current).set_index(keys)
    common = [
        key for key in b.index
        if key in a.index and a.at[key, "count"] >= min_count and b.at[key, "count"] >= min_count
    ]
    if not common:
        return []
    da = dict(tuple(baseline.spans.groupby(keys, sort=False)[["duration_ms", "self_time_ms"]]))
    db = dict(tuple(current.spans.groupby(keys, sort=False)[["duration_ms", "self_time_ms"]]))
    fa = dict(tuple(_trace_fractions(baseline).groupby(keys, sort=False)["fraction"]))
    fb = dict(tuple(_trace_fractions(current).groupby(keys, sort=False)["fraction"]))
    m = len(common)
    p = np.ones((3, m))
    self_ratio = np.ones(m)
    for i, key in enumerate(common):
        x, y = db[key], da[key]
        p[0, i] = _mwu_greater(x["duration_ms"].to_numpy(), y["duration_ms"].to_numpy())
        p[1, i] = _mwu_greater(x["self_time_ms"].to_numpy(), y["self_time_ms"].to_numpy())
        p[2, i] = _mwu_greater(fb[key].to_numpy(), fa[key].to_numpy())
        self_ratio[i] = (np.percentile(x["self_time_ms"], 95) + epsilon_ms) / (
            np.percentile(y["self_time_ms"], 95) + epsilon_ms
        )
    adj = _bh(p.ravel()).reshape(3, m)
    out: list[TraceRegression] = []
    for i, key in enumerate(common):
        ra, rb = a.loc[key], b.loc[key]
        ratio = (float(rb["latency_p95_ms"]) + epsilon_ms) / (
            float(ra["latency_p95_ms"]) + epsilon_ms
        )
        dshare = float(rb["critical_path_share"]) - float(ra["critical_path_share"])
        slower = bool(adj[0, i] < alpha and ratio >= min_ratio)
        self_slower = bool(adj[1, i] < alpha and self_ratio[i] >= min_ratio)
        reasons: list[str] = []
        supporting: list[float] = []
        if slower and self_slower:
            reasons.append("latency")
            supporting.append(max(adj[0, i], adj[1, i]))
        if adj[2, i] < alpha and dshare >= min_share_change:
            reasons.append("critical_path_share")
            supporting.append(adj[2, i])
        out.append(
            TraceRegression(
                service=str(key[0]),
                operation=str(key[1]),
                baseline_count=int(ra["count"]),
                current_count=int(rb["count"]),
                baseline_p95_ms=float(ra["latency_p95_ms"]),
                current_p95_ms=float(rb["latency_p95_ms"]),
                p95_ratio=ratio,
                self_p95_ratio=float(self_ratio[i]),
                baseline_share=float(ra["critical_path_share"]),
                current_share=float(rb["critical_path_share"]),
                share_change=dshare,
                p_value_latency=float(adj[0, i]),
                p_value_self=float(adj[1, i]),
                p_value_share=float(adj[2, i]),
                score=float(min(supporting)) if supporting else float(adj[:, i].min()),
                threshold=alpha,
                regressed=bool(reasons),
                downstream=slower and not self_slower,
                reasons=tuple(reasons),
            )
        )
    out.sort(key=lambda r: (not r.regressed, r.score, -r.p95_ratio))
    return out


def regression_findings(
    results: Sequence[TraceRegression],
    *,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    baseline_start: datetime | str | None = None,
    baseline_end: datetime | str | None = None,
    namespace: str | None = None,
    versions: VersionSplit | None = None,
) -> list[Finding]:
    """``trace_regression`` findings for the regressed rows (severity from the p95 ratio and
    share change: >= 2x or +0.3 high, >= 1.5x or +0.15 medium, else low).

    With ``versions`` (a comparison of two versions of one service in one window, see
    :func:`compare_versions`) the subject is ``"<operation> (<baseline> -> <candidate>)"`` so
    that it never overwrites the window-against-window finding of the same operation and
    window, and the evidence names the service and both versions."""
    out: list[Finding] = []
    for r in results:
        if not r.regressed:
            continue
        if r.p95_ratio >= 2.0 or r.share_change >= 0.3:
            severity = "high"
        elif r.p95_ratio >= 1.5 or r.share_change >= 0.15:
            severity = "medium"
        else:
            severity = "low"
        evidence = {k: v for k, v in r.__dict__.items() if k not in ("service", "operation")}
        evidence["reasons"] = list(r.reasons)
        evidence["baseline_start"] = baseline_start
        evidence["baseline_end"] = baseline_end
        subject, title_extra, summary_extra = r.operation, "", ""
        if versions is not None:
            evidence.update(
                comparison="versions",
                version_service=versions.service,
                baseline_version=versions.baseline_version,
                candidate_version=versions.candidate_version,
                baseline_traces=versions.baseline_traces,
                candidate_traces=versions.candidate_traces,
                mixed_traces=versions.mixed_traces,
            )
            pair = f"{versions.baseline_version} -> {versions.candidate_version}"
            subject = f"{r.operation} ({pair})"
            title_extra = f" in {versions.service} {versions.candidate_version}"
            summary_extra = (
                f" Traces through {versions.service} {versions.candidate_version} "
                f"({versions.candidate_traces}) against {versions.baseline_version} "
                f"({versions.baseline_traces}) in the same window."
            )
        out.append(
            Finding(
                kind="trace_regression",
                title=(
                    f"{r.service} {r.operation} slowed down{title_extra}: p95 x{r.p95_ratio:.2f}"
                ),
                summary=(
                    f"p95 {r.baseline_p95_ms:.1f} -> {r.current_p95_ms:.1f} ms "
                    f"(x{r.p95_ratio:.2f}, adj. p={r.p_value_latency:.2g}); critical-path share "
                    f"{r.baseline_share:.1%} -> {r.current_share:.1%} "
                    f"(adj. p={r.p_value_share:.2g}).{summary_extra}"
                ),
                severity=severity,
                score=max(r.p95_ratio, 1.0 + r.share_change),
                confidence=1.0 - r.score,
                service=r.service,
                subject=subject,
                operation=r.operation,
                window_start=window_start,
                window_end=window_end,
                evidence=evidence,
                namespace=namespace,
            )
        )
    return out


# -- versions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionSplit:
    """Which traces of a window went through which version of ``service`` (see
    :func:`split_by_version`); the span frames hold every span of those traces."""

    service: str
    baseline_version: str
    candidate_version: str
    baseline: pd.DataFrame = field(repr=False)
    candidate: pd.DataFrame = field(repr=False)
    baseline_traces: int = 0
    candidate_traces: int = 0
    mixed_traces: int = 0


def split_by_version(
    spans: pd.DataFrame, *, service: str, baseline_version: str, candidate_version: str
) -> VersionSplit:
    """Split a window's spans by the ``version`` column of ``service``'s spans.

    Whole traces are assigned, not single spans: a trace belongs to a version when ``service``
    ran that version in it, and it keeps all its spans (other services, their versions) so
    the trees, self times and critical paths stay those of the real requests. A trace that
    went through both versions (a retry landing on the other one) cannot be attributed and is
    left out of both sides (``mixed_traces``). The input is not modified."""
    _validate(spans)
    if "version" not in spans.columns:
        raise ValueError("span frame has no 'version' column: versions cannot be compared")
    if str(baseline_version) == str(candidate_version):
        raise ValueError(f"baseline and candidate version are the same ({baseline_version!r})")
    own = spans["service"].astype(str).to_numpy() == str(service)
    if not own.any():
        raise ValueError(f"no spans of service {service!r} in the window")
    version = spans["version"].astype(object).where(spans["version"].notna(), "").astype(str)
    version = version.to_numpy()
    trace = spans["trace_id"].to_numpy(dtype=object)
    base_traces = pd.unique(trace[own & (version == str(baseline_version))])
    cand_traces = pd.unique(trace[own & (version == str(candidate_version))])
    missing = [
        v for v, t in ((baseline_version, base_traces), (candidate_version, cand_traces))
        if not len(t)
    ]
    if missing:
        seen = sorted({v for v in version[own] if v})
        raise ValueError(
            f"service {service!r} has no spans of version(s) {missing} in the window; "
            f"versions seen: {seen}"
        )
    # membership per distinct trace id, broadcast back by code (a window has many spans)
    codes, uniques = pd.factorize(pd.Series(trace))
    ids = pd.Index(uniques)
    base_u, cand_u = ids.isin(base_traces), ids.isin(cand_traces)
    mixed = int((base_u & cand_u).sum())
    in_base = (base_u & ~cand_u)[codes]
    in_cand = (cand_u & ~base_u)[codes]
    return VersionSplit(
        service=str(service),
        baseline_version=str(baseline_version),
        candidate_version=str(candidate_version),
        baseline=spans[in_base],
        candidate=spans[in_cand],
        baseline_traces=int(len(base_traces) - mixed),
        candidate_traces=int(len(cand_traces) - mixed),
        mixed_traces=mixed,
    )


def compare_versions(
    spans: pd.DataFrame,
    *,
    service: str,
    baseline_version: str,
    candidate_version: str,
    orphans: OrphanPolicy = "attach",
    alpha: float = 0.01,
    min_ratio: float = 1.2,
    min_share_change: float = 0.05,
    min_count: int = 20,
    epsilon_ms: float = 1e-3,
) -> tuple[list[TraceRegression], VersionSplit]:
    """Compare two versions of ``service`` within one window, per (service, operation): the
    traces that went through ``candidate_version`` against those through ``baseline_version``
    (:func:`split_by_version`), with the same tests and thresholds as
    :func:`compare_operations` (its ``baseline`` side is the baseline version). Returns the
    rows and the split (trace counts for the evidence)."""
    split = split_by_version(
        spans, service=service, baseline_version=baseline_version,
        candidate_version=candidate_version,
    )
    results = compare_operations(
        analyze_spans(split.baseline, orphans=orphans),
        analyze_spans(split.candidate, orphans=orphans),
        alpha=alpha, min_ratio=min_ratio, min_share_change=min_share_change,
        min_count=min_count, epsilon_ms=epsilon_ms,
    )
    return results, split
