"""The container a process runs in, as cgroup v2 and the Kubernetes downward API describe it.

cgroup v2 (the unified hierarchy): ``/proc/self/cgroup`` holds one line ``0::<path>``; the
container's files are ``<mount>/<path>/`` (``/sys/fs/cgroup`` by default; with a cgroup
namespace, as in most containers, the path is ``/`` and the mount *is* the container). Read:

==================  =====================================================================
file                fields
==================  =====================================================================
``cpu.stat``        ``usage_usec``, ``nr_periods``, ``nr_throttled``, ``throttled_usec``
``cpu.max``         ``<quota> <period>`` or ``max <period>`` (no limit)
``memory.current``  bytes in use now
``memory.peak``     the high-water mark (kernel 5.19+; absent before)
``memory.max``      the limit in bytes, or ``max``
``io.stat``         one line per device: ``8:0 rbytes=.. wbytes=.. rios=.. wios=..``
==================  =====================================================================

cgroup v1 hierarchies are not read (their layout differs per controller): :func:`find_cgroup`
returns None there and the sampler says so. Paths are parameters, so tests run on fixture trees.

Kubernetes puts pod metadata into the environment only when the pod spec asks for it
(``env[].valueFrom.fieldRef``); :func:`kubernetes_metadata` reads the usual names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MOUNT = Path("/sys/fs/cgroup")
DEFAULT_PROC_CGROUP = Path("/proc/self/cgroup")

# a container runtime names the cgroup after the container id (docker-<id>.scope,
# cri-containerd-<id>.scope, crio-<id>.scope, or a bare <id> directory)
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")


@dataclass(frozen=True)
class CgroupStats:
    """One reading of a cgroup v2 directory; None where the file is absent."""

    cpu_usage_usec: int | None = None
    cpu_nr_periods: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_usec: int | None = None
    cpu_limit_cores: float | None = None  # quota / period; None: no limit
    memory_current_bytes: int | None = None
    memory_peak_bytes: int | None = None
    memory_limit_bytes: int | None = None  # None: no limit ("max")
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None


@dataclass(frozen=True)
class Cgroup:
    """A cgroup v2 directory and the container id its path names (None: not found)."""

    path: Path
    container_id: str | None = None


def find_cgroup(proc_cgroup: Path = DEFAULT_PROC_CGROUP, mount: Path = DEFAULT_MOUNT
                ) -> Cgroup | None:
    """The process's cgroup v2 directory, or None (no ``0::`` line: cgroup v1 only; or the
    directory has no ``cpu.stat``, i.e. the unified hierarchy is not mounted at ``mount``)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    rel = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if rel is None:
        return None
    path = mount / rel.lstrip("/")
    if not (path / "cpu.stat").is_file() and not (path / "memory.current").is_file():
        return None
    m = None
    for line in lines:  # the v2 path, else any controller's path, may name the container
        m = _CONTAINER_ID.search(line)
        if m:
            break
    return Cgroup(path, m.group(1) if m else None)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``cpu.stat``, ``memory.stat``) as a dict of ints."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_cpu_max(text: str) -> float | None:
    """``"200000 100000"`` -> 2.0 cores; ``"max 100000"`` -> None (no limit)."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1]) if len(parts) > 1 else 100_000
    return quota / period if period > 0 else None


def parse_io_stat(text: str) -> tuple[int, int]:
    """Bytes read and written, summed over the devices of ``io.stat``."""
    read = write = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes" and value.isdigit():
                read += int(value)
            elif key == "wbytes" and value.isdigit():
                write += int(value)
    return read, write


def read_cgroup(path: Path) -> CgroupStats:
    """Read the cgroup v2 files in ``path`` (absent files stay None)."""
    cpu = parse_keyed(_read(path / "cpu.stat") or "")
    cpu_max = _read(path / "cpu.max")
    io = _read(path / "io.stat")
    rd, wr = parse_io_stat(io) if io is not None else (None, None)
    return CgroupStats(
        cpu_usage_usec=cpu.get("usage_usec"),
        cpu_nr_periods=cpu.get("nr_periods"),
        cpu_nr_throttled=cpu.get("nr_throttled"),
        cpu_throttled_usec=cpu.get("throttled_usec"),
        cpu_limit_cores=parse_cpu_max(cpu_max) if cpu_max else None,
        memory_current_bytes=_int(_read(path / "memory.current")),
        memory_peak_bytes=_int(_read(path / "memory.peak")),
        memory_limit_bytes=_int(_read(path / "memory.max")),
        io_read_bytes=rd,
        io_write_bytes=wr,
    )


def container_fields(now: CgroupStats, before: CgroupStats | None, elapsed_s: float
                     ) -> dict[str, Any]:
    """ECS ``container.*`` fields of one reading; rates and deltas against ``before`` (the
    previous reading, ``elapsed_s`` seconds earlier; None: the first sample has none).

    ``container.cpu.pct`` is of one core (200 = two cores busy, as ``process.cpu.pct``);
    ``container.cpu.throttled_ratio`` is the share of CFS periods in which the container was
    throttled since the previous sample (0-1)."""
    doc: dict[str, Any] = {}
    if now.cpu_limit_cores is not None:
        doc["container.cpu.limit_cores"] = now.cpu_limit_cores
    if now.memory_current_bytes is not None:
        doc["container.memory.usage_bytes"] = float(now.memory_current_bytes)
    if now.memory_peak_bytes is not None:
        doc["container.memory.peak_bytes"] = float(now.memory_peak_bytes)
    if now.memory_limit_bytes is not None:
        doc["container.memory.limit_bytes"] = float(now.memory_limit_bytes)
        if now.memory_current_bytes is not None and now.memory_limit_bytes > 0:
            doc["container.memory.pct"] = 100.0 * now.memory_current_bytes / \
                now.memory_limit_bytes
    if before is None or elapsed_s <= 0:
        return doc

    def delta(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else max(0, a - b)

    used = delta(now.cpu_usage_usec, before.cpu_usage_usec)
    if used is not None:
        doc["container.cpu.pct"] = 100.0 * used / 1e6 / elapsed_s
    periods = delta(now.cpu_nr_periods, before.cpu_nr_periods)
    throttled = delta(now.cpu_nr_throttled, before.cpu_nr_throttled)
    if periods is not None and throttled is not None:
        # a counter reset (container restart) can make the deltas disagree: keep it a share
        doc["container.cpu.throttled_ratio"] = min(1.0, throttled / periods) if periods else 0.0
    t_usec = delta(now.cpu_throttled_usec, before.cpu_throttled_usec)
    if t_usec is not None:
        doc["container.cpu.throttled_ms"] = t_usec / 1000.0
    rd = delta(now.io_read_bytes, before.io_read_bytes)
    wr = delta(now.io_write_bytes, before.io_write_bytes)
    if rd is not None and wr is not None:
        doc["container.disk.read.bytes"] = float(rd)
        doc["container.disk.write.bytes"] = float(wr)
    return doc


# downward-API variable names, first match wins: the spellings of the Kubernetes docs'
# examples (MY_POD_NAME ...) and the common short ones
_K8S_ENV: dict[str, tuple[str, ...]] = {
    "orchestrator.resource.name": ("LOGSIGHT_POD_NAME", "POD_NAME", "MY_POD_NAME"),
    "orchestrator.namespace": ("LOGSIGHT_POD_NAMESPACE", "POD_NAMESPACE", "MY_POD_NAMESPACE"),
    "host.name": ("LOGSIGHT_NODE_NAME", "NODE_NAME", "MY_NODE_NAME"),
    "orchestrator.resource.id": ("LOGSIGHT_POD_UID", "POD_UID", "MY_POD_UID"),
    "container.name": ("LOGSIGHT_CONTAINER_NAME", "CONTAINER_NAME"),
    "orchestrator.cluster.name": ("LOGSIGHT_CLUSTER_NAME", "CLUSTER_NAME"),
}
# resources.requests / limits via resourceFieldRef (cores as a decimal, memory in bytes with
# divisor 1, Kubernetes' default)
_K8S_RESOURCES: dict[str, tuple[str, ...]] = {
    "container.cpu.request_cores": ("LOGSIGHT_CPU_REQUEST", "CPU_REQUEST"),
    "container.memory.request_bytes": ("LOGSIGHT_MEMORY_REQUEST", "MEMORY_REQUEST"),
}


def kubernetes_metadata(env: Mapping[str, str]) -> dict[str, Any]:
    """ECS ``orchestrator.*`` / ``host.name`` / ``container.name`` fields from the downward-API
    variables in ``env``; ``orchestrator.type`` is ``kubernetes`` when the pod name or
    ``KUBERNETES_SERVICE_HOST`` (set in every pod) is there. Empty outside Kubernetes."""
    doc: dict[str, Any] = {}
    for field, keys in _K8S_ENV.items():
        value = next((env[k] for k in keys if env.get(k)), None)
        if value:
            doc[field] = value
    for field, keys in _K8S_RESOURCES.items():
        raw = next((env[k] for k in keys if env.get(k)), None)
        if raw is None:
            continue
        try:
            doc[field] = float(raw)
        except ValueError:
            continue  # a quantity with a unit ("500m"): set divisor 1 in the pod spec
    if "orchestrator.resource.name" in doc or env.get("KUBERNETES_SERVICE_HOST"):
        doc["orchestrator.type"] = "kubernetes"
        if "orchestrator.resource.name" in doc:
            doc["orchestrator.resource.type"] = "pod"
    return doc
