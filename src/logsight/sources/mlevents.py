"""ML events (predictions, feedback, KPIs) from the cluster or from files, and the drift /
performance jobs that run on them.

Raw rows are read with PIT + ``search_after`` (:meth:`Engine.scan`). Drift against the cluster
never reads raw rows: a reference profile comes from ``percentiles`` / ``extended_stats`` /
``cardinality`` / ``terms`` aggregations and a current window from one ``range`` aggregation
on the profile's bin edges (with a ``sum`` per bucket) plus ``terms`` for categories, so a
window of any size costs a few aggregation queries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis import drift as D
from logsight.analysis import performance as P
from logsight.analysis.outlier_scale import robust_scale
from logsight.findings import Finding, write_findings
from logsight.names import F
from logsight.sources.textfile import DecodeReport, iter_lines, read_text
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine

FEATURE_PREFIX = F.ML_FEATURES + "."
PROBA_FIELD_PREFIX = F.ML_PROBABILITIES + "."
# profile feature name -> field, for the prediction-side columns
PREDICTION_FIELDS = {"prediction_value": F.ML_PREDICTION_NUMBER, "prediction": F.ML_PREDICTION,
                     "score": F.ML_SCORE}
Window = tuple[datetime | str, datetime | str]


# -- files -----------------------------------------------------------------------------------
def read_file(path: str | Path, *, decode: DecodeReport | None = None) -> pd.DataFrame:
    """A CSV, Parquet or NDJSON file as a frame. Rows in the mlevents document shape
    (``ml.features.<name>`` keys, flat or nested) are reduced to their feature columns.
    Text lines that are not valid UTF-8 are read with U+FFFD and listed in ``decode``
    (:mod:`logsight.sources.textfile`)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"file not found: {p}")
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix == ".gz" else p.suffix.lower()
    try:
        if suffix.startswith(".csv"):
            frame = pd.read_csv(read_text(p, decode))
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        elif suffix.startswith((".ndjson", ".jsonl", ".json")):
            rows = [flatten(json.loads(line)) for _, line in iter_lines(p, decode)
                    if line.strip()]
            frame = pd.DataFrame(rows)
        else:
            raise ValueError(
                f"{p.name}: unknown file type {p.suffix!r}; use .csv, .parquet or .ndjson"
            )
    except (ValueError, OSError) as e:
        if "unknown file type" in str(e):
            raise
        raise ValueError(f"cannot read {p}: {e}") from e
    feats = [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]
    if feats:
        frame = frame[feats].rename(columns=lambda c: c[len(FEATURE_PREFIX):])
    return frame


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ``{"ml": {"features": {...}}}`` and flat dotted keys give the same dict."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# -- queries ---------------------------------------------------------------------------------
def index_for(namespace: str | None) -> str:
    return names.read_target(names.MLEVENTS, namespace)


