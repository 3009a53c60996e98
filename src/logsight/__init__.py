"""logsight: log and trace analytics for ML systems on the Elasticsearch (ELK) stack.

The flow, one way:  adapters -> shipper -> engine (the seam); faces (CLI, service, scheduler,
demo) -> jobs -> sources (cluster or file) -> analysis (pure) -> writer -> engine; alerts read
the findings.

Applications adopt it with one call::

    import logsight
    ls = logsight.configure(service_name="ranker", url="http://127.0.0.1:9200")
    log = ls.logger(__name__)            # structlog; or logging + ls.handler
    log.info("scored", user_id=42)
    logsight.log_prediction("ranker", "1.2", {"x": 1.0}, prediction=0.7)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from logsight.api import Logsight, configure, log_feedback, log_kpi, log_prediction

_API = ("Logsight", "configure", "log_feedback", "log_kpi", "log_prediction")


def __getattr__(name: str) -> Any:
    # lazy: `import logsight.names` (CLI, service, analyses) must not pay for structlog,
    # OpenTelemetry and the shipper
    if name in _API:
        from logsight import api

        return getattr(api, name)
    raise AttributeError(f"module 'logsight' has no attribute {name!r}")


__all__ = ["Logsight", "__version__", "configure", "log_feedback", "log_kpi", "log_prediction"]
