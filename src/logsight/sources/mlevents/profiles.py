"""Drift profiles from aggregations only: a reference window summarised by ``percentiles`` /
``terms`` aggregations, a current window by one ``range`` aggregation on the profile's edges,
and stored profiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis import drift as D
from logsight.errors import NotFound
from logsight.names import F

if TYPE_CHECKING:
    from logsight.engine import Engine
from logsight.sources.mlevents.events import (
    FEATURE_PREFIX,
    NoPredictions,
    Window,
    _check_window,
    _search,
    describe_missing_predictions,
    discover_fields,
    event_query,
)


def _aggregate(engine: Engine, namespace: str | None, query: dict[str, Any],
               aggs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(exact hit count, aggregations) of ``query``; the aggregations are {} with no hits."""
    resp = _search(engine, namespace, {"size": 0, "track_total_hits": True, "query": query,
                                       "aggs": aggs})
    return int(resp["hits"]["total"]["value"]), resp.get("aggregations") or {}


def _range_agg(field: str, edges: Sequence[float]) -> dict[str, Any]:
    ranges: list[dict[str, float]] = [{"to": float(edges[0])}]
    ranges += [{"from": float(a), "to": float(b)} for a, b in zip(edges[:-1], edges[1:],
                                                                   strict=True)]
    ranges.append({"from": float(edges[-1])})
    return {"range": {"field": field, "ranges": ranges}, "aggs": {"s": {"sum": {"field": field}}}}


def _range_counts(agg: Mapping[str, Any], n_bins: int) -> tuple[list[int], list[float]]:
    buckets = agg["buckets"]
    if len(buckets) != n_bins:
        raise RuntimeError(f"range aggregation returned {len(buckets)} buckets, "
                           f"expected {n_bins}")

    def lo(b: Mapping[str, Any]) -> float:
        return float(b.get("from", -np.inf))

    buckets = sorted(buckets, key=lo)
    return [int(b["doc_count"]) for b in buckets], [float(b["s"]["value"] or 0.0)
                                                     for b in buckets]


def _terms(agg: Mapping[str, Any]) -> dict[str, int]:
    counts = {D.category_key(b["key"]): int(b["doc_count"]) for b in agg["buckets"]}
    other = int(agg.get("sum_other_doc_count", 0))
    if other:
        counts[D.OTHER_CATEGORY] = other
    return counts


def profile_from_cluster(
    engine: Engine,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    namespace: str | None = None,
    features: Sequence[str] | None = None,
    config: D.DriftConfig | None = None,
) -> tuple[D.ReferenceProfile, dict[str, str]]:
    """A reference profile of a window from two aggregation queries (no raw rows); returns
    (profile, {feature name: field}). Quantile edges come from the engine's t-digest
    ``percentiles`` (approximate: see docs/drift.md for the tolerance this implies)."""
    config = config or D.DriftConfig()
    _check_window(start, end, "reference")
    fields = discover_fields(engine, namespace)
    if features is not None:
        unknown = [f for f in features if f not in fields]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(fields)}")
        fields = {f: fields[f] for f in features}
    q = event_query("prediction", model=model, start=start, end=end, version=version)
    percents = sorted({*(100.0 * k / config.fine_bins for k in range(config.fine_bins + 1)),
                       *(100.0 * k / config.bins for k in range(1, config.bins))})
    aggs: dict[str, Any] = {}
    names_ = list(fields)
    for i, name in enumerate(names_):
        fld, kind = fields[name]
        aggs[f"c{i}"] = {"value_count": {"field": fld}}
        if kind == D.NUMERIC:
            aggs[f"x{i}"] = {"extended_stats": {"field": fld}}
            aggs[f"u{i}"] = {"cardinality": {"field": fld}}
            aggs[f"p{i}"] = {"percentiles": {"field": fld, "percents": percents,
                                             "tdigest": {"compression": 1000}}}
        aggs[f"t{i}"] = {"terms": {"field": fld, "size": config.max_categories}}
    total, a = _aggregate(engine, namespace, q, aggs)
    if total == 0:
        raise NoPredictions(describe_missing_predictions(
            engine, model=model, start=start, end=end, version=version, namespace=namespace,
            what="reference "))
    feats: dict[str, D.NumericProfile | D.CategoricalProfile] = {}
    pending: dict[str, tuple[int, np.ndarray, np.ndarray, dict[str, Any]]] = {}
    for i, name in enumerate(names_):
        fld, kind = fields[name]
        n = int(a[f"c{i}"]["value"])
        if n == 0:
            continue  # another model's feature, or one this model no longer sends
        if kind == D.NUMERIC and int(a[f"u{i}"]["value"]) > config.categorical_max_unique:
            x = a[f"x{i}"]
            vals = a[f"p{i}"]["values"]
            pv = {float(k): float(v) for k, v in vals.items()} if isinstance(vals, dict) else {
                float(v["key"]): float(v["value"]) for v in vals}
            fine = [pv[p] for p in percents]
            psi_q = [pv[100.0 * k / config.bins] for k in range(1, config.bins)]
            edges, psi_edges = D.numeric_profile_from_quantiles(
                name, quantiles=fine, psi_quantiles=psi_q, n=n, missing=total - n,
                mean=float(x["avg"]), std=float(x["std_deviation"]), vmin=float(x["min"]),
                vmax=float(x["max"]),
            )
            pending[name] = (i, edges, psi_edges, x)
        else:
            feats[name] = D.CategoricalProfile(name=name, n=n, missing=total - n,
                                               counts=_terms(a[f"t{i}"]))
    if pending:
        aggs2 = {f"r{i}": _range_agg(fields[name][0], edges.tolist())
                 for name, (i, edges, _, _) in pending.items()}
        resp2 = _search(engine, namespace, {"size": 0, "query": q, "aggs": aggs2})
        for name, (i, edges, psi_edges, x) in pending.items():
            counts, sums = _range_counts(resp2["aggregations"][f"r{i}"], len(edges) + 1)
            n = int(sum(counts))
            feats[name] = D.NumericProfile(
                name=name, n=n, missing=total - n, mean=float(x["avg"]),
                std=float(x["std_deviation"]), min=float(x["min"]), max=float(x["max"]),
                edges=edges.tolist(), counts=counts, sums=sums, psi_edges=psi_edges.tolist(),
            )
    if "prediction_value" in feats:
        feats.pop("prediction", None)  # the same prediction twice would report twice
    ordered = {k: feats[k] for k in names_ if k in feats}
    if not ordered:
        raise ValueError(f"model {model!r} has no feature values in the reference window")
    prof = D.ReferenceProfile(features=ordered, bins=config.bins, fine_bins=config.fine_bins)
    return prof, {k: fields[k][0] for k in ordered}


