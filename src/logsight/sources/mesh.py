"""Service-mesh calls from the logs streams: Envoy / Istio access logs ingested with
``logsight ingest --format envoy`` (``event.dataset: envoy.access``), as the call frame of the
dependency map (:data:`logsight.analysis.traces.dependencies.EDGE_COLUMNS`).

The caller is the peer's mTLS identity (``service.origin.name``) when the mesh logged one,
else the service whose proxy wrote the line (``service.name``); the callee is the service of
the upstream cluster (``service.target.name``). Lines without both, or calling themselves,
are no edge."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight import names
from logsight.analysis.traces.dependencies import EDGE_COLUMNS
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine

DATASET = "envoy.access"
_FIELDS = ["service.name", "service.origin.name", "service.target.name", "envoy.duration_ms",
           "http.response.status_code", "@timestamp"]


def _get(doc: dict[str, Any], dotted: str) -> Any:
    if dotted in doc:  # flat (dotted keys), as parsed
        return doc[dotted]
    node: Any = doc
    for part in dotted.split("."):  # nested, as stored
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def mesh_frame(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """The call frame of access-log documents (nested or dotted)."""
    rows = []
    for d in docs:
        origin = _get(d, "service.origin.name") or _get(d, "service.name")
        target = _get(d, "service.target.name")
        if not origin or not target or origin == target:
            continue
        code = _get(d, "http.response.status_code")
        dur = _get(d, "envoy.duration_ms")
        rows.append((str(origin), str(target), "mesh",
                     float(dur) if dur is not None else np.nan,
                     code is not None and (int(code) >= 500 or int(code) == 0)))
    return pd.DataFrame(rows, columns=list(EDGE_COLUMNS))


class ClusterMesh:
    """Mesh calls of a window from the logs streams of ``namespace`` (None: all)."""

    def __init__(self, engine: Engine, namespace: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace

    def calls(self, start: datetime, end: datetime) -> pd.DataFrame:
        index = names.read_target(names.LOGS, self.namespace)
        query = {"bool": {"filter": [
            {"term": {"event.dataset": DATASET}},
            {"range": {"@timestamp": {"gte": iso(start), "lt": iso(end)}}}]}}
        hits = self.engine.scan(index, query, source=_FIELDS)
        return mesh_frame([h.get("_source", {}) for h in hits])
