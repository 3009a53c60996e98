"""``logsight serve`` end to end: flag errors are clear usage errors, and a real server
process answers /health and /v1 with the key it was given."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from logsight import names
from logsight.cli import main
from logsight.engine import Engine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no key is configured"),
        (["--no-auth", "--interval", "soon"], "not a duration"),
        (["--no-auth", "--task-interval", "drift"], "task=5m"),
        (["--no-auth", "--namespace", "Bad-NS"], "invalid namespace"),
        (["--no-auth", "--max-window", "-1d"], "not a duration"),
    ],
)
def test_serve_flag_errors(args: list[str], message: str) -> None:
    env = {"LOGSIGHT_API_KEYS": "", "LOGSIGHT_AUTH": "on"}
    result = CliRunner().invoke(main, ["serve", *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(engine: Engine) -> Iterator[tuple[str, str]]:
    port = _free_port()
    key = "cli-key-" + uuid.uuid4().hex
    env = dict(os.environ, LOGSIGHT_URL=engine.url, LOGSIGHT_API_KEYS=key)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from logsight.cli import main; main()", "serve", "--port", str(port), "--no-scheduler",
         "--no-self-log", "--no-access-log", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"logsight serve exited {proc.returncode}: {out}")
            try:
                httpx.get(base + "/health", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.engine
def test_served_api_answers_with_its_key(server: tuple[str, str], engine: Engine) -> None:
    base, key = server
    health = httpx.get(base + "/health", timeout=10).json()
    assert health["engine"]["version"] == engine.version
    assert health["scheduler"]["enabled"] is False
    assert httpx.get(base + "/v1/findings", timeout=10).status_code == 401
    r = httpx.get(base + "/v1/findings", params={"limit": 1}, headers={"X-API-Key": key},
                  timeout=10)
    assert r.status_code == 200, r.text
    assert "findings" in r.json()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-auth", "--cache-ttl", "briefly"], "not a duration"),
        (["--no-auth", "--cache-size", "-1"], "--cache-size"),
        (["--no-auth", "--analysis-threads", "0"], "--analysis-threads"),
        (["--no-auth", "--workers", "0"], "--workers"),
    ],
)
def test_serve_cache_and_worker_flag_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args], env={"LOGSIGHT_API_KEYS": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_worker_env_rebuilds_the_same_settings() -> None:
    from datetime import timedelta

    from logsight.cli.serve_cmd import worker_env
    from logsight.service import ServiceSettings

    cfg = ServiceSettings(
        api_keys=("k1", "k2"), scheduler=True, interval=timedelta(minutes=10),
        intervals={"drift": timedelta(hours=1), "log_anomalies": None}, namespace="prod",
        max_window=timedelta(days=2), request_timeout=12.5, cache_ttl=5.0,
        cache_past_ttl=120.0, cache_size=17, analysis_threads=3,
    )
    env = worker_env(cfg, "http://127.0.0.1:1", self_log=False)
    again = ServiceSettings.from_env(env)
    assert again.with_(replica_id=cfg.replica_id) == cfg
    assert env["LOGSIGHT_URL"] == "http://127.0.0.1:1" and env["LOGSIGHT_SELF_LOG"] == "off"


@pytest.mark.engine
def test_served_with_two_workers(engine: Engine) -> None:
    port = _free_port()
    key = "cli-key-" + uuid.uuid4().hex
    ns = "t" + uuid.uuid4().hex[:12]
    engine.index(names.stream(names.TRACES, ns), {
        "@timestamp": "2024-01-01T00:00:00Z", "trace.id": uuid.uuid4().hex, "span.id": "s1",
        "service.name": "old", "span.name": "GET /", "span.kind": "server",
        "span.start_unix_nano": 1704067200_000_000_000,
        "span.end_unix_nano": 1704067200_100_000_000, "span.status": "ok"},
        op_type="create", refresh=True)
    env = dict(os.environ, LOGSIGHT_URL=engine.url, LOGSIGHT_API_KEYS=key)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from logsight.cli import main; main()", "serve", "--port",
         str(port), "--workers", "2", "--no-scheduler", "--no-self-log", "--no-access-log",
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"logsight serve --workers 2 exited {proc.returncode}: {out}")
            try:
                health = httpx.get(base + "/health", timeout=5.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("logsight serve --workers 2 did not answer")
                time.sleep(0.2)
        assert health.json()["engine"]["version"] == engine.version
        assert httpx.get(base + "/v1/findings", timeout=10).status_code == 401
        # a namespace with data but no spans in the last hour: an unknown one is now a 404
        r = httpx.get(base + "/v1/bottlenecks", params={"from": "1h", "namespace": ns},
                      headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["X-Logsight-Cache"] == "miss"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--task-interval", "bogus=1h"], {}, "unknown scheduler task 'bogus'"),
        (["--task-interval", "drift=1h", "--task-interval", "x=off"], {},
         "unknown scheduler task 'x'"),
        (["--task-interval", "drift=0s"], {}, "must be positive"),
        (["--task-interval", "drift=soon"], {}, "not a duration"),
        ([], {"LOGSIGHT_SCHEDULER_INTERVALS": "bogus=1h"},
         "LOGSIGHT_SCHEDULER_INTERVALS: unknown scheduler task 'bogus'"),
        ([], {"LOGSIGHT_SCHEDULER_INTERVALS": "drift=later"},
         "LOGSIGHT_SCHEDULER_INTERVALS: interval of drift"),
    ],
)
def test_serve_rejects_unknown_tasks_and_bad_intervals(args: list[str], env: dict[str, str],
                                                       message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--no-auth", *args],
                                env={"LOGSIGHT_API_KEYS": "", **env})
    assert result.exit_code == 2, result.output
    assert message in result.output
    if "unknown" in message:
        assert "valid tasks: bottlenecks, trace_regressions, dependencies, canary, " \
               "log_anomalies, drift, performance" in result.output
    if args:
        assert "--task-interval" in result.output
    assert "Traceback" not in result.output
