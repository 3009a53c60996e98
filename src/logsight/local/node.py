"""Start, stop and inspect the local OpenSearch node."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LAUNCHER = HERE / "java" / "LogsightNode.java"
DEFAULT_PORT = 9200
DEFAULT_HEAP = "1g"


class LocalEngineError(RuntimeError):
    """The local engine could not be resolved, started or stopped; the message says why."""


def default_state_dir() -> Path:
    """``LOGSIGHT_HOME``/engine, else the user's data dir (e.g. ~/.local/share/logsight)."""
    env = os.environ.get("LOGSIGHT_HOME")
    if env:
        return Path(env) / "engine"
    from platformdirs import user_data_dir

    return Path(user_data_dir("logsight")) / "engine"


@dataclass
class EngineStatus:
    running: bool
    url: str
    pid: int | None = None
    version: str | None = None
    health: str | None = None
    state_dir: str | None = None
    heap: str | None = None
    transport_port: int | None = None  # the node's internal transport (loopback only)

    def describe(self) -> str:
        if not self.running:
            return f"stopped (state in {self.state_dir})"
        transport = (f", transport on 127.0.0.1:{self.transport_port}"
                     if self.transport_port else "")
        return (
            f"running: OpenSearch {self.version} at {self.url} (pid {self.pid}, "
            f"health {self.health}, heap {self.heap}{transport}, state in {self.state_dir})"
        )


def _http_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError, TimeoutError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (our own child that exited) still answers kill(0); look at its state
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_engine(pid: int) -> bool:
    """Is ``pid`` our launcher? After a reboot a stale engine.json may name a pid that now
    belongs to another program, which ``stop`` must never signal."""
    try:
        return b"LogsightNode" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _pid_alive(pid)  # no /proc (not Linux): fall back to "alive"


