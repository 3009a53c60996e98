"""Fault suite, application side: the cluster going away (a real engine stopped and started, a
gateway closing its port), kill -9 of the application mid-outage, a full disk under the spool,
a read-only spool.

Against the real engine. Each test asserts that every event is indexed exactly once (or
dead-lettered with a reason), that the counters add up, that the engine holds no indexing
pressure afterwards, and that the application recovers without a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultkit import (
    Gateway,
    assert_counters_add_up,
    assert_each_once,
    assert_pressure_released,
    free_port,
)
from logsight import names
from logsight.shipper import BulkTransport, Shipper

pytestmark = [pytest.mark.faults, pytest.mark.engine]
APP = Path(__file__).with_name("fault_app.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def _doc(i: int, prefix: str) -> dict[str, Any]:
    return {"@timestamp": "2024-05-01T10:00:00.000Z", "message": f"event {i}",
            "service.name": "faults", "event.id": f"{prefix}-{i}"}


class App:
    """tests/fault_app.py in its own process, step by step."""

    def __init__(self, url: str, spool: Path, prefix: str, start: int, count: int,
                 steps: list[str], fsize: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        cmd = [sys.executable, str(APP), url, str(spool), prefix, str(start), str(count),
               "--steps", *steps]
        if fsize:
            cmd += ["--fsize", str(fsize)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the app ended early: {self.stderr()}"
        return dict(json.loads(line))

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def finish(self, timeout: float = 60) -> str:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return err


def _added_up(report: dict[str, Any]) -> None:
    assert report["accounted"] == report["received"], report


@pytest.mark.timeout(240)
def test_engine_stopped_and_started_mid_stream(tmp_path: Path) -> None:
    """A real engine of the test's own (never the shared one) stops while events stream in and
    starts again: every event arrives once, the same shipper carries on."""
    from logsight.assets import install
    from logsight.engine import connect
    from logsight.local import LocalEngine

    node = LocalEngine(tmp_path / "node", port=free_port(), heap="512m")
    node.start(timeout=300)
    try:
        # the node's transport took a free loopback port of its own, and says which
        status = node.status()
        assert status.transport_port and status.transport_port != node.port + 100
        assert f"transport on 127.0.0.1:{status.transport_port}" in status.describe()
        eng = connect(node.url)
        install(eng)
        transport = BulkTransport(node.url, namespace="faults")
        shipper = Shipper(transport, spool_dir=tmp_path / "spool", flush_interval=0.05,
                          batch_size=200, backoff_initial=0.1, backoff_max=1.0,
                          stats_interval=None)
        for i in range(3_000):
            shipper.submit(names.LOGS, _doc(i, "mid"))
        while shipper.counters.sent == 0:
            time.sleep(0.01)
        node.stop()
        for i in range(3_000, 6_000):
            shipper.submit(names.LOGS, _doc(i, "mid"))
        assert not shipper.flush(10, give_up_if_down=True)
        assert shipper.counters.spool_records > 0
        node.start(timeout=300)
        assert shipper.flush(120)
        eng = connect(node.url)
        stream = names.stream(names.LOGS, "faults")
        assert assert_each_once(eng, stream, [f"mid-{i}" for i in range(6_000)]) == (6_000, 0)
        assert_counters_add_up(shipper.counters)
        assert_pressure_released(eng)
        shipper.close()
        eng.close()
    finally:
        node.stop()


@pytest.mark.timeout(120)
def test_kill_9_mid_outage_then_a_new_process_delivers_once(engine: Any, namespace: str,
                                                            tmp_path: Path) -> None:
    gateway = Gateway(engine.url)
    gateway.down()
    spool = tmp_path / "spool"
    try:
        app = App(gateway.url, spool, namespace, 0, 3_000, ["submit", "spool", "hang"])
        app.read()
        spooled = app.read()
        assert spooled["counters"]["spool_records"] == 3_000, spooled
        app.read()  # hanging: kill it mid-outage
        app.proc.kill()
        app.proc.wait(10)
        gateway.up()
        second = App(gateway.url, spool, namespace, 0, 0, ["deliver", "close"])
        delivered = second.read()
        assert delivered["delivered"], delivered
        assert delivered["counters"]["sent"] == 3_000
        assert delivered["counters"]["duplicates"] == 0
        assert delivered["counters"]["recovered"] == 3_000
        _added_up(delivered)
        second.read()
        second.finish()
        stream = names.stream(names.LOGS, namespace)
        assert assert_each_once(engine, stream, [f"{namespace}-{i}" for i in range(3_000)]) == (
            3_000, 0)
        assert_pressure_released(engine)
    finally:
        gateway.close()


@contextlib.contextmanager
def _small_disk(path: Path, size: str, *, read_only: bool = False) -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``path`` (True), or nothing (False) where the machine
    does not allow mounting."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.timeout(180)
def test_a_full_disk_degrades_to_memory_once_and_recovers(engine: Any, namespace: str,
                                                          tmp_path: Path) -> None:
    """The spool's disk fills up mid-outage (a 2 MiB tmpfs, or a file-size limit where
    mounting is not allowed): one warning, memory takes the rest, no empty segment files, the
    cursor kept; when the cluster is back everything arrives once, the spool works again in
    the next outage, and a restart re-sends nothing."""
    gateway = Gateway(engine.url)
    gateway.down()
    spool = tmp_path / "disk"
    n = 8_000  # ~2.6 MB of records: more than the disk holds
    try:
        with _small_disk(spool, "2m") as mounted:
            # without a tmpfs: a file-size limit just above one segment (256 KiB) fails the
            # spool's writes the way a full disk does (EFBIG instead of ENOSPC)
            fsize = 0 if mounted else 300 * 1024
            app = App(gateway.url, spool / "spool", namespace, 0, n,
                      ["submit", "spool", "wait", "deliver", "wait", "more", "spool", "wait",
                       "deliver", "close"], fsize=fsize)
            app.read()
            full = app.read()
            c = full["counters"]
            assert c["spool_errors"] > 0 and c["dropped"] == 0, full
            assert c["spool_records"] + c["pending_memory_records"] == n, full
            assert all(size > 0 for name, size in full["spool"].items()
                       if name.endswith(".ndjson")), full["spool"]  # no empty segments
            _added_up(full)
            gateway.up()
            app.go()
            back = app.read()
            assert back["delivered"] and back["counters"]["sent"] == n, back
            _added_up(back)
            assert not [k for k in back["spool"] if k.endswith(".ndjson")], back["spool"]
            gateway.down()  # a second outage: the spool has room again and takes it
            app.go()
            app.read()
            again = app.read()
            c2 = again["counters"]
            assert c2["spooled"] > c["spooled"], again  # the spool takes records again
            assert c2["spool_records"] + c2["pending_memory_records"] == n, again
            _added_up(again)
            gateway.up()
            app.go()
            done = app.read()
            assert done["delivered"] and done["counters"]["sent"] == 2 * n, done
            assert done["counters"]["duplicates"] == 0
            app.read()
            err = app.finish()
            # one warning per full-disk episode (two outages on a full disk here), not one
            # per batch, and one line when the spool works again
            assert 1 <= err.count("disk full") <= 2, err
            assert err.count("writable again") >= 1, err
            assert "destination unavailable" in err and "Traceback" not in err
            # a restart on the same spool re-sends nothing
            restart = App(gateway.url, spool / "spool", namespace, 0, 0, ["deliver", "close"])
            after = restart.read()
            assert after["counters"]["sent"] == 0 and after["counters"]["duplicates"] == 0
            assert after["counters"]["recovered"] == 0
            restart.read()
            restart.finish()
        stream = names.stream(names.LOGS, namespace)
        assert assert_each_once(engine, stream, [f"{namespace}-{i}" for i in range(2 * n)]) == (
            2 * n, 0)
        assert_pressure_released(engine)
    finally:
        gateway.close()


@pytest.mark.timeout(90)
def test_a_read_only_spool_falls_back_to_memory(engine: Any, namespace: str, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="logsight.shipper")
    gateway = Gateway(engine.url)
    ro = tmp_path / "ro"
    try:
        with _small_disk(ro, "1m", read_only=True) as mounted:
            if not mounted:
                ro.chmod(0o555)  # without mount rights we are not root: permissions hold
            shipper = Shipper(BulkTransport(gateway.url, namespace=namespace),
                              spool_dir=ro / "spool", flush_interval=0.05, batch_size=200,
                              backoff_initial=0.1, backoff_max=1.0, stats_interval=None)
            assert shipper.spool is None
            gateway.down()
            for i in range(2_000):
                shipper.submit(names.LOGS, _doc(i, namespace))
            assert not shipper.flush(3, give_up_if_down=True)
            c = shipper.counters
            assert c.pending_memory_records + c.queued + c.in_flight == 2_000, c
            gateway.up()
            assert shipper.flush(60)
            assert_counters_add_up(shipper.counters)
            shipper.close()
        stream = names.stream(names.LOGS, namespace)
        assert assert_each_once(engine, stream, [f"{namespace}-{i}" for i in range(2_000)]) == (
            2_000, 0)
        assert_pressure_released(engine)
    finally:
        gateway.close()
    assert caplog.text.count("no disk spool") == 1