def event_query(
    event_type: str,
    *,
    model: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Events of one type for a model, in [start, end)."""
    flt: list[dict[str, Any]] = [{"term": {F.ML_TYPE: event_type}}]
    if model is not None:
        flt.append({"term": {F.ML_MODEL: model}})
    if version is not None:
        flt.append({"term": {F.ML_VERSION: version}})
    rng: dict[str, Any] = {}
    if start is not None:
        rng["gte"] = iso(start)
    if end is not None:
        rng["lt"] = iso(end)
    if rng:
        flt.append({"range": {F.TIMESTAMP: rng}})
    return {"bool": {"filter": flt}}


def _check_window(start: datetime | str, end: datetime | str, what: str) -> None:
    s = pd.Timestamp(iso(start))
    e = pd.Timestamp(iso(end))
    if not s < e:
        raise ValueError(f"{what} window is empty: start {iso(start)} is not before end "
                         f"{iso(end)}")


# -- "no data" answers -----------------------------------------------------------------------
class NoPredictions(ValueError):
    """No prediction events match what was asked (model, version, namespace, window). A
    ValueError, so callers that treat it as bad input keep working; the CLI answers it as
    "no data" (exit 1) and its message says what exists instead."""


_SEEN_LIMIT = 20
_BACKING_PREFIX = ".ds-" + names.stream_pattern(names.MLEVENTS).rstrip("*")


def _namespace_of(index: str) -> str:
    """``.ds-mlevents-logsight-<ns>-...`` (a data stream's backing index) -> ``<ns>``;
    namespaces contain no '-', so the first '-' after the prefix ends it."""
    rest = index[len(_BACKING_PREFIX):] if index.startswith(_BACKING_PREFIX) else index
    return rest.split("-", 1)[0]


def _seen(values: Sequence[str]) -> str:
    shown = sorted(values)[:_SEEN_LIMIT]
    more = f" (+{len(values) - _SEEN_LIMIT} more)" if len(values) > _SEEN_LIMIT else ""
    return f"{shown}{more}"


def describe_missing_predictions(
    engine: Engine,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    namespace: str | None = None,
    what: str = "",
) -> str:
    """Why nothing matched, for an error message: what was searched, then what exists (the
    models, or the model's versions, seen in that namespace and window; when the model has
    no predictions there, where and when it does have some). ``what`` names the window
    (``"reference window "``). Two aggregation queries."""
    asked = f"no predictions of model {model!r}"
    if version is not None:
        asked += f" version {version!r}"
    if namespace:
        asked += f" in namespace {namespace!r}"
    asked += f" in the {what}window " if what else " "
    asked += f"[{iso(start, timespec='seconds')}, {iso(end, timespec='seconds')})"
    window_q = event_query("prediction", start=start, end=end)
    resp = _search(engine, namespace, {
        "size": 0, "query": window_q,
        "aggs": {"models": {"terms": {"field": F.ML_MODEL, "size": 1000}},
                 "model": {"filter": {"term": {F.ML_MODEL: model}},
                           "aggs": {"versions": {"terms": {"field": F.ML_VERSION,
                                                           "size": 1000}}}}},
    })
    a = resp.get("aggregations") or {}
    models = [str(b["key"]) for b in a.get("models", {}).get("buckets", [])]
    versions = [str(b["key"]) for b in a.get("model", {}).get("versions", {}).get("buckets", [])]
    where = f"namespace {namespace!r}" if namespace else "any namespace"
    if model in models:
        return f"{asked}; versions of {model!r} seen there: {_seen(versions)}"
    parts = [asked]
    parts.append(f"models seen there: {_seen(models)}" if models
                 else f"no predictions of any model in {where} in that window")
    # where and when the model does have predictions, e.g. a window given the wrong way
    elsewhere = _search(engine, None, {
        "size": 0, "query": event_query("prediction", model=model, version=version),
        "aggs": {"first": {"min": {"field": F.TIMESTAMP}},
                 "last": {"max": {"field": F.TIMESTAMP}},
                 "ns": {"terms": {"field": "_index", "size": 1000}}},
    })
    b = elsewhere.get("aggregations") or {}
    first, last = b.get("first", {}).get("value"), b.get("last", {}).get("value")
    who = f"model {model!r}" + (f" version {version!r}" if version is not None else "")
    if first is None:
        parts.append(f"{who} has no predictions in any namespace at any time")
    else:
        nss = sorted({_namespace_of(str(x["key"])) for x in b.get("ns", {}).get("buckets", [])})
        t0, t1 = (iso(pd.Timestamp(t, unit="ms", tz="UTC").to_pydatetime(), timespec="seconds")
                  for t in (first, last))
        parts.append(f"{who} has predictions from {t0} to {t1} in namespace(s) {_seen(nss)}")
    return "; ".join(parts)


def require_predictions(
    engine: Engine,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    namespace: str | None = None,
    what: str = "",
) -> int:
    """The number of predictions of ``model`` (``version``) in [start, end); raises
    :class:`NoPredictions` (message from :func:`describe_missing_predictions`) when none."""
    n = engine.count(index_for(namespace),
                     event_query("prediction", model=model, start=start, end=end,
                                 version=version))
    if n == 0:
        raise NoPredictions(describe_missing_predictions(
            engine, model=model, start=start, end=end, version=version, namespace=namespace,
            what=what))
    return n


def _frame(hits: Iterator[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([flatten(h["_source"]) for h in hits])


_COLUMN_NAMES = {
    F.TIMESTAMP: "timestamp",
    F.ML_REQUEST_ID: "request_id",
    F.ML_VERSION: "model_version",
    F.ML_MODEL: "model",
    F.ML_PREDICTION: "prediction",
    F.ML_PREDICTION_NUMBER: "prediction_value",
    F.ML_SCORE: "score",
    F.ML_LABEL: "label",
    F.ML_LABEL_NUMBER: "label_value",
    F.ML_KPI_NAME: "kpi_name",
    F.ML_KPI_VALUE: "kpi_value",
    F.SERVICE: "service",
}


def _rename(frame: pd.DataFrame) -> pd.DataFrame:
    def name(c: str) -> str:
        if c in _COLUMN_NAMES:
            return _COLUMN_NAMES[c]
        if c.startswith(FEATURE_PREFIX):
            return "feature." + c[len(FEATURE_PREFIX):]
        if c.startswith(PROBA_FIELD_PREFIX):
            return P.PROBA_PREFIX + c[len(PROBA_FIELD_PREFIX):]
        return c

    out = frame.rename(columns=name)
    if "timestamp" in out:
        out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, format="ISO8601")
    return out


def read_events(
    engine: Engine,
    event_type: str,
    *,
    model: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    version: str | None = None,
    namespace: str | None = None,
) -> pd.DataFrame:
    """Raw events as a frame: ``timestamp``, ``request_id``, ``model_version``, ``prediction``,
    ``prediction_value``, ``score``, ``proba.<class>``, ``label``, ``label_value``,
    ``kpi_name``, ``kpi_value`` and ``feature.<name>`` columns (whichever exist)."""
    q = event_query(event_type, model=model, start=start, end=end, version=version)
    return read_events_query(engine, q, namespace)


def read_feedback(
    engine: Engine,
    request_ids: Sequence[str],
    *,
    since: datetime | str | None = None,
    namespace: str | None = None,
    chunk: int = 5000,
) -> pd.DataFrame:
    """Feedback for these requests, whenever it arrived (after ``since``)."""
    found = _read_requests(engine, request_ids, event_query("feedback", start=since),
                           namespace=namespace, chunk=chunk)
    if found.empty:
        return pd.DataFrame(columns=["request_id", "timestamp", "label", "label_value"])
    return found


def _read_requests(engine: Engine, request_ids: Sequence[str], query: Mapping[str, Any], *,
                   namespace: str | None, chunk: int) -> pd.DataFrame:
    """The events of ``query`` for these request ids, ``chunk`` ids per terms query (a
    terms query has a size limit); an empty frame when there are none."""
    frames = []
    ids = list(dict.fromkeys(str(i) for i in request_ids))
    for i in range(0, len(ids), chunk):
        q = {"bool": {**query["bool"], "filter": [*query["bool"]["filter"],
                                                  {"terms": {F.ML_REQUEST_ID: ids[i:i + chunk]}}]}}
        frames.append(_frame(engine.scan(index_for(namespace), q)))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return _rename(pd.concat(frames, ignore_index=True))


def read_joined(
    engine: Engine,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    namespace: str | None = None,
) -> pd.DataFrame:
    """Predictions of [start, end) joined with their feedback (however late)."""
    preds = read_events(engine, "prediction", model=model, start=start, end=end,
                        version=version, namespace=namespace)
    if preds.empty:
        return pd.DataFrame(columns=["request_id", "timestamp", "model_version", "labelled"])
    fb = read_feedback(engine, preds["request_id"].dropna().tolist(), since=start,
                       namespace=namespace)
    return P.join_feedback(preds, fb)


# -- field discovery -------------------------------------------------------------------------
def discover_fields(
    engine: Engine, namespace: str | None = None, *, predictions: bool = True
) -> dict[str, tuple[str, str]]:
    """{profile feature name: (field, numeric|categorical)} from the stream's mapping."""
    wanted = [F.ML_FEATURES + ".*"] + (list(PREDICTION_FIELDS.values()) if predictions else [])
    resp = engine.request("GET", f"/{index_for(namespace)}/_field_caps",
                          params={"fields": ",".join(wanted), "ignore_unavailable": "true"})
    out: dict[str, tuple[str, str]] = {}
    for fld, types in (resp or {}).get("fields", {}).items():
        kinds = set(types) - {"object", "unmapped"}
        if not kinds:
            continue
        numeric = kinds <= {"double", "float", "long", "integer", "half_float", "scaled_float"}
        kind = D.NUMERIC if numeric else D.CATEGORICAL
        if fld.startswith(FEATURE_PREFIX):
            out[fld[len(FEATURE_PREFIX):]] = (fld, kind)
        else:
            for name, f in PREDICTION_FIELDS.items():
                if f == fld:
                    out[name] = (fld, kind)
    return out


# -- profiles from aggregations --------------------------------------------------------------
def _search(engine: Engine, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return engine.search(index_for(namespace), body, ignore_unavailable="true")


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


def profile_id(model: str, version: str | None, name: str) -> str:
    return hashlib.sha1(f"{model}|{version or ''}|{name}".encode()).hexdigest()[:24]


def store_profile(
    engine: Engine,
    profile: D.ReferenceProfile,
    *,
    model: str,
    version: str | None = None,
    name: str = "default",
    fields: Mapping[str, str] | None = None,
    source: str = "window",
    window: Window | None = None,
    namespace: str | None = None,
    now: datetime | None = None,
) -> str:
    """Index the profile in ``PROFILES_INDEX`` under a stable id (model, version, name)."""
    pid = profile_id(model, version, name)
    created = now or datetime.now(UTC)
    doc = {
        "@timestamp": iso(created),
        "profile_id": pid,
        "name": name,
        "kind": "drift_reference",
        "model": model,
        "model_version": version,
        "namespace": namespace,
        "source": source,
        "window_start": iso(window[0]) if window else None,
        "window_end": iso(window[1]) if window else None,
        "features": list(profile.features),
        "fields": dict(fields or {n: FEATURE_PREFIX + n for n in profile.features}),
        "profile": profile.to_document(),
    }
    engine.index(names.PROFILES_INDEX, doc, id=pid, refresh="wait_for")
    return pid


def load_profile(engine: Engine, pid: str) -> StoredProfile:
    hit = engine.get(names.PROFILES_INDEX, pid)
    if hit is None:
        raise ValueError(f"no stored profile {pid!r} in {names.PROFILES_INDEX}")
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


# -- jobs ------------------------------------------------------------------------------------
def _service_of(engine: Engine, model: str, namespace: str | None) -> str | None:
    resp = _search(engine, namespace, {"size": 1, "_source": [F.SERVICE],
                                       "query": {"term": {F.ML_MODEL: model}}})
    hits = resp["hits"]["hits"]
    if not hits:
        return None
    src = flatten(hits[0]["_source"])
    return src.get(F.SERVICE)


def run_drift(
    engine: Engine,
    *,
    model: str,
    reference: Window | D.ReferenceProfile | StoredProfile | str,
    current: Window,
    version: str | None = None,
    namespace: str | None = None,
    config: D.DriftConfig | None = None,
    outliers: bool = True,
    outlier_threshold: float = 6.0,
    write: bool = True,
) -> tuple[list[D.FeatureDrift], list[Finding]]:
    """Drift of the inputs, predictions and confidence scores of ``model`` in ``current``
    against ``reference`` (a window, a profile, a stored profile or its id), computed from
    aggregations only. Findings: ``feature_drift`` / ``prediction_drift`` (and, with
    ``outliers``, ``outlier_inputs`` from a robust-z scan of the current window's rows whose
    features leave the reference's [min, max] range: only those rows are read).
    """
    fields: Mapping[str, str]
    ref_info: dict[str, Any]
    if isinstance(reference, str):
        reference = load_profile(engine, reference)
    if isinstance(reference, StoredProfile):
        profile, fields = reference.profile, reference.fields
        ref_info = {"profile_id": reference.id, "window_start": reference.window_start,
                    "window_end": reference.window_end}
    elif isinstance(reference, D.ReferenceProfile):
        profile, fields = reference, {}
        ref_info = {"profile": "given"}
    else:
        rs, re_ = reference
        profile, fields = profile_from_cluster(engine, model=model, start=rs, end=re_,
                                               version=version, namespace=namespace,
                                               config=config)
        ref_info = {"window_start": iso(rs), "window_end": iso(re_)}
    cfg = config or D.DriftConfig(bins=profile.bins, fine_bins=profile.fine_bins)
    cs, ce = current
    summary = summarize_window(engine, profile, fields, model=model, start=cs, end=ce,
                               version=version, namespace=namespace,
                               max_categories=cfg.max_categories)
    results = D.compare_profile(profile, summary, config=cfg)
    service = _service_of(engine, model, namespace)
    findings = D.drift_findings(results, model=model, window_start=cs, window_end=ce,
                                service=service, model_version=version, namespace=namespace,
                                reference=ref_info)
    if outliers:
        findings += _outlier_scan(engine, profile, fields, model=model, start=cs, end=ce,
                                  version=version, namespace=namespace,
                                  threshold=outlier_threshold, service=service)
    if write and findings:
        write_findings(engine, findings)
    return results, findings


def profile_quantiles(fp: D.NumericProfile, qs: Sequence[float]) -> list[float]:
    """Quantiles of a profiled feature: the lower edge of the fine bin holding each one.
    ``counts[0]`` is below ``edges[0]`` and ``counts[i]`` is ``[edges[i-1], edges[i])``, so the
    bin where the cumulative share first reaches q starts at ``edges[i-1]``; for a discrete
    feature (counts, categories as numbers) every value opens its bin, and this is exact."""
    edges = np.asarray(fp.edges, dtype=float)
    cum = np.cumsum(fp.counts) / max(sum(fp.counts), 1)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q, side="left"))
        out.append(float(edges[min(max(i - 1, 0), len(edges) - 1)]))
    return out


def _outlier_scan(
    engine: Engine, profile: D.ReferenceProfile, fields: Mapping[str, str], *, model: str,
    start: datetime | str, end: datetime | str, version: str | None, namespace: str | None,
    threshold: float, service: str | None,
) -> list[Finding]:
    """The skew-aware robust z (:mod:`logsight.analysis.outlier_scale`) needs only the
    reference's min, quartiles and max, which the profile's quantile histogram gives, so the
    file and cluster checks share one rule. Only rows outside the fences are read, with a range
    query, so a clean window reads nothing."""
    should = []
    scales: dict[str, Any] = {}
    for name, fp in profile.features.items():
        if not isinstance(fp, D.NumericProfile) or name in PREDICTION_FIELDS:
            continue
        q1, med, q3 = profile_quantiles(fp, (0.25, 0.5, 0.75))
        sc = robust_scale(float(fp.min), q1, med, q3, float(fp.max), n=fp.n)
        lo, hi = sc.fences(threshold)
        scales[name] = sc
        fld = fields.get(name) or FEATURE_PREFIX + name
        should += [{"range": {fld: {"lt": lo}}}, {"range": {fld: {"gt": hi}}}]
    if not should:
        return []
    q = event_query("prediction", model=model, start=start, end=end, version=version)
    total = engine.count(index_for(namespace), q)
    q["bool"]["should"] = should
    q["bool"]["minimum_should_match"] = 1
    rows = read_events_query(engine, q, namespace)
    if rows.empty:
        return []
    by_feature: dict[str, int] = {}
    max_z: dict[str, float] = {}
    for name, sc in scales.items():
        col = "feature." + name
        if col not in rows:
            continue
        z = pd.Series(sc.z(rows[col].astype(float).to_numpy()), index=rows.index)
        if (z > threshold).any():
            by_feature[name] = int((z > threshold).sum())
        max_z[name] = float(np.nanmax(z)) if z.notna().any() else 0.0
    rep = D.OutlierReport(n_rows=total, n_outliers=len(rows), threshold=threshold,
                          by_feature=by_feature, max_z=max_z, row_index=[],
                          scale={n: sc.scale for n, sc in scales.items()})
    ids = rows["request_id"].dropna().astype(str).tolist() if "request_id" in rows else []
    return D.outlier_findings(rep, model=model, window_start=start, window_end=end,
                              service=service, namespace=namespace, sample_ids=ids)


def run_drift_raw(
    engine: Engine,
    *,
    model: str,
    reference: Window,
    current: Window,
    version: str | None = None,
    namespace: str | None = None,
    config: D.DriftConfig | None = None,
) -> list[D.FeatureDrift]:
    """The same comparison from raw rows (exact statistics; for small windows and tests)."""
    fields = discover_fields(engine, namespace)
    frames = []
    for rs, re_ in (reference, current):
        raw = read_events(engine, "prediction", model=model, start=rs, end=re_,
                          version=version, namespace=namespace)
        cols = {}
        for name, (fld, _) in fields.items():
            col = _COLUMN_NAMES.get(fld, "feature." + name)
            if col in raw:
                cols[name] = raw[col]
        frames.append(pd.DataFrame(cols))
    ref, cur = frames
    kinds = {n: k for n, (_, k) in fields.items()}
    shared = [c for c in ref if c in cur and ref[c].notna().any()]
    kinds = {c: (D.feature_kind(ref[c].astype(float), categorical_max_unique=(
        config or D.DriftConfig()).categorical_max_unique) if kinds[c] == D.NUMERIC
        else D.CATEGORICAL) for c in shared}
    return D.compare(ref, cur, columns=shared, config=config, kinds=kinds)


def run_performance(
    engine: Engine,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    version: str | None = None,
    reference: Window | None = None,
    namespace: str | None = None,
    task: P.Task | None = None,
    baseline_version: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.02,
    min_labels: int = 30,
    random_state: int | None = 0,
    kpi_lower_is_better: Sequence[str] = (),
    min_kpi_events: int = 30,
    write: bool = True,
) -> tuple[P.PerformanceReport, list[Finding]]:
    """Metrics of ``model``'s predictions in [start, end) joined with their feedback (however
    late it arrived), per version, with degradation against ``reference`` and regression
    between versions; KPI events of the window are summarised per version. Re-run it when
    late labels arrive (see :func:`windows_with_late_labels`): findings keep their ids.
    KPIs: bootstrap interval per version (``random_state``), ``kpi_change`` findings for a
    version whose interval lies below the baseline version's (above, for the KPI names in
    ``kpi_lower_is_better``; only versions with ``min_kpi_events`` KPI events, never events
    without a version), Spearman correlation of hourly accuracy and KPI means."""
    _check_window(start, end, "performance")
    joined = read_joined(engine, model=model, start=start, end=end, version=version,
                         namespace=namespace)
    ref = None
    if reference is not None:
        ref = read_joined(engine, model=model, start=reference[0], end=reference[1],
                          version=version, namespace=namespace)
    if baseline_version is not None and baseline_version != version:
        # asked for by name: a version without predictions is an answer, not a fallback
        try:
            require_predictions(engine, model=model, start=start, end=end,
                                version=baseline_version, namespace=namespace)
        except NoPredictions as e:
            raise NoPredictions(f"baseline version {baseline_version!r}: {e}") from None
    task = task or guess_task(joined if len(joined) else ref)
    kpis = read_events(engine, "kpi", model=model, start=start, end=end, version=version,
                       namespace=namespace)
    report = P.performance_report(
        joined, model=model, window_start=start, window_end=end, reference=ref,
        kpis=kpis if "kpi_name" in kpis else None, task=task,
        baseline_version=baseline_version, alpha=alpha, min_effect=min_effect,
        min_labels=min_labels, random_state=random_state,
        kpi_lower_is_better=kpi_lower_is_better, min_kpi_events=min_kpi_events,
    )
    if reference is not None and (ref is None or not len(ref)):
        report.notes.append(
            f"no predictions of model {model!r} in the reference window "
            f"[{iso(reference[0], timespec='seconds')}, {iso(reference[1], timespec='seconds')})"
            ": no degradation check")
    findings = P.performance_findings(report, service=_service_of(engine, model, namespace),
                                      namespace=namespace)
    if write and findings:
        write_findings(engine, findings)
    return report, findings


def guess_task(joined: pd.DataFrame | None, *, max_classes: int = 20) -> P.Task:
    """Regression when labels and predictions are numeric with many distinct or fractional
    values; classification otherwise (a 0/1 label is a class)."""
    if joined is None or joined.empty or "labelled" not in joined:
        return "classification"
    lab = joined[joined["labelled"]]
    if "label_value" in lab and "prediction_value" in lab and len(lab):
        lv = lab["label_value"]
        if lv.notna().all() and lab["prediction_value"].notna().all():
            vals = lv.astype(float)
            if vals.nunique() > max_classes or not np.all(np.mod(vals, 1) == 0):
                return "regression"
    return "classification"


def windows_with_late_labels(
    engine: Engine,
    *,
    model: str,
    since: datetime | str,
    window: str = "1h",
    namespace: str | None = None,
) -> list[Window]:
    """Windows (aligned to ``window``) whose predictions got feedback after ``since``: the
    ones to recompute with :func:`run_performance`."""
    fb = read_events(engine, "feedback", start=since, namespace=namespace)
    if fb.empty or "request_id" not in fb:
        return []
    preds = _read_requests(engine, fb["request_id"].dropna().tolist(),
                           event_query("prediction", model=model), namespace=namespace,
                           chunk=5000)
    if preds.empty:
        return []
    starts = sorted({t.floor(window) for t in preds["timestamp"]})
    step = pd.Timedelta(window)
    return [(s.to_pydatetime(), (s + step).to_pydatetime()) for s in starts]


def read_events_query(engine: Engine, query: Mapping[str, Any],
                      namespace: str | None = None) -> pd.DataFrame:
    return _rename(_frame(engine.scan(index_for(namespace), query)))
