"""The one place that decides index/stream names, pipeline names and field names.

Assets, the shipper, the sources, the analyses' cluster readers and the Kibana tests all import
from here, so a rename happens once.

Streams follow Elastic's data-stream naming ``{type}-{dataset}-{namespace}``: the dataset is
always ``logsight`` and the namespace (default ``default``) lets teams - and tests - keep their
data apart while one template covers them all.
"""

from __future__ import annotations

import re

DATASET = "logsight"
DEFAULT_NAMESPACE = "default"

# Kinds of stream we write through the shipper; value = the data-stream type prefix.
LOGS = "logs"
TRACES = "traces"
METRICS = "metrics"
MLEVENTS = "mlevents"
STREAM_TYPES = (LOGS, TRACES, METRICS, MLEVENTS)

# Plain indices (not data streams: their documents are updated in place by stable id).
FINDINGS_INDEX = "logsight-findings"
DEADLETTER_INDEX = "logsight-deadletter"
ALERTS_INDEX = "logsight-alerts"
CRITICAL_PATH_INDEX = "logsight-critical-path"
PROFILES_INDEX = "logsight-profiles"
LEASES_INDEX = "logsight-leases"
META_INDEX = "logsight-meta"  # installed asset versions
DEPENDENCIES_INDEX = "logsight-dependencies"  # the service dependency map, per window
COST_INDEX = "logsight-cost"  # cost per window and allocation (logsight.jobs.cost)
PLAIN_INDICES = (
    FINDINGS_INDEX,
    DEADLETTER_INDEX,
    ALERTS_INDEX,
    CRITICAL_PATH_INDEX,
    PROFILES_INDEX,
    LEASES_INDEX,
    META_INDEX,
    DEPENDENCIES_INDEX,
    COST_INDEX,
)

_NAMESPACE_RE = re.compile(r"^[a-z0-9_][a-z0-9_.]{0,99}$")


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a valid data-stream namespace, else raise ValueError."""
    if not _NAMESPACE_RE.match(namespace):
        raise ValueError(
            f"invalid namespace {namespace!r}: use lowercase letters, digits, '_' or '.' "
            "(no '-', at most 100 characters)"
        )
    return namespace


def stream(kind: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Data stream a document of ``kind`` is written to, e.g. ``logs-logsight-default``."""
    if kind not in STREAM_TYPES:
        raise ValueError(f"unknown stream kind {kind!r}; expected one of {STREAM_TYPES}")
    return f"{kind}-{DATASET}-{check_namespace(namespace)}"


def stream_pattern(kind: str) -> str:
    """Index pattern covering every namespace of ``kind``, e.g. ``logs-logsight-*``."""
    if kind not in STREAM_TYPES:
        raise ValueError(f"unknown stream kind {kind!r}; expected one of {STREAM_TYPES}")
    return f"{kind}-{DATASET}-*"


def read_target(kind: str, namespace: str | None = None) -> str:
    """What a reader of ``kind`` searches: one namespace's stream, or (namespace None or
    empty) the pattern over every namespace."""
    return stream(kind, namespace) if namespace else stream_pattern(kind)


def pipeline(kind: str) -> str:
    """Ingest pipeline for ``kind`` (also set as the stream's default pipeline)."""
    return f"logsight-{kind}"


class F:
    """Field names (ECS where ECS has one, OTel-shaped for spans, ``ml.*`` for ML events)."""

    TIMESTAMP = "@timestamp"
    MESSAGE = "message"
    LEVEL = "log.level"
    LOGGER = "log.logger"
    SERVICE = "service.name"
    SERVICE_VERSION = "service.version"
    ENVIRONMENT = "service.environment"
    HOST = "host.hostname"
    TRACE_ID = "trace.id"
    SPAN_ID = "span.id"
    TRANSACTION_ID = "transaction.id"
    EVENT_ID = "event.id"
    EVENT_KIND = "event.kind"
    EVENT_DATASET = "event.dataset"
    EVENT_INGESTED = "event.ingested"
    EVENT_ORIGINAL = "event.original"
    ERROR_TYPE = "error.type"
    ERROR_MESSAGE = "error.message"
    ERROR_STACK = "error.stack_trace"
    TEMPLATE_ID = "logsight.template_id"

    # spans (traces stream)
    PARENT_SPAN_ID = "parent.id"
    SPAN_NAME = "span.name"
    SPAN_KIND = "span.kind"
    SPAN_START = "span.start_unix_nano"
    SPAN_END = "span.end_unix_nano"
    SPAN_DURATION_MS = "span.duration_ms"
    SPAN_STATUS = "span.status"

    # ML events
    ML_TYPE = "ml.event_type"  # prediction | feedback | kpi
    ML_MODEL = "ml.model.name"
    ML_VERSION = "ml.model.version"
    ML_REQUEST_ID = "ml.request_id"
    ML_FEATURES = "ml.features"
    ML_PREDICTION = "ml.prediction"
    ML_PREDICTION_NUMBER = "ml.prediction_value"
    ML_SCORE = "ml.score"
    ML_PROBABILITIES = "ml.probabilities"
    ML_LATENCY_MS = "ml.latency_ms"
    ML_LABEL = "ml.label"
    ML_LABEL_NUMBER = "ml.label_value"
    ML_KPI_NAME = "ml.kpi.name"
    ML_KPI_VALUE = "ml.kpi.value"
