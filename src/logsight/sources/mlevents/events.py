"""ML events as rows: predictions, feedback and KPIs from the cluster (PIT + search_after),
joined predictions, sample files, and the words for "nothing there" (:class:`NoPredictions`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from logsight import names
from logsight.analysis import drift as D
from logsight.analysis import performance as P
from logsight.errors import BadRequest, NoData
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
        # ML event documents: the inputs, and the model's side too (the prediction, its number
        # and the score), so a shift of what the model answers is found on files as on a
        # cluster (prediction_drift), not only a shift of what it was asked
        if F.ML_TYPE in frame:
            frame = frame[frame[F.ML_TYPE].isna() | (frame[F.ML_TYPE] == "prediction")]
        outputs = {fld: name for name, fld in PREDICTION_FIELDS.items()
                   if fld in frame and frame[fld].notna().any()}
        frame = frame[feats + list(outputs)].rename(
            columns=lambda c: outputs.get(c) or c[len(FEATURE_PREFIX):])
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
class NoPredictions(NoData):
    """No prediction events match what was asked (model, version, namespace, window); the
    message says what exists instead."""


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


COLUMN_NAMES = {
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
        if c in COLUMN_NAMES:
            return COLUMN_NAMES[c]
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


# -- the sources the model jobs read -----------------------------------------------------------
def service_of(engine: Engine, model: str, namespace: str | None) -> str | None:
    """The service that logs ``model``'s events (the first one seen)."""
    resp = _search(engine, namespace, {"size": 1, "_source": [F.SERVICE],
                                       "query": {"term": {F.ML_MODEL: model}}})
    hits = resp["hits"]["hits"]
    if not hits:
        return None
    src = flatten(hits[0]["_source"])
    return src.get(F.SERVICE)


class SampleFiles:
    """Two sample files (CSV, Parquet or NDJSON, see :func:`read_file`): the reference and the
    current sample of a drift comparison without a cluster."""

    def __init__(self, reference: str | Path, current: str | Path) -> None:
        self.reference = str(reference)
        self.current = str(current)
        # lines that were not valid UTF-8 (read with U+FFFD): said, never fatal
        self.decodes = (DecodeReport(Path(self.reference)), DecodeReport(Path(self.current)))

    @property
    def notes(self) -> list[str]:
        """What the reader should tell the user about how the files were read."""
        return [d.message for d in self.decodes if d.message]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        try:
            ref = read_file(self.reference, decode=self.decodes[0])
            cur = read_file(self.current, decode=self.decodes[1])
        except ValueError as e:  # the reader's own refusals of a file
            raise BadRequest(None, str(e)) from e
        for frame, path, side in ((ref, self.reference, "reference"),
                                  (cur, self.current, "current")):
            if frame.empty:
                raise NoData(f"the {side} sample is empty: {path} has no rows",
                             parameters=(side,))
        return ref, cur


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