def _free_loopback_port(avoid: int) -> int:
    """A port nothing listens on now (the kernel's pick), other than ``avoid``."""
    for _ in range(10):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != avoid:
            return port
    raise LocalEngineError("no free loopback port for the engine's transport")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class LocalEngine:
    """One local node: its state directory holds data, logs, the resolved classpath and a
    ``engine.json`` with the pid, port and heap of the running process."""

    host = "127.0.0.1"

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        port: int | None = None,
        heap: str | None = None,
        java_home: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        saved = self._read_state()
        self.port = int(port or os.environ.get("LOGSIGHT_ENGINE_PORT") or saved.get("port") or DEFAULT_PORT)
        self.heap = heap or os.environ.get("LOGSIGHT_ENGINE_HEAP") or DEFAULT_HEAP
        self.java_home = java_home or os.environ.get("LOGSIGHT_JAVA_HOME") or os.environ.get("JAVA_HOME")

    # -- paths -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def node_dir(self) -> Path:
        return self.state_dir / "node"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "engine.out"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "engine.json"

    def _read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _java(self, tool: str) -> str:
        if self.java_home:
            path = Path(self.java_home) / "bin" / tool
            if path.exists():
                return str(path)
        found = shutil.which(tool)
        if not found:
            raise LocalEngineError(
                f"'{tool}' not found: install a JDK (17+) or set JAVA_HOME / LOGSIGHT_JAVA_HOME"
            )
        return found

    # -- resolve -----------------------------------------------------------------------------
    def resolve(self) -> str:
        """Resolve the engine with Maven (cached by the pom's hash); returns the classpath."""
        digest = hashlib.sha256(POM.read_bytes() + LAUNCHER.read_bytes()).hexdigest()[:16]
        build = self.state_dir / "build" / digest
        cp_file = build / "classpath.txt"
        classes = build / "classes"
        if not cp_file.exists():
            mvn = shutil.which("mvn")
            if not mvn:
                raise LocalEngineError("Maven ('mvn') is needed to resolve the local engine")
            build.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath",
                 f"-Dmdep.outputFile={cp_file}"],
                capture_output=True, text=True, cwd=build,
            )
            if proc.returncode != 0 or not cp_file.exists():
                tail = (proc.stdout + proc.stderr)[-3000:]
                raise LocalEngineError(f"Maven could not resolve the engine:\n{tail}")
        classpath = cp_file.read_text().strip()
        if not (classes / "LogsightNode.class").exists():
            classes.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [self._java("javac"), "-cp", classpath, "-d", str(classes), str(LAUNCHER)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise LocalEngineError(f"could not compile the launcher:\n{proc.stderr[-3000:]}")
        return f"{classes}{os.pathsep}{classpath}"

    # -- lifecycle ---------------------------------------------------------------------------
    def status(self) -> EngineStatus:
        state = self._read_state()
        pid = state.get("pid")
        port = int(state.get("port", self.port))
        url = f"http://{self.host}:{port}"
        base = EngineStatus(running=False, url=url, state_dir=str(self.state_dir))
        if not pid or not _pid_alive(int(pid)) or not _is_engine(int(pid)):
            return base
        info = _http_json(url + "/")
        if info is None:
            return EngineStatus(running=False, url=url, pid=int(pid), state_dir=str(self.state_dir),
                                health="starting or unresponsive")
        health = _http_json(url + "/_cluster/health") or {}
        return EngineStatus(
            running=True,
            url=url,
            pid=int(pid),
            version=str(info.get("version", {}).get("number")),
            health=str(health.get("status")),
            state_dir=str(self.state_dir),
            heap=str(state.get("heap")),
            transport_port=int(state["transport_port"]) if state.get("transport_port") else None,
        )

    def start(self, *, timeout: float = 240.0) -> tuple[EngineStatus, bool]:
        """Start the node and wait for green. Returns (status, started_now): a second call while
        it runs changes nothing and returns started_now=False."""
        current = self.status()
        if current.running:
            return current, False
        state = self._read_state()
        if state.get("pid") and _pid_alive(int(state["pid"])):
            # a previous start is still coming up: wait for it rather than start a second node
            return self._wait_green(int(state["pid"]), timeout), False
        if not _port_free(self.host, self.port):
            raise LocalEngineError(
                f"port {self.port} on {self.host} is taken by another program; "
                "choose another with --port or LOGSIGHT_ENGINE_PORT"
            )
        classpath = self.resolve()
        # the node's transport (cluster-internal) gets a free loopback port, checked here, not
        # a fixed offset from the HTTP port that another program may hold
        transport_port = _free_loopback_port(avoid=self.port)
        self.node_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            self._java("java"),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
            f"-Djava.io.tmpdir={self.state_dir / 'tmp'}",
            "-cp",
            classpath,
            "LogsightNode",
            "--base", str(self.node_dir),
            "--port", str(self.port),
            "--host", self.host,
            "--transport-port", str(transport_port),
        ]
        (self.state_dir / "tmp").mkdir(exist_ok=True)
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI that started it
            )
        self._state_file.write_text(
            json.dumps({"pid": proc.pid, "port": self.port, "heap": self.heap,
                        "transport_port": transport_port, "started_at": time.time()})
        )
        return self._wait_green(proc.pid, timeout), True

    def _wait_green(self, pid: int, timeout: float) -> EngineStatus:
        deadline = time.monotonic() + timeout
        url = f"{self.url}/_cluster/health?wait_for_status=green&timeout=1s"
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                raise LocalEngineError(
                    f"the engine exited during start-up; last lines of {self.log_file}:\n"
                    + self._log_tail()
                )
            health = _http_json(url, timeout=3.0)
            if health and health.get("status") == "green":
                return self.status()
            time.sleep(0.3)
        raise LocalEngineError(
            f"the engine did not turn green within {timeout:.0f}s; see {self.log_file}:\n"
            + self._log_tail()
        )

    def _log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout: float = 60.0) -> bool:
        """Stop cleanly (data stays). Returns False if it was not running."""
        state = self._read_state()
        pid = state.get("pid")
        if not pid or not _pid_alive(int(pid)) or not _is_engine(int(pid)):
            self._clear_pid(state)
            return False
        pid = int(pid)
        # the launcher watches for this file and closes the node (flushes, releases locks)
        (self.node_dir / "stop").touch()
        if not self._wait_exit(pid, timeout / 2):
            os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout / 2):
                os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
        self._clear_pid(state)
        return True

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                # reap it if it is our child (tests start it in-process)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                return True
            time.sleep(0.2)
        return False

    def _clear_pid(self, state: dict[str, Any]) -> None:
        if self._state_file.exists():
            state.pop("pid", None)
            self._state_file.write_text(json.dumps(state))
