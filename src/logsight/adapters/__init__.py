"""Adapters: what applications adopt. Each builds ECS documents with :mod:`logsight.ecs` and
hands them to a shipper's ``submit``; none does I/O itself."""

from logsight.adapters.ml import MlEvents
from logsight.adapters.otel import EcsSpanExporter, span_to_doc
from logsight.adapters.sinks import ndjson_sink
from logsight.adapters.stdlib import DEFAULT_EXCLUDED_LOGGERS, EcsJsonFormatter, EcsShipperHandler
from logsight.adapters.structlog import EcsProcessor, ShipperLogger, make_logger
from logsight.adapters.tracing import current_trace

__all__ = [
    "DEFAULT_EXCLUDED_LOGGERS",
    "EcsJsonFormatter",
    "EcsProcessor",
    "EcsShipperHandler",
    "EcsSpanExporter",
    "MlEvents",
    "ShipperLogger",
    "current_trace",
    "make_logger",
    "ndjson_sink",
    "span_to_doc",
]
