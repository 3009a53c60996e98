"""Trace trees from span frames: repair (orphans, cycles, clock skew, negative spans), self
time, and the critical path of every trace, vectorized level by level (:func:`analyze_spans`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from logsight.analysis.traces.spans import (
    NS_PER_MS,
    OrphanPolicy,
    TraceAnalysis,
    TraceStats,
    _row_flags,
    _validate,
)


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
