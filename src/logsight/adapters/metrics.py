"""Opt-in resource metrics: process / host CPU, memory, network and disk I/O (psutil), and GPU
utilisation / memory through NVML (``pynvml``) when it is importable and a GPU answers.

Document (metrics stream): ``@timestamp``, ``service.name``, ``host.hostname``,
``system.cpu.pct``, ``system.memory.used_bytes``, ``system.memory.pct``, ``process.cpu.pct``,
``process.memory.rss_bytes``, ``system.network.in_bytes`` / ``out_bytes`` and
``system.disk.read_bytes`` / ``write_bytes`` (deltas since the previous sample),
``gpu.utilization_pct`` / ``gpu.memory.used_bytes`` (when present), ``event.id``. Percentages
are 0-100 (``process.cpu.pct`` can exceed 100 on several cores, as in ``top``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from logsight.ecs import Clock, EventIds, Service, format_timestamp
from logsight.shipper.guard import internal_thread

Emit = Callable[[str, Mapping[str, Any]], bool]
log = logging.getLogger("logsight.shipper.metrics")


class _Gpu:
    """NVML, if it can be loaded and finds a device; otherwise every sample is empty."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml  # optional: only where an NVIDIA driver is

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml if self._handles else None
        except Exception:  # not installed, no driver, no device: skip GPU metrics cleanly
            self._nvml = None

    @property
    def present(self) -> bool:
        return self._nvml is not None

    def sample(self) -> dict[str, float]:
        if self._nvml is None:
            return {}
        try:
            util = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            mem = [self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles]
        except Exception:
            self._nvml = None  # the device went away: stop asking
            return {}
        return {"gpu.utilization_pct": float(sum(util)) / len(util),
                "gpu.memory.used_bytes": float(sum(mem))}


class ResourceSampler:
    """Samples every ``interval`` seconds on a daemon thread and emits one metrics document.

    :meth:`sample` builds a document without emitting it (one call = one sample)."""

    def __init__(
        self,
        emit: Emit,
        service: Service,
        *,
        interval: float = 15.0,
        clock: Clock = time.time,
        ids: Callable[[], str] | None = None,
        gpu: bool = True,
    ) -> None:
        import psutil

        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._emit = emit
        self._clock = clock
        self._ids = ids or EventIds()
        self.interval = interval
        self._service = {"service.name": service.name, "host.hostname": service.hostname}
        self._psutil = psutil
        self._proc = psutil.Process()
        self._gpu = _Gpu() if gpu else None
        # prime the CPU counters (psutil's first cpu_percent call returns 0.0)
        psutil.cpu_percent(None)
        self._proc.cpu_percent(None)
        self._net = self._net_counters()
        self._disk = self._disk_counters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def gpu_present(self) -> bool:
        return self._gpu is not None and self._gpu.present

    def _net_counters(self) -> tuple[int, int] | None:
        try:
            n = self._psutil.net_io_counters()
            return int(n.bytes_recv), int(n.bytes_sent)
        except Exception:
            return None

    def _disk_counters(self) -> tuple[int, int] | None:
        try:
            d = self._psutil.disk_io_counters()
            return (int(d.read_bytes), int(d.write_bytes)) if d else None
        except Exception:
            return None

    def sample(self) -> dict[str, Any]:
        ps = self._psutil
        doc: dict[str, Any] = {"@timestamp": format_timestamp(self._clock())}
        doc.update(self._service)
        vm = ps.virtual_memory()
        doc["system.cpu.pct"] = float(ps.cpu_percent(None))
        doc["system.memory.used_bytes"] = float(vm.total - vm.available)
        doc["system.memory.pct"] = float(vm.percent)
        doc["process.cpu.pct"] = float(self._proc.cpu_percent(None))
        doc["process.memory.rss_bytes"] = float(self._proc.memory_info().rss)
        net = self._net_counters()
        if net is not None and self._net is not None:
            doc["system.network.in_bytes"] = float(max(0, net[0] - self._net[0]))
            doc["system.network.out_bytes"] = float(max(0, net[1] - self._net[1]))
        self._net = net
        disk = self._disk_counters()
        if disk is not None and self._disk is not None:
            doc["system.disk.read_bytes"] = float(max(0, disk[0] - self._disk[0]))
            doc["system.disk.write_bytes"] = float(max(0, disk[1] - self._disk[1]))
        self._disk = disk
        if self._gpu is not None:
            doc.update(self._gpu.sample())
        doc["event.id"] = self._ids()
        return doc

    def start(self) -> ResourceSampler:
        if self._thread is None:
            # logsight's own thread: what psutil / NVML log on it is not shipped as app logs
            self._thread = threading.Thread(target=internal_thread(self._run),
                                            name="logsight-metrics", daemon=True)
            self._thread.start()
            _running.add(self)
        return self

    def _after_fork(self) -> None:
        # the child has no sampling thread, and psutil.Process() still names the parent
        self._proc = self._psutil.Process()
        self._proc.cpu_percent(None)
        self._stop = threading.Event()
        self._thread = None
        self.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._emit("metrics", self.sample())
            except Exception:
                log.warning("logsight: resource sample failed", exc_info=True)

    def stop(self) -> None:
        _running.discard(self)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


_running: weakref.WeakSet[ResourceSampler] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for sampler in list(_running):
        try:
            sampler._after_fork()
        except Exception:  # a sampler must never break the forked child
            log.warning("logsight: resource sampler restart after fork failed", exc_info=True)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_restart_after_fork)
