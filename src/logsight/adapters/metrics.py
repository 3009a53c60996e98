"""Opt-in resource metrics, one document per sample on the metrics stream.

What is measured, and of what:

* **the process** (psutil): ``process.cpu.pct`` (of one core: 200 = two cores busy, as in
  ``top``), ``process.memory.rss_bytes``, ``process.io.read_bytes`` / ``write_bytes`` (deltas,
  where the OS reports them), ``process.pid``;
* **its container** when the process runs in a cgroup v2 (:mod:`logsight.adapters.cgroup`):
  ``container.cpu.pct``, ``container.cpu.limit_cores``, ``container.cpu.throttled_ratio`` /
  ``throttled_ms``, ``container.memory.usage_bytes`` / ``peak_bytes`` / ``limit_bytes`` /
  ``pct``, ``container.disk.read.bytes`` / ``write.bytes``, ``container.id``; Kubernetes
  downward-API metadata from the environment (``orchestrator.*``, ``host.name`` = the node,
  ``container.name``, ``container.cpu.request_cores`` / ``memory.request_bytes``);
* **the GPUs** through NVML (:mod:`logsight.adapters.gpu`, extra ``logsight[gpu]``):
  ``gpu.count`` (0: no GPU), ``gpu.model``, ``gpu.utilization_pct``, ``gpu.memory.*``,
  ``gpu.power.watts``, ``gpu.devices``;
* **the host**: ``system.cpu.pct``, ``system.cpu.cores``, ``system.memory.used_bytes`` /
  ``pct``, and network and disk I/O, which psutil (and Linux, outside a network namespace of
  its own) only knows host-wide: ``system.network.in_bytes`` / ``out_bytes`` and
  ``system.disk.read_bytes`` / ``write_bytes`` (deltas), labelled ``system.network.scope`` /
  ``system.disk.scope`` = ``host`` so nobody reads them as the service's own.

Every document carries ``metricset.period`` (the interval, in ms: what a cost model charges one
sample for), ``service.name``, ``host.hostname``, ``event.id`` and the sampler's ``labels``
(allocation tags such as ``team`` / ``stage``). Percentages are 0-100.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from logsight.adapters.cgroup import (
    DEFAULT_MOUNT,
    DEFAULT_PROC_CGROUP,
    CgroupStats,
    container_fields,
    find_cgroup,
    kubernetes_metadata,
    read_cgroup,
)
from logsight.adapters.gpu import Gpus
from logsight.ecs import Clock, EventIds, Service, format_timestamp
from logsight.shipper.guard import internal_thread

Emit = Callable[[str, Mapping[str, Any]], bool]
log = logging.getLogger("logsight.shipper.metrics")


class ResourceSampler:
    """Samples every ``interval`` seconds on a daemon thread and emits one metrics document.

    :meth:`sample` builds a document without emitting it (one call = one sample). ``gpu``:
    True (NVML if it answers), False, or a :class:`~logsight.adapters.gpu.Gpus`; ``env``,
    ``proc_cgroup`` and ``cgroup_mount`` say where the container's metadata and cgroup v2
    files are (defaults: the process's own); ``labels``: allocation tags for every document.
    """

    def __init__(
        self,
        emit: Emit,
        service: Service,
        *,
        interval: float = 15.0,
        clock: Clock = time.time,
        ids: Callable[[], str] | None = None,
        gpu: bool | Gpus = True,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        proc_cgroup: Path = DEFAULT_PROC_CGROUP,
        cgroup_mount: Path = DEFAULT_MOUNT,
    ) -> None:
        import psutil

        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._emit = emit
        self._clock = clock
        self._ids = ids or EventIds()
        self.interval = interval
        self._static: dict[str, Any] = {"service.name": service.name,
                                        "host.hostname": service.hostname}
        if service.version:
            self._static["service.version"] = service.version
        self._static.update(kubernetes_metadata(os.environ if env is None else env))
        self._static["metricset.period"] = int(round(interval * 1000))
        for k, v in {**service.labels, **(labels or {})}.items():
            self._static[f"labels.{k}"] = str(v)
        self._psutil = psutil
        self._proc = psutil.Process()
        self._static["system.cpu.cores"] = int(psutil.cpu_count() or 1)
        self._gpu = gpu if isinstance(gpu, Gpus) else (Gpus() if gpu else None)
        self._cgroup = find_cgroup(proc_cgroup, cgroup_mount)
        if self._cgroup is not None and self._cgroup.container_id:
            self._static["container.id"] = self._cgroup.container_id
        self._cg_last: tuple[float, CgroupStats] | None = None
        if self._cgroup is not None:
            self._cg_last = (self._clock(), read_cgroup(self._cgroup.path))
        # prime the CPU counters (psutil's first cpu_percent call returns 0.0)
        psutil.cpu_percent(None)
        self._proc.cpu_percent(None)
        self._net = self._net_counters()
        self._disk = self._disk_counters()
        self._pio = self._proc_io()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def gpu_present(self) -> bool:
        return self._gpu is not None and self._gpu.present

    @property
    def gpu_status(self) -> str:
        """What the sampler knows of the GPUs, e.g. ``"no GPU: nvidia-ml-py is not
        installed"`` or ``"1 GPU(s): NVIDIA A100-SXM4-40GB"``."""
        return "no GPU: disabled (gpu=False)" if self._gpu is None else self._gpu.status

    @property
    def container_status(self) -> str:
        """Where the container metrics come from, or why there are none."""
        if self._cgroup is None:
            return "no container metrics: no cgroup v2 hierarchy for this process"
        return f"cgroup v2 at {self._cgroup.path}"

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

    def _proc_io(self) -> tuple[int, int] | None:
        try:  # not on macOS; needs ptrace rights on some hardened kernels
            c = self._proc.io_counters()
            return int(c.read_bytes), int(c.write_bytes)
        except Exception:
            return None

    def sample(self) -> dict[str, Any]:
        ps = self._psutil
        doc: dict[str, Any] = {"@timestamp": format_timestamp(self._clock())}
        doc.update(self._static)
        vm = ps.virtual_memory()
        doc["system.cpu.pct"] = float(ps.cpu_percent(None))
        doc["system.memory.used_bytes"] = float(vm.total - vm.available)
        doc["system.memory.pct"] = float(vm.percent)
        doc["process.pid"] = self._proc.pid
        doc["process.cpu.pct"] = float(self._proc.cpu_percent(None))
        doc["process.memory.rss_bytes"] = float(self._proc.memory_info().rss)
        pio = self._proc_io()
        if pio is not None and self._pio is not None:
            doc["process.io.read_bytes"] = float(max(0, pio[0] - self._pio[0]))
            doc["process.io.write_bytes"] = float(max(0, pio[1] - self._pio[1]))
        self._pio = pio
        net = self._net_counters()
        if net is not None and self._net is not None:
            doc["system.network.in_bytes"] = float(max(0, net[0] - self._net[0]))
            doc["system.network.out_bytes"] = float(max(0, net[1] - self._net[1]))
            doc["system.network.scope"] = "host"
        self._net = net
        disk = self._disk_counters()
        if disk is not None and self._disk is not None:
            doc["system.disk.read_bytes"] = float(max(0, disk[0] - self._disk[0]))
            doc["system.disk.write_bytes"] = float(max(0, disk[1] - self._disk[1]))
            doc["system.disk.scope"] = "host"
        self._disk = disk
        if self._cgroup is not None:
            now_t, now = self._clock(), read_cgroup(self._cgroup.path)
            before = self._cg_last
            doc.update(container_fields(now, before[1] if before else None,
                                        now_t - before[0] if before else 0.0))
            self._cg_last = (now_t, now)
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
        self._pio = self._proc_io()
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
