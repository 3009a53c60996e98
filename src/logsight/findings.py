"""Findings: what an analysis concluded, in one shape for every analysis.

A finding's id is derived from what it is about (kind, service, subject, window), never from
when it was computed, so running an analysis again over the same window overwrites the finding
instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from logsight.names import FINDINGS_INDEX
from logsight.timeutil import iso, parse_iso

if TYPE_CHECKING:  # the engine seam is only needed by the write/read helpers
    from logsight.engine import Engine

SEVERITIES = ("low", "medium", "high", "critical")

# Kinds written by the analyses; the service and alerts refer to them by these names.
KINDS = (
    "log_anomaly",
    "template_drift",
    "trace_bottleneck",
    "trace_regression",
    "feature_drift",
    "prediction_drift",
    "performance_degradation",
    "version_regression",
    "kpi_change",
    "estimated_performance_drop",
    "outlier_inputs",
    "dependency_new",
    "dependency_vanished",
    "canary_verdict",
    "cost_per_prediction_increase",
    "idle_gpu",
    "overprovisioned_memory",
    "memory_leak",
    "cpu_saturation",
    "gpu_memory_pressure",
)


def _instant(ts: datetime | str | None) -> str:
    """One spelling per instant: "...+00:00", "...Z" and a datetime of the same moment must give
    the same finding id."""
    if isinstance(ts, str):
        try:
            return iso(parse_iso(ts))
        except ValueError:
            return ts
    return iso(ts) or ""


def finding_id(
    kind: str,
    service: str | None,
    subject: str | None,
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    namespace: str | None = None,
    *,
    model: str | None = None,
    model_version: str | None = None,
    operation: str | None = None,
    feature: str | None = None,
) -> str:
    """Stable id for everything that makes a finding distinct: (kind, service, subject, window)
    and, when set, namespace, model, model version, operation and feature. Two namespaces (two
    teams, two demo runs), two models of one service or two versions of one model analysing the
    same window keep their own findings instead of overwriting each other."""
    parts = [kind, service or "", subject or "", _instant(window_start), _instant(window_end)]
    if namespace:  # appended only when set, so ids of namespace-less findings stay as they were
        parts.append(namespace)
    # Tagged so that e.g. model "1.4" and model_version "1.4" cannot give the same id.
    for tag, value in (("model", model), ("model_version", model_version),
                       ("operation", operation), ("feature", feature)):
        # a field that merely repeats the subject (a trace finding's operation, a drift
        # finding's feature) adds nothing distinct, and leaving it out keeps those ids stable
        if value and value != subject:
            parts.append(f"{tag}={value}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:24]


@dataclass
class Finding:
    """One conclusion of an analysis, with the evidence a person needs to act on it."""

    kind: str
    title: str
    summary: str
    severity: str = "medium"
    score: float = 0.0
    confidence: float | None = None
    service: str | None = None
    subject: str | None = None  # operation, template id, feature, model version ... per kind
    operation: str | None = None
    feature: str | None = None
    model: str | None = None
    model_version: str | None = None
    window_start: datetime | str | None = None
    window_end: datetime | str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    sample_ids: list[str] = field(default_factory=list)
    namespace: str | None = None
    detected_at: datetime | str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def id(self) -> str:
        return finding_id(self.kind, self.service, self.subject, self.window_start,
                          self.window_end, self.namespace, model=self.model,
                          model_version=self.model_version, operation=self.operation,
                          feature=self.feature)

    def to_document(self, now: datetime | None = None) -> dict[str, Any]:
        doc = asdict(self)
        doc["window_start"] = iso(self.window_start)
        doc["window_end"] = iso(self.window_end)
        doc["detected_at"] = iso(self.detected_at or now or datetime.now(UTC))
        doc["@timestamp"] = doc["window_end"] or doc["detected_at"]
        doc["score"] = _finite(self.score)
        doc["confidence"] = _finite(self.confidence) if self.confidence is not None else None
        doc["evidence"] = _jsonable(self.evidence)
        # evidence is stored unindexed (its shape varies per kind); this text copy is searchable
        doc["evidence_text"] = json.dumps(doc["evidence"], sort_keys=True, default=str)[:8000]
        doc["id"] = self.id
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Finding:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in names})


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """Evidence may hold numpy scalars, NaN, datetimes: make it strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


def write_findings(
    engine: Engine, findings: Iterable[Finding], *, refresh: bool | str = "wait_for"
) -> int:
    """Index findings by their stable id (an update on re-run, never a duplicate)."""
    now = datetime.now(UTC)
    actions = [
        ({"index": {"_index": FINDINGS_INDEX, "_id": f.id}}, f.to_document(now)) for f in findings
    ]
    if not actions:
        return 0
    result = engine.bulk(actions, refresh=refresh)
    if result.errors:
        first = result.errors[0]
        raise RuntimeError(
            f"{len(result.errors)} finding(s) were not written: {first.error_type}: {first.reason}"
        )
    return result.ok


def read_findings(
    engine: Engine,
    *,
    kind: str | Sequence[str] | None = None,
    service: str | None = None,
    severity: str | Sequence[str] | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    size: int = 100,
    search_after: list[Any] | None = None,
    namespace: str | Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """Findings newest first; returns (documents, cursor for the next page or None).
    ``namespace`` keeps findings an analysis made of that data-stream namespace."""
    filters: list[dict[str, Any]] = []
    for name, value in (("kind", kind), ("service", service), ("severity", severity),
                        ("namespace", namespace)):
        if value:
            values = [value] if isinstance(value, str) else list(value)
            filters.append({"terms": {name: values}})
    if start or end:
        rng: dict[str, Any] = {}
        if start:
            rng["gte"] = iso(start)
        if end:
            rng["lte"] = iso(end)
        filters.append({"range": {"@timestamp": rng}})
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"filter": filters}},
        "sort": [{"@timestamp": "desc"}, {"id": "asc"}],
    }
    if search_after:
        body["search_after"] = search_after
    resp = engine.search(FINDINGS_INDEX, body, ignore_unavailable="true")
    hits = resp["hits"]["hits"]
    cursor = hits[-1]["sort"] if len(hits) == size else None
    return [h["_source"] for h in hits], cursor
