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