def summarize_window(
    engine: Engine,
    profile: D.ReferenceProfile,
    fields: Mapping[str, str],
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    namespace: str | None = None,
    max_categories: int = 1000,
) -> D.CurrentSummary:
    """The current window as counts on the profile's edges: one aggregation query."""
    _check_window(start, end, "current")
    q = event_query("prediction", model=model, start=start, end=end, version=version)
    aggs: dict[str, Any] = {}
    names_ = list(profile.features)
    for i, name in enumerate(names_):
        fp = profile.features[name]
        fld = fields.get(name) or FEATURE_PREFIX + name
        aggs[f"c{i}"] = {"value_count": {"field": fld}}
        if isinstance(fp, D.NumericProfile):
            aggs[f"r{i}"] = _range_agg(fld, fp.edges)
            aggs[f"x{i}"] = {"stats": {"field": fld}}
        else:
            aggs[f"t{i}"] = {"terms": {"field": fld, "size": max_categories}}
    total, a = _aggregate(engine, namespace, q, aggs)
    out: D.CurrentSummary = {}
    for i, name in enumerate(names_):
        fp = profile.features[name]
        n = int(a[f"c{i}"]["value"]) if a else 0
        if isinstance(fp, D.NumericProfile):
            if a:
                counts, sums = _range_counts(a[f"r{i}"], len(fp.edges) + 1)
                x = a[f"x{i}"]
            else:
                counts, sums, x = [0] * (len(fp.edges) + 1), [0.0] * (len(fp.edges) + 1), {}
            out[name] = D.NumericSummary(
                counts=counts, sums=sums, missing=total - n,
                min=x.get("min") if n else None, max=x.get("max") if n else None,
            )
        else:
            out[name] = D.CategoricalSummary(counts=_terms(a[f"t{i}"]) if a else {},
                                             missing=total - n)
    return out


# -- stored profiles -------------------------------------------------------------------------
@dataclass
class StoredProfile:
    id: str
    model: str
    model_version: str | None
    profile: D.ReferenceProfile
    fields: dict[str, str]
    source: str
    window_start: str | None = None
    window_end: str | None = None


def load_profile(engine: Engine, pid: str) -> StoredProfile:
    hit = engine.get(names.PROFILES_INDEX, pid)
    if hit is None:
        raise NotFound("profile", pid, f"no stored profile {pid!r} in {names.PROFILES_INDEX}")
    src = hit["_source"]
    return StoredProfile(
        id=pid, model=src["model"], model_version=src.get("model_version"),
        profile=D.ReferenceProfile.from_document(src["profile"]),
        fields=dict(src.get("fields") or {}), source=src.get("source", "window"),
        window_start=src.get("window_start"), window_end=src.get("window_end"),
    )


def first_week(engine: Engine, *, model: str, version: str,
               namespace: str | None = None) -> Window:
    """[first prediction, +7 days) of a model version: a fixed reference window."""
    q = event_query("prediction", model=model, version=version)
    resp = _search(engine, namespace, {"size": 0, "query": q,
                                       "aggs": {"first": {"min": {"field": F.TIMESTAMP}}}})
    first = (resp.get("aggregations") or {}).get("first", {}).get("value")
    if first is None:
        raise ValueError(f"model {model!r} version {version!r} has no predictions")
    start = pd.Timestamp(first, unit="ms", tz="UTC").to_pydatetime()
    return start, start + pd.Timedelta(days=7).to_pytimedelta()
