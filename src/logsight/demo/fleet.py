"""A simulated fleet with known resource usage and prices, for the cost analysis (tests and
demo): a training job and an inference service with a GPU, a feature service that leaks memory.

From ``start`` (default 2026-12-01 12:00 UTC), one sample a minute (``metricset.period`` 60 s,
each covering the minute before its timestamp):

============  ========  =====================  ===============  ===========================
service       hours     CPU (request / used)   memory (alloc /  GPU
                                               used)
============  ========  =====================  ===============  ===========================
trainer       0-2       8 / 6 cores            32 / 20 GiB      1 A100, 85 % busy (spot)
scorer        0-4       2 / 0.5 cores          8 / 1.5 GiB      1 Tesla T4, 2 % busy
featurizer    0-4       1 / 0.8 cores          4 / 1 -> 3.5 GiB  none (memory grows linearly)
============  ========  =====================  ===============  ===========================

``featurizer`` is CPU-throttled (60 % of its CFS periods) in its last hour, and its server
spans (:func:`span_documents`, two a minute) slow from 100 ms to 250 ms at the same time.

``scorer`` serves model ``churn``: version ``1`` for the first two hours (1,000 predictions an
hour), version ``2`` after the deploy (500 an hour). :data:`COST_MODEL_YAML` prices it.
Everything is deterministic: no randomness, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

GIB = 1 << 30
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PERIOD_S = 60

COST_MODEL_YAML = """\
currency: USD
on_demand:
  cpu_hour: 0.04
  memory_gb_hour: 0.005
  gpu_hour: {default: 2.50, "Tesla T4": 0.35, A100: 3.00}
spot:
  cpu_hour: 0.012
  memory_gb_hour: 0.0015
  gpu_hour: {A100: 1.20}
services:
  trainer: {capacity: spot, tags: {team: research, model: churn, model_version: "2",
                                   stage: training}}
  scorer: {tags: {team: serving, stage: inference}}
  featurizer: {tags: {team: serving, stage: inference}}
default: {capacity: on_demand}
"""


def _ts(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _sample(service: str, t: datetime, host: str, **fields: Any) -> dict[str, Any]:
    return {"@timestamp": _ts(t), "service.name": service, "host.hostname": host,
            "host.name": host, "metricset.period": PERIOD_S * 1000, "event.id":
            f"{service}-{int(t.timestamp())}", **fields}


def metrics_documents(start: datetime = START) -> list[dict[str, Any]]:
    """The fleet's metrics documents (flat ECS keys, as the sampler writes them)."""
    docs: list[dict[str, Any]] = []
    step = timedelta(seconds=PERIOD_S)
    for i in range(1, 121):  # trainer: two hours
        docs.append(_sample(
            "trainer", start + i * step, "gpu-node-1",
            **{"container.cpu.pct": 600.0, "container.cpu.request_cores": 8.0,
               "container.cpu.limit_cores": 8.0, "container.memory.usage_bytes": 20.0 * GIB,
               "container.memory.request_bytes": 32.0 * GIB,
               "container.memory.limit_bytes": 32.0 * GIB, "gpu.count": 1,
               "gpu.model": "NVIDIA A100-SXM4-40GB", "gpu.utilization_pct": 85.0,
               "gpu.memory.used_bytes": 30.0 * GIB, "gpu.memory.total_bytes": 40.0 * GIB,
               "labels.stage": "training"}))
    for i in range(1, 241):  # scorer and featurizer: four hours
        t = start + i * step
        docs.append(_sample(
            "scorer", t, "node-2", **{
                "service.version": "1" if i <= 120 else "2",
                "container.cpu.pct": 50.0, "container.cpu.request_cores": 2.0,
                "container.memory.usage_bytes": 1.5 * GIB,
                "container.memory.limit_bytes": 8.0 * GIB, "gpu.count": 1,
                "gpu.model": "Tesla T4", "gpu.utilization_pct": 2.0,
                "gpu.memory.used_bytes": 0.5 * GIB, "gpu.memory.total_bytes": 16.0 * GIB}))
        docs.append(_sample(
            "featurizer", t, "node-2", **{
                "container.cpu.pct": 80.0, "container.cpu.request_cores": 1.0,
                "container.cpu.throttled_ratio": 0.6 if i > 180 else 0.0,
                "container.memory.usage_bytes": (1.0 + 2.5 * (i - 1) / 239) * GIB,
                "container.memory.limit_bytes": 4.0 * GIB, "gpu.count": 0}))
    return docs


def prediction_documents(start: datetime = START) -> list[dict[str, Any]]:
    """``scorer``'s predictions (mlevents documents): 1,000 an hour of ``churn`` 1, then 500
    an hour of ``churn`` 2, evenly spaced."""
    docs: list[dict[str, Any]] = []
    for hour in range(4):
        version, n = ("1", 1000) if hour < 2 else ("2", 500)
        for k in range(n):
            t = start + timedelta(hours=hour, seconds=k * 3600 / n)
            rid = f"churn-{version}-{hour}-{k}"
            docs.append({"@timestamp": _ts(t), "service.name": "scorer",
                         "ml.event_type": "prediction", "ml.model.name": "churn",
                         "ml.model.version": version, "ml.request_id": rid, "event.id": rid,
                         "ml.prediction_value": 0.5})
    return docs


def span_documents(start: datetime = START) -> list[dict[str, Any]]:
    """``featurizer``'s server spans: two a minute, 100 ms until hour 3, 250 ms after."""
    docs: list[dict[str, Any]] = []
    for k in range(480):
        t = start + timedelta(seconds=30 * k)
        ms = 100.0 if t < start + timedelta(hours=3) else 250.0
        ns = int(t.timestamp()) * 1_000_000_000
        sid = f"{k:016x}"
        docs.append({"@timestamp": _ts(t), "service.name": "featurizer",
                     "trace.id": f"{k:032x}", "span.id": sid, "span.name": "GET /features",
                     "span.kind": "server", "span.start_unix_nano": ns,
                     "span.end_unix_nano": ns + int(ms * 1e6), "span.duration_ms": ms,
                     "span.status": "ok", "event.id": f"span-{sid}"})
    return docs
