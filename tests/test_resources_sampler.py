"""The resource sampler: cgroup v2 parsing on fixture trees (tests/fixtures/cgroup-v2, two
readings of one container 10 s apart), Kubernetes downward-API metadata, the GPU's clean
absence, and the metrics documents in the real engine."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import logsight
from logsight import names
from logsight.adapters.cgroup import (
    CgroupStats,
    container_fields,
    find_cgroup,
    kubernetes_metadata,
    parse_cpu_max,
    parse_io_stat,
    read_cgroup,
)
from logsight.adapters.gpu import Gpus
from logsight.adapters.metrics import ResourceSampler
from logsight.ecs import Service

FIX = Path(__file__).parent / "fixtures" / "cgroup-v2"
CID = "0123456789abcdef" * 4
REL = f"kubepods.slice/pod1/cri-containerd-{CID}.scope"


def test_find_cgroup_v2_path_and_container_id() -> None:
    cg = find_cgroup(FIX / "proc-self-cgroup", FIX / "t0")
    assert cg is not None
    assert cg.path == FIX / "t0" / REL
    assert cg.container_id == CID


def test_find_cgroup_is_none_on_v1_or_without_the_files(tmp_path: Path) -> None:
    assert find_cgroup(FIX / "proc-self-cgroup-v1", FIX / "t0") is None
    assert find_cgroup(FIX / "proc-self-cgroup", tmp_path) is None  # v2 line, no files
    assert find_cgroup(tmp_path / "missing", FIX / "t0") is None


def test_cgroup_namespace_root_is_the_mount() -> None:
    cg = find_cgroup(FIX / "proc-self-cgroup-ns", FIX / "nolimit")
    assert cg is not None and cg.path == FIX / "nolimit" and cg.container_id is None


def test_read_cgroup_fixture_values() -> None:
    st = read_cgroup(FIX / "t0" / REL)
    assert st.cpu_usage_usec == 10_000_000
    assert (st.cpu_nr_periods, st.cpu_nr_throttled, st.cpu_throttled_usec) == (100, 5, 250_000)
    assert st.cpu_limit_cores == 2.0
    assert st.memory_current_bytes == 1 << 30
    assert st.memory_peak_bytes == 1_610_612_736
    assert st.memory_limit_bytes == 4 << 30
    assert (st.io_read_bytes, st.io_write_bytes) == (1500, 2000)  # summed over devices


def test_unlimited_and_absent_files_are_none() -> None:
    st = read_cgroup(FIX / "nolimit")
    assert st.cpu_limit_cores is None and st.memory_limit_bytes is None
    assert st.memory_peak_bytes is None and st.io_read_bytes is None
    assert st.memory_current_bytes == 1 << 20
    doc = container_fields(st, None, 0.0)
    assert "container.memory.limit_bytes" not in doc and "container.memory.pct" not in doc


def test_parsers_known_values() -> None:
    assert parse_cpu_max("50000 100000") == 0.5
    assert parse_cpu_max("max 100000") is None
    assert parse_io_stat("8:0 rbytes=7 wbytes=9 rios=1\n8:16 rbytes=3 wbytes=1\n") == (10, 10)


def test_container_fields_rates_between_two_readings() -> None:
    t0, t1 = read_cgroup(FIX / "t0" / REL), read_cgroup(FIX / "t1" / REL)
    doc = container_fields(t1, t0, 10.0)
    # 15 s of CPU in 10 s of wall time = 1.5 cores = 150 %
    assert doc["container.cpu.pct"] == pytest.approx(150.0)
    assert doc["container.cpu.throttled_ratio"] == pytest.approx(50 / 100)
    assert doc["container.cpu.throttled_ms"] == pytest.approx(1000.0)
    assert doc["container.memory.usage_bytes"] == 2 << 30
    assert doc["container.memory.peak_bytes"] == 2_684_354_560
    assert doc["container.memory.pct"] == pytest.approx(50.0)
    assert doc["container.disk.read.bytes"] == 6500 - 1500
    assert doc["container.disk.write.bytes"] == 6100 - 2000
    assert "container.cpu.pct" not in container_fields(t1, None, 0.0)  # first reading


def test_kubernetes_metadata_from_downward_api_env() -> None:
    env = {"POD_NAME": "scorer-7d9f-x2", "POD_NAMESPACE": "ml", "NODE_NAME": "node-3",
           "KUBERNETES_SERVICE_HOST": "10.0.0.1", "CPU_REQUEST": "0.5",
           "MEMORY_REQUEST": "1073741824", "CONTAINER_NAME": "scorer"}
    doc = kubernetes_metadata(env)
    assert doc == {
        "orchestrator.type": "kubernetes", "orchestrator.resource.type": "pod",
        "orchestrator.resource.name": "scorer-7d9f-x2", "orchestrator.namespace": "ml",
        "host.name": "node-3", "container.name": "scorer",
        "container.cpu.request_cores": 0.5, "container.memory.request_bytes": 1 << 30,
    }
    assert kubernetes_metadata({"PATH": "/bin"}) == {}
    assert kubernetes_metadata({"CPU_REQUEST": "500m"}) == {}  # a unit: not a number


def test_sampler_reads_the_container_between_samples(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    shutil.copytree(FIX / "t0", mount)
    now = [1000.0]
    got: list[Any] = []
    sampler = ResourceSampler(lambda k, d: got.append(d) or True, Service("s"),
                              clock=lambda: now[0], interval=10, gpu=False,
                              env={"POD_NAME": "p-1", "POD_NAMESPACE": "ml"},
                              labels={"team": "search", "stage": "inference"},
                              proc_cgroup=FIX / "proc-self-cgroup", cgroup_mount=mount)
    assert sampler.container_status.startswith("cgroup v2 at")
    for f in (FIX / "t1" / REL).iterdir():
        shutil.copy(f, mount / REL / f.name)
    now[0] += 10.0
    doc = sampler.sample()
    assert doc["container.id"] == CID
    assert doc["container.cpu.pct"] == pytest.approx(150.0)
    assert doc["container.cpu.limit_cores"] == 2.0
    assert doc["container.memory.limit_bytes"] == 4 << 30
    assert doc["orchestrator.resource.name"] == "p-1"
    assert doc["labels.team"] == "search" and doc["labels.stage"] == "inference"
    assert doc["metricset.period"] == 10_000
    assert doc["system.network.scope"] == "host"
    assert doc["process.memory.rss_bytes"] > 0
    assert sampler.gpu_status == "no GPU: disabled (gpu=False)"


def test_no_container_outside_cgroup_v2(tmp_path: Path) -> None:
    sampler = ResourceSampler(lambda k, d: True, Service("s"), gpu=False, env={},
                              proc_cgroup=FIX / "proc-self-cgroup-v1", cgroup_mount=tmp_path)
    doc = sampler.sample()
    assert not any(k.startswith(("container.", "orchestrator.")) for k in doc)
    assert sampler.container_status.startswith("no container metrics")


def test_no_gpu_is_a_clean_answer() -> None:
    gpus = Gpus()  # this machine: no NVIDIA driver (or no nvidia-ml-py)
    if gpus.present:
        pytest.skip("a GPU answers on this machine")
    assert gpus.status.startswith("no GPU: ")
    assert gpus.sample() == {"gpu.count": 0}
    sampler = ResourceSampler(lambda k, d: True, Service("s"), gpu=gpus, env={})
    assert sampler.sample()["gpu.count"] == 0 and not sampler.gpu_present


class _Nvml:
    """NVML's calling convention with two boards (this machine has none): checks how devices
    are summed, averaged and converted (mW -> W); a real board's answers have these types."""

    class _Mem:
        def __init__(self, used: int, total: int) -> None:
            self.used, self.total = used, total

    class _Util:
        def __init__(self, gpu: int) -> None:
            self.gpu = gpu

    def nvmlInit(self) -> None:  # noqa: N802  # NVML's own spelling
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802  # NVML's own spelling
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802  # NVML's own spelling
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:  # noqa: N802  # NVML's own spelling
        return b"Tesla T4"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> _Mem:  # noqa: N802  # NVML's own spelling
        return self._Mem(used=(h + 1) << 30, total=16 << 30)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> _Util:  # noqa: N802  # NVML's own spelling
        return self._Util(gpu=20 + 60 * h)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802  # NVML's own spelling
        return 35_000 + 10_000 * h


