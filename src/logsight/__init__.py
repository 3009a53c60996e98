"""logsight: log and trace analytics for ML systems on the Elasticsearch (ELK) stack.

The flow, one way:  adapters -> shipper -> engine (the seam) <- sources <- analysis -> findings
-> service / CLI / alerts.

Applications adopt it with one call::

    import logsight
    ls = logsight.configure(service_name="ranker", url="http://127.0.0.1:9200")
    log = ls.logger(__name__)            # structlog; or logging + ls.handler
    log.info("scored", user_id=42)
    logsight.log_prediction("ranker", "1.2", {"x": 1.0}, prediction=0.7)
"""

__version__ = "0.1.0"

from logsight.api import (  # noqa: E402  # after __version__, which the build reads first
    Logsight,
    configure,
    log_feedback,
    log_kpi,
    log_prediction,
)

__all__ = ["Logsight", "__version__", "configure", "log_feedback", "log_kpi", "log_prediction"]
