"""GPUs through NVML (the ``nvidia-ml-py`` package, import name ``pynvml``; the optional extra
``logsight[gpu]``): utilisation, memory and power per device.

Absent is a normal answer, not an error: without the package, without a driver or without a
device, :attr:`Gpus.present` is False, :attr:`Gpus.status` says which (``"no GPU: ..."``) and
every sample is ``{"gpu.count": 0}``, so a cost model charges no GPU-hours for the host.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any


def _name(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)  # bytes before NVML 11.5


class Gpus:
    """The NVIDIA devices of this host. ``nvml``: the NVML module (default: import
    ``pynvml``); a parameter so a host without a GPU can still run the formatting."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self.names: list[str] = []
        try:
            mod = nvml if nvml is not None else importlib.import_module("pynvml")
        except ImportError:
            self.status = "no GPU: nvidia-ml-py is not installed (pip install 'logsight[gpu]')"
            return
        try:
            mod.nvmlInit()
            count = int(mod.nvmlDeviceGetCount())
            self._handles = [mod.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.names = [_name(mod.nvmlDeviceGetName(h)) for h in self._handles]
        except Exception as e:  # NVMLError_LibraryNotFound / DriverNotLoaded / ...
            self.status = f"no GPU: NVML unavailable ({type(e).__name__}: {e})"
            return
        if not self._handles:
            self.status = "no GPU: NVML found no device"
            return
        self._nvml = mod
        self.status = f"{len(self._handles)} GPU(s): {', '.join(sorted(set(self.names)))}"

    @property
    def present(self) -> bool:
        return self._nvml is not None

    def sample(self) -> dict[str, Any]:
        """``gpu.count``, ``gpu.model``, and over the devices: mean ``gpu.utilization_pct``,
        summed ``gpu.memory.used_bytes`` / ``total_bytes`` / ``gpu.power.watts``; per device
        the same under ``gpu.devices`` (a list, kept in ``_source`` for drill-down)."""
        if self._nvml is None:
            return {"gpu.count": 0}
        nv = self._nvml
        devices: list[dict[str, Any]] = []
        try:
            for i, (h, name) in enumerate(zip(self._handles, self.names, strict=True)):
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                dev = {"index": i, "model": name,
                       "utilization_pct": float(nv.nvmlDeviceGetUtilizationRates(h).gpu),
                       "memory.used_bytes": float(mem.used),
                       "memory.total_bytes": float(mem.total)}
                with contextlib.suppress(Exception):  # not every board reports power
                    dev["power.watts"] = float(nv.nvmlDeviceGetPowerUsage(h)) / 1000.0  # mW
                devices.append(dev)
        except Exception as e:
            self._nvml = None  # the device or driver went away: stop asking
            self.status = f"no GPU: NVML stopped answering ({type(e).__name__}: {e})"
            return {"gpu.count": 0}
        doc: dict[str, Any] = {
            "gpu.count": len(devices),
            "gpu.model": devices[0]["model"],
            "gpu.utilization_pct": sum(d["utilization_pct"] for d in devices) / len(devices),
            "gpu.memory.used_bytes": sum(d["memory.used_bytes"] for d in devices),
            "gpu.memory.total_bytes": sum(d["memory.total_bytes"] for d in devices),
            "gpu.devices": devices,
        }
        watts = [d["power.watts"] for d in devices if "power.watts" in d]
        if watts:
            doc["gpu.power.watts"] = sum(watts)
        return doc
