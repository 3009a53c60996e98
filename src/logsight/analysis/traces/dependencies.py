"""The service dependency map: who calls whom, how often, how slowly, how often failing.

Pure: a span frame (:data:`~logsight.analysis.traces.SPAN_COLUMNS`, plus an optional ``peer``
column: OTel's ``peer.service`` of client spans) and optionally mesh access-log calls in; edges
out. An edge ``source -> target`` is one of

* ``span``: a span whose parent span belongs to another service (a client span of ``source``
  and the server span of ``target`` under it, or a server span directly under a span of the
  caller); the call's latency and status are the callee's span's;
* ``peer``: a client or producer span of ``source`` naming ``peer.service`` = ``target`` that
  has no span of another service under it (the callee sends no spans: a database, a third
  party); latency and status are the client span's;
* ``mesh``: calls seen by the service mesh (Envoy / Istio access logs), given as a frame of
  ``source``, ``target``, ``duration_ms``, ``error``.

Per edge: calls, calls per second over the window, errors and error rate, p50/p95 latency.
Comparing two maps gives the edges that appeared or vanished (:func:`compare_edges`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from logsight.analysis.traces.spans import NS_PER_MS
from logsight.findings import Finding

EDGE_COLUMNS = ("source", "target", "via", "duration_ms", "error")


@dataclass(frozen=True)
class DependencyEdge:
    source: str
    target: str
    calls: int
    rate_per_s: float
    errors: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    via: str  # span | peer | mesh (several: joined with "+")


def span_calls(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per cross-service call found in ``spans`` (:data:`EDGE_COLUMNS`)."""
    if len(spans) == 0:
        return pd.DataFrame({c: [] for c in EDGE_COLUMNS})
    s = spans.drop_duplicates(["trace_id", "span_id"])
    duration = (s["end_ns"].to_numpy(np.int64) - s["start_ns"].to_numpy(np.int64)) / NS_PER_MS
    status = s["status"] if "status" in s.columns else pd.Series("unset", index=s.index)
    base = pd.DataFrame({
        "trace_id": s["trace_id"].to_numpy(), "span_id": s["span_id"].to_numpy(),
        "parent_id": s["parent_id"].to_numpy(), "service": s["service"].to_numpy(),
        "kind": (s["kind"] if "kind" in s.columns else pd.Series("internal", index=s.index))
        .to_numpy(),
        "peer": (s["peer"] if "peer" in s.columns else pd.Series("", index=s.index))
        .fillna("").to_numpy(),
        "duration_ms": np.maximum(duration, 0.0),
        "error": (status == "error").to_numpy(),
    })
    parents = base[["trace_id", "span_id", "service"]].rename(
        columns={"span_id": "parent_id", "service": "parent_service"})
    joined = base.merge(parents, on=["trace_id", "parent_id"], how="inner")
    cross = joined[joined["parent_service"] != joined["service"]]
    by_span = pd.DataFrame({
        "source": cross["parent_service"].to_numpy(), "target": cross["service"].to_numpy(),
        "via": "span", "duration_ms": cross["duration_ms"].to_numpy(),
        "error": cross["error"].to_numpy()})
    # client spans whose callee sent no span: peer.service names it
    called = set(zip(cross["trace_id"], cross["parent_id"], strict=True))
    clients = base[base["kind"].isin(["client", "producer"]) & (base["peer"] != "")
                   & (base["peer"] != base["service"])]
    if len(clients):
        keys = pd.Series(list(zip(clients["trace_id"], clients["span_id"], strict=True)),
                         index=clients.index)
        clients = clients[~keys.isin(called)]
    by_peer = pd.DataFrame({
        "source": clients["service"].to_numpy(), "target": clients["peer"].to_numpy(),
        "via": "peer", "duration_ms": clients["duration_ms"].to_numpy(),
        "error": clients["error"].to_numpy()})
    return pd.concat([by_span, by_peer], ignore_index=True)


def dependency_edges(calls: pd.DataFrame, *, window_seconds: float | None = None
                     ) -> list[DependencyEdge]:
    """Aggregate calls (:data:`EDGE_COLUMNS`) per (source, target), busiest first.
    ``window_seconds`` is the span of time the calls come from (None: rates are NaN)."""
    if len(calls) == 0:
        return []
    g = calls.groupby(["source", "target"], sort=True)
    agg = g.agg(calls=("error", "size"), errors=("error", "sum"))
    q = g["duration_ms"].quantile([0.5, 0.95]).unstack()
    via = g["via"].agg(lambda v: "+".join(sorted(set(v))))
    out: list[DependencyEdge] = []
    for (src, tgt), row in agg.iterrows():
        n = int(row["calls"])
        errors = int(row["errors"])
        rate = n / window_seconds if window_seconds and window_seconds > 0 else float("nan")
        out.append(DependencyEdge(
            source=str(src), target=str(tgt), calls=n, rate_per_s=float(rate), errors=errors,
            error_rate=errors / n, latency_p50_ms=float(q.loc[(src, tgt), 0.5]),
            latency_p95_ms=float(q.loc[(src, tgt), 0.95]), via=str(via.loc[(src, tgt)])))
    out.sort(key=lambda e: (-e.calls, e.source, e.target))
    return out


@dataclass(frozen=True)
class EdgeChange:
    change: str  # new | vanished
    edge: DependencyEdge  # the current edge (new) or the baseline one (vanished)


def compare_edges(baseline: list[DependencyEdge], current: list[DependencyEdge], *,
                  min_calls: int = 5) -> list[EdgeChange]:
    """Edges with at least ``min_calls`` calls on one side and none on the other (an edge
    seen a few times on one side only is noise, not a change of the architecture)."""
    before = {(e.source, e.target): e for e in baseline}
    now = {(e.source, e.target): e for e in current}
    changes = [EdgeChange("new", e) for k, e in now.items()
               if k not in before and e.calls >= min_calls]
    changes += [EdgeChange("vanished", e) for k, e in before.items()
                if k not in now and e.calls >= min_calls]
    return changes


def dependency_findings(changes: list[EdgeChange], *, window_start: datetime,
                        window_end: datetime, baseline_start: datetime | None = None,
                        baseline_end: datetime | None = None,
                        namespace: str | None = None) -> list[Finding]:
    """``dependency_new`` / ``dependency_vanished`` findings, one per changed edge."""
    out: list[Finding] = []
    for c in changes:
        e = c.edge
        if c.change == "new":
            title = f"new dependency: {e.source} -> {e.target}"
            summary = (f"{e.source} started calling {e.target}: {e.calls} call(s), error rate "
                       f"{e.error_rate:.1%}, p95 {e.latency_p95_ms:.1f} ms; none in the "
                       "baseline window")
            severity = "medium" if e.error_rate < 0.05 else "high"
        else:
            title = f"vanished dependency: {e.source} -> {e.target}"
            summary = (f"{e.source} no longer calls {e.target}: {e.calls} call(s) in the "
                       "baseline window, none now")
            severity = "medium"
        out.append(Finding(
            kind=f"dependency_{c.change}", title=title, summary=summary, severity=severity,
            score=float(e.calls), service=e.source, subject=f"{e.source}->{e.target}",
            operation=e.target, window_start=window_start, window_end=window_end,
            namespace=namespace,
            evidence={"edge": e.__dict__, "baseline_start": baseline_start,
                      "baseline_end": baseline_end}))
    return out
