"""Anomalies in resource metrics (memory leak trend, CPU saturation, GPU memory pressure):
registered pure tests over the usage rows of :func:`logsight.analysis.cost.usage_frame`."""

from logsight.analysis.resources.anomalies import (
    RESOURCE_TESTS,
    ResourceTest,
    register,
    resource_findings,
    run_tests,
)

__all__ = ["RESOURCE_TESTS", "ResourceTest", "register", "resource_findings", "run_tests"]
