"""The cost model: prices and allocation tags, from a small YAML document.

.. code-block:: yaml

    currency: USD
    on_demand:                       # per hour
      cpu_hour: 0.04                 # one core (vCPU)
      memory_gb_hour: 0.005          # one GiB (2**30 bytes, as cloud price lists mean it)
      gpu_hour: {default: 2.50, "Tesla T4": 0.35, "A100": 3.00}
    spot:
      cpu_hour: 0.012
      memory_gb_hour: 0.0015
      gpu_hour: {A100: 1.20}
    instance_types:                  # optional: a service on one is charged per instance-hour
      m5.xlarge: {on_demand: 0.192, spot: 0.0672}
    services:
      trainer: {capacity: spot, tags: {team: research, model: churn, stage: training}}
      scorer: {tags: {team: serving, model: churn, stage: inference}}
    default: {capacity: on_demand}

A GPU model is priced by its exact name (``nvmlDeviceGetName``), else by the first key that
is contained in it (``A100`` prices ``NVIDIA A100-SXM4-40GB``), else by ``default``. A spot
price that is not given falls back to the on-demand one (and the report says so).
Tags allocate cost (``team``, ``model``, ``model_version``, ``stage`` = ``training`` |
``inference`` ...); a sample's own ``labels.*`` win over the YAML's (the app knows what it runs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from logsight.errors import BadRequest

Capacity = Literal["on_demand", "spot"]
CAPACITIES: tuple[Capacity, ...] = ("on_demand", "spot")
GIB = float(1 << 30)


class CostModelError(BadRequest):
    """The cost model document is wrong; the message names the key."""

    def __init__(self, message: str) -> None:
        super().__init__("cost_model", message)


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CostModelError(f"{where} must be a number (a price per hour), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise CostModelError(f"{where} must be a finite price >= 0, got {value!r}")
    return float(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CostModelError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Prices:
    cpu_hour: float
    memory_gb_hour: float
    gpu_hour: Mapping[str, float] = field(default_factory=dict)

    def gpu(self, model: str | None) -> float | None:
        """The hourly price of one GPU of ``model`` (None: no price for it)."""
        table = self.gpu_hour
        if model:
            if model in table:
                return table[model]
            low = model.lower()
            for key, price in table.items():
                if key != "default" and key.lower() in low:
                    return price
        return table.get("default")


@dataclass(frozen=True)
class Allocation:
    """How one service is charged and to whom."""

    capacity: Capacity = "on_demand"
    instance_type: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CostModel:
    prices: Mapping[Capacity, Prices]
    currency: str = "USD"
    instance_types: Mapping[str, Mapping[Capacity, float]] = field(default_factory=dict)
    services: Mapping[str, Allocation] = field(default_factory=dict)
    default: Allocation = Allocation()

    def allocation(self, service: str) -> Allocation:
        return self.services.get(service, self.default)

    def rates(self, capacity: Capacity) -> tuple[Prices, bool]:
        """The prices of ``capacity`` and whether they are its own (False: the on-demand
        prices stand in for missing spot prices)."""
        own = self.prices.get(capacity)
        return (own, True) if own is not None else (self.prices["on_demand"], False)

    def instance_hour(self, instance_type: str, capacity: Capacity) -> float:
        table = self.instance_types.get(instance_type)
        if table is None:
            raise CostModelError(f"instance type {instance_type!r} has no price under "
                                 f"instance_types (known: {sorted(self.instance_types)})")
        price = table.get(capacity, table.get("on_demand"))
        if price is None:
            raise CostModelError(f"instance_types.{instance_type} has no {capacity} price")
        return price

    @classmethod
    def from_mapping(cls, doc: Any) -> CostModel:
        """Validate a parsed YAML document; :class:`CostModelError` names the wrong key."""
        top = _mapping(doc, "the cost model")
        unknown = sorted(set(top) - {"currency", "on_demand", "spot", "instance_types",
                                     "services", "default"})
        if unknown:
            raise CostModelError(f"unknown key(s) {unknown}; expected currency, on_demand, "
                                 "spot, instance_types, services, default")
        if "on_demand" not in top:
            raise CostModelError("on_demand prices are required (cpu_hour, memory_gb_hour)")
        prices: dict[Capacity, Prices] = {}
        for cap in CAPACITIES:
            if cap not in top:
                continue
            p = _mapping(top[cap], cap)
            base = prices.get("on_demand")
            gpu = {str(k): _price(v, f"{cap}.gpu_hour.{k}")
                   for k, v in _mapping(p.get("gpu_hour"), f"{cap}.gpu_hour").items()}
            for key in ("cpu_hour", "memory_gb_hour"):
                if key not in p and base is None:
                    raise CostModelError(f"{cap}.{key} is required")
            prices[cap] = Prices(
                cpu_hour=_price(p["cpu_hour"], f"{cap}.cpu_hour") if "cpu_hour" in p
                else base.cpu_hour if base else 0.0,
                memory_gb_hour=_price(p["memory_gb_hour"], f"{cap}.memory_gb_hour")
                if "memory_gb_hour" in p else base.memory_gb_hour if base else 0.0,
                gpu_hour=gpu if gpu or base is None else dict(base.gpu_hour))
        instances: dict[str, dict[Capacity, float]] = {}
        for name, table in _mapping(top.get("instance_types"), "instance_types").items():
            t = _mapping(table, f"instance_types.{name}")
            instances[str(name)] = {cap: _price(t[cap], f"instance_types.{name}.{cap}")
                                    for cap in CAPACITIES if cap in t}

        def allocation(value: Any, where: str) -> Allocation:
            a = _mapping(value, where)
            cap = a.get("capacity", "on_demand")
            if cap not in CAPACITIES:
                raise CostModelError(f"{where}.capacity must be one of {CAPACITIES}, got "
                                     f"{cap!r}")
            it = a.get("instance_type")
            if it is not None and str(it) not in instances:
                raise CostModelError(f"{where}.instance_type {it!r} is not under "
                                     f"instance_types (known: {sorted(instances)})")
            tags = {str(k): str(v) for k, v in _mapping(a.get("tags"), f"{where}.tags").items()}
            return Allocation(capacity=cap, instance_type=str(it) if it else None, tags=tags)

        services = {str(k): allocation(v, f"services.{k}")
                    for k, v in _mapping(top.get("services"), "services").items()}
        return cls(prices=prices, currency=str(top.get("currency", "USD")),
                   instance_types=instances, services=services,
                   default=allocation(top.get("default"), "default"))