def test_gpu_devices_summed_and_averaged() -> None:
    gpus = Gpus(_Nvml())
    assert gpus.present and gpus.status == "2 GPU(s): Tesla T4"
    doc = gpus.sample()
    assert doc["gpu.count"] == 2 and doc["gpu.model"] == "Tesla T4"
    assert doc["gpu.utilization_pct"] == pytest.approx(50.0)
    assert doc["gpu.memory.used_bytes"] == 3 << 30
    assert doc["gpu.memory.total_bytes"] == 32 << 30
    assert doc["gpu.power.watts"] == pytest.approx(80.0)
    assert [d["utilization_pct"] for d in doc["gpu.devices"]] == [20.0, 80.0]


@pytest.mark.engine
def test_container_metrics_land_in_the_metrics_stream(engine: Any, namespace: str,
                                                      tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    shutil.copytree(FIX / "t0", mount)
    service = "res-" + uuid.uuid4().hex[:8]
    ls = logsight.configure(service, engine.url, namespace=namespace, spool_dir=tmp_path / "sp",
                            flush_interval=0.1)
    sampler = ResourceSampler(ls.shipper.submit, Service(service), interval=10, gpu=False,
                              env={"POD_NAME": "p-1", "POD_NAMESPACE": "ml", "NODE_NAME": "n1"},
                              labels={"stage": "inference"},
                              proc_cgroup=FIX / "proc-self-cgroup", cgroup_mount=mount)
    for f in (FIX / "t1" / REL).iterdir():
        shutil.copy(f, mount / REL / f.name)
    ls.emit(names.METRICS, sampler.sample())
    assert ls.flush(30)
    index = names.stream(names.METRICS, namespace)
    engine.refresh(index)
    q = {"size": 1, "query": {"bool": {"filter": [
        {"term": {"orchestrator.resource.name": "p-1"}}, {"term": {"labels.stage": "inference"}},
        {"term": {"container.id": CID}}, {"range": {"container.memory.limit_bytes": {"gte": 1}}},
        {"term": {"system.network.scope": "host"}}]}}}
    hits = engine.search(index, q)["hits"]["hits"]
    assert len(hits) == 1
    src = hits[0]["_source"]
    assert src["host"]["name"] == "n1" and src["metricset"]["period"] == 10_000
    ls.close()


_counter = st.integers(0, 10**15)


@given(st.lists(st.tuples(_counter, _counter), max_size=8))
def test_io_stat_sums_every_device(devices: list[tuple[int, int]]) -> None:
    text = "".join(f"8:{i} rbytes={r} wbytes={w} rios=1 wios=1 dbytes=0 dios=0\n"
                   for i, (r, w) in enumerate(devices))
    assert parse_io_stat(text) == (sum(r for r, _ in devices), sum(w for _, w in devices))


@given(_counter, st.integers(0, 10**6), st.data(), st.floats(0.1, 3600))
def test_throttled_ratio_is_the_share_of_periods(periods0: int, more: int, data: st.DataObject,
                                                  elapsed: float) -> None:
    throttled0 = data.draw(st.integers(0, periods0))
    throttled_more = data.draw(st.integers(0, more))
    before = CgroupStats(cpu_usage_usec=0, cpu_nr_periods=periods0,
                         cpu_nr_throttled=throttled0)
    now = CgroupStats(cpu_usage_usec=0, cpu_nr_periods=periods0 + more,
                      cpu_nr_throttled=throttled0 + throttled_more)
    ratio = container_fields(now, before, elapsed)["container.cpu.throttled_ratio"]
    assert ratio == (throttled_more / more if more else 0.0)


@given(_counter, _counter, _counter, _counter, st.floats(0.1, 3600))
def test_rates_stay_in_range_after_a_counter_reset(a0: int, a1: int, p0: int, p1: int,
                                                   elapsed: float) -> None:
    """A restarted container starts its counters again: no negative rate, no share above 1."""
    before = CgroupStats(cpu_usage_usec=a0, cpu_nr_periods=p0, cpu_nr_throttled=p0,
                         io_read_bytes=a0, io_write_bytes=a0)
    now = CgroupStats(cpu_usage_usec=a1, cpu_nr_periods=p1, cpu_nr_throttled=p1,
                      io_read_bytes=a1, io_write_bytes=a1)
    doc = container_fields(now, before, elapsed)
    assert doc["container.cpu.pct"] >= 0 and doc["container.disk.read.bytes"] >= 0
    assert 0.0 <= doc["container.cpu.throttled_ratio"] <= 1.0
