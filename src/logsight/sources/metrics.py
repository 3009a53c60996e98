"""Read resource metrics (and the prediction counts the cost analysis joins them with) from the
cluster's streams or from NDJSON files, into frames of flattened (dotted) columns.

The cluster side reads the metrics documents with a point in time (only the fields the
analyses use) and counts predictions with one composite aggregation (window x service x model
x version), never reading the prediction events themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from logsight import names
from logsight.errors import BadRequest
from logsight.names import F
from logsight.sources.mlevents.events import flatten
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine

# samples cover the period before their timestamp: read this far past the window's end so
# the last interval of the window is there (periods longer than this lose their edge sample)
PERIOD_SLACK = timedelta(minutes=15)
METRIC_FIELDS = ("@timestamp", "service.*", "host.*", "metricset.*", "container.*",
                 "process.cpu.pct", "process.memory.rss_bytes", "gpu.count", "gpu.model",
                 "gpu.utilization_pct", "gpu.memory.*", "gpu.power.*", "labels.*",
                 "orchestrator.*", "system.cpu.*", "system.memory.*")


class MetricsSource(Protocol):
    def metrics(self, start: datetime | None, end: datetime | None, *,
                service: str | None = None) -> pd.DataFrame: ...

    def predictions(self, start: datetime | None, end: datetime | None, *, bucket: str,
                    service: str | None = None) -> pd.DataFrame: ...

    def describe(self) -> str: ...

    def latency_p95(self, service: str, start: datetime, end: datetime) -> float | None: ...


def _range(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    rng: dict[str, Any] = {}
    if start is not None:
        rng["gte"] = iso(start)
    if end is not None:
        rng["lt"] = iso(end)
    return {"range": {F.TIMESTAMP: rng}}


class ClusterMetrics:
    """The metrics and mlevents streams of ``namespace`` (None: every namespace)."""

    def __init__(self, engine: Engine, namespace: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace

    def describe(self) -> str:
        return f"{names.read_target(names.METRICS, self.namespace)} at {self.engine.url}"

    def latency_p95(self, service: str, start: datetime, end: datetime) -> float | None:
        """p95 duration (ms) of ``service``'s server spans in ``[start, end)`` (None: none)."""
        q = {"bool": {"filter": [{"term": {F.SERVICE: service}},
                                 {"term": {F.SPAN_KIND: "server"}}, _range(start, end)]}}
        resp = self.engine.search(
            names.read_target(names.TRACES, self.namespace),
            {"size": 0, "query": q, "aggs": {"p": {"percentiles": {
                "field": F.SPAN_DURATION_MS, "percents": [95]}}}},
            ignore_unavailable="true", allow_no_indices="true")
        values = resp.get("aggregations", {}).get("p", {}).get("values", {})
        value = next(iter(values.values()), None) if values else None
        return float(value) if value is not None else None

    def metrics(self, start: datetime | None, end: datetime | None, *,
                service: str | None = None) -> pd.DataFrame:
        filters: list[dict[str, Any]] = [_range(start, end + PERIOD_SLACK if end else None)]
        if service:
            filters.append({"term": {F.SERVICE: service}})
        hits = self.engine.scan(names.read_target(names.METRICS, self.namespace),
                                {"bool": {"filter": filters}}, source=list(METRIC_FIELDS))
        return pd.DataFrame([flatten(h["_source"]) for h in hits])

    def predictions(self, start: datetime | None, end: datetime | None, *, bucket: str,
                    service: str | None = None) -> pd.DataFrame:
        """Counts per (window, service, model, version): columns ``timestamp`` (the window's
        start), ``service``, ``model``, ``model_version``, ``count``."""
        filters: list[dict[str, Any]] = [{"term": {F.ML_TYPE: "prediction"}}, _range(start, end)]
        if service:
            filters.append({"term": {F.SERVICE: service}})
        seconds = int(pd.Timedelta(pd.tseries.frequencies.to_offset(bucket)).total_seconds())
        sources = [
            {"t": {"date_histogram": {"field": F.TIMESTAMP, "fixed_interval": f"{seconds}s"}}},
            {"service": {"terms": {"field": F.SERVICE, "missing_bucket": True}}},
            {"model": {"terms": {"field": F.ML_MODEL, "missing_bucket": True}}},
            {"version": {"terms": {"field": F.ML_VERSION, "missing_bucket": True}}},
        ]
        rows: list[dict[str, Any]] = []
        after: Mapping[str, Any] | None = None
        index = names.read_target(names.MLEVENTS, self.namespace)
        while True:
            comp: dict[str, Any] = {"size": 1000, "sources": sources}
            if after:
                comp["after"] = after
            resp = self.engine.search(index, {"size": 0, "query": {"bool": {"filter": filters}},
                                              "aggs": {"c": {"composite": comp}}},
                                      ignore_unavailable="true", allow_no_indices="true")
            agg = resp.get("aggregations", {}).get("c", {})
            for b in agg.get("buckets", []):
                k = b["key"]
                rows.append({"timestamp": pd.Timestamp(k["t"], unit="ms", tz="UTC"),
                             "service": k["service"] or "", "model": k["model"] or "",
                             "model_version": k["version"] or "", "count": b["doc_count"]})
            after = agg.get("after_key")
            if not after or len(agg.get("buckets", [])) < 1000:
                break
        return pd.DataFrame(rows, columns=["timestamp", "service", "model", "model_version",
                                           "count"])


