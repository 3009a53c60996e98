"""The seam between logsight and a search cluster.

Only this package imports ``elasticsearch`` or ``opensearchpy``. Everything above it talks to an
:class:`Engine`, which speaks the REST API that Elasticsearch 8/9 and OpenSearch 2/3 share and
hides the few places where they differ (point in time, lifecycle policies, alerting).
"""

from logsight.engine.client import (
    BulkItemError,
    BulkResult,
    Engine,
    EngineAuthError,
    EngineError,
    EngineUnavailable,
    connect,
    redact_url,
    settings_from_env,
    split_credentials,
)

__all__ = [
    "BulkItemError",
    "BulkResult",
    "Engine",
    "EngineAuthError",
    "EngineError",
    "EngineUnavailable",
    "connect",
    "redact_url",
    "settings_from_env",
    "split_credentials",
]
