"""CLI: ``logsight engine start|status|stop`` on a node of the test's own, and ``setup``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from logsight.cli import main

pytestmark = pytest.mark.engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_engine_lifecycle_through_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    port = _free_port()
    state = ["--state-dir", str(tmp_path / "engine")]
    res = runner.invoke(main, ["engine", "status", *state])
    assert res.exit_code == 3 and "stopped" in res.output

    res = runner.invoke(main, ["engine", "start", *state, "--port", str(port), "--heap", "512m"])
    try:
        assert res.exit_code == 0, res.output
        url = f"http://127.0.0.1:{port}"
        assert "engine started in" in res.output and url in res.output

        again = runner.invoke(main, ["engine", "start", *state, "--port", str(port)])
        assert again.exit_code == 0 and "already running" in again.output

        st_json = runner.invoke(main, ["engine", "status", *state, "--json"])
        assert json.loads(st_json.output)["running"] is True
        assert json.loads(st_json.output)["url"] == url
        st = runner.invoke(main, ["engine", "status", *state])
        assert st.exit_code == 0
        assert "running: OpenSearch 2." in st.output and url in st.output and "green" in st.output

        setup = runner.invoke(main, ["setup", "--url", url, "--json"])
        assert setup.exit_code == 0, setup.output
        report = json.loads(setup.output)
        assert report["engine"]["flavor"] == "opensearch" and report["changed"] > 0
        setup2 = runner.invoke(main, ["setup", "--url", url, "--json"])
        assert json.loads(setup2.output)["changed"] == 0
    finally:
        stop = runner.invoke(main, ["engine", "stop", *state])
    assert stop.exit_code == 0 and "engine stopped" in stop.output
    assert (tmp_path / "engine" / "node").is_dir()  # data stays in place
    res = runner.invoke(main, ["engine", "status", *state])
    assert res.exit_code == 3
    assert runner.invoke(main, ["engine", "stop", *state]).output.strip() == "engine was not running"


def test_start_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = CliRunner().invoke(
            main, ["engine", "start", "--state-dir", str(tmp_path), "--port", str(port)]
        )
    assert res.exit_code == 1 and f"port {port}" in res.output and "taken" in res.output


def test_setup_says_clearly_when_no_cluster(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["setup", "--url", f"http://127.0.0.1:{_free_port()}"])
    assert res.exit_code == 1
    assert "cannot reach" in res.output and "logsight engine start" in res.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:9200", "must start with http:// or https://"),
        ("notaurl", "must start with http:// or https://"),
    ],
)
def test_setup_rejects_a_url_without_scheme(url: str, expected: str) -> None:
    res = CliRunner().invoke(main, ["setup", "--url", url])
    assert res.exit_code == 1 and expected in res.output and "Traceback" not in res.output


def test_setup_says_when_the_url_is_not_a_cluster(tmp_path: Path) -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        res = CliRunner().invoke(main, ["setup", "--url", url])
    finally:
        server.shutdown()
    assert res.exit_code == 1 and "not as Elasticsearch or OpenSearch" in res.output


def test_setup_validates_rollover_age() -> None:
    res = CliRunner().invoke(main, ["setup", "--rollover-age", "banana", "--dry-run"])
    assert res.exit_code == 2 and "not an age" in res.output


def test_stop_never_signals_a_stranger_named_by_a_stale_pid(tmp_path: Path) -> None:
    import subprocess
    import sys

    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = tmp_path / "engine"
        state.mkdir()
        (state / "engine.json").write_text(json.dumps({"pid": stranger.pid, "port": _free_port()}))
        runner = CliRunner()
        res = runner.invoke(main, ["engine", "stop", "--state-dir", str(state)])
        assert res.output.strip() == "engine was not running"
        assert stranger.poll() is None  # still alive: not ours, not signalled
        assert runner.invoke(main, ["engine", "status", "--state-dir", str(state)]).exit_code == 3
    finally:
        stranger.kill()
        stranger.wait()