def _read_ndjson(path: Path, what: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BadRequest(what, f"{what} file not found: {path}")
    docs: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadRequest(what, f"{path}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(doc, dict):
                raise BadRequest(what, f"{path}:{n}: not a JSON object")
            docs.append(flatten(doc))
    return docs


class MetricsFiles:
    """An NDJSON file of metrics documents (the sampler's, e.g. from the NDJSON sink) and,
    optionally, one of mlevents documents for the prediction counts."""

    def __init__(self, metrics: str | Path, events: str | Path | None = None) -> None:
        self.path = Path(metrics)
        self.events = Path(events) if events else None

    def describe(self) -> str:
        return str(self.path)

    def latency_p95(self, service: str, start: datetime, end: datetime) -> float | None:
        return None  # files carry no spans: latency is lined up on the cluster only

    @staticmethod
    def _between(frame: pd.DataFrame, start: datetime | None, end: datetime | None,
                 slack: timedelta = timedelta(0)) -> pd.DataFrame:
        if frame.empty or "@timestamp" not in frame:
            return frame
        ts = pd.to_datetime(frame["@timestamp"], utc=True, format="ISO8601")
        keep = pd.Series(True, index=frame.index)
        if start is not None:
            keep &= ts >= pd.Timestamp(start)
        if end is not None:
            keep &= ts < pd.Timestamp(end + slack)
        return frame[keep]

    def metrics(self, start: datetime | None, end: datetime | None, *,
                service: str | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(_read_ndjson(self.path, "metrics"))
        if service and "service.name" in frame:
            frame = frame[frame["service.name"] == service]
        return self._between(frame, start, end, PERIOD_SLACK)

    def predictions(self, start: datetime | None, end: datetime | None, *, bucket: str,
                    service: str | None = None) -> pd.DataFrame:
        cols = ["timestamp", "service", "model", "model_version"]
        if self.events is None:
            return pd.DataFrame(columns=cols)
        frame = self._between(pd.DataFrame(_read_ndjson(self.events, "events")), start, end)
        if frame.empty or F.ML_TYPE not in frame:
            return pd.DataFrame(columns=cols)
        frame = frame[frame[F.ML_TYPE] == "prediction"]
        if service and F.SERVICE in frame:
            frame = frame[frame[F.SERVICE] == service]
        out = pd.DataFrame({"timestamp": frame["@timestamp"]})
        for col, fld in (("service", F.SERVICE), ("model", F.ML_MODEL),
                         ("model_version", F.ML_VERSION)):
            out[col] = frame[fld].fillna("").astype(str) if fld in frame else ""
        return out
