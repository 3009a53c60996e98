"""Tools for the fault suite (tests/test_faults*.py): a gateway in front of the real engine that
can go away and come back or ask for credentials, and the checks every fault test makes.

The gateway is a plain HTTP reverse proxy (one connection per request): ``down()`` closes its
port (connection refused, as a stopped cluster), ``up()`` opens it again on the same port, and
``require(user, password)`` makes it answer 401 to any other credentials, as a cluster with
security enabled does. Everything else is forwarded unchanged to the real engine.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from logsight import names
from logsight.engine import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.port = free_port()
        self.auth: str | None = None  # the Authorization header accepted; None: no check
        self.requests = 0  # forwarded requests
        self.refused = 0  # answered 401
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def require(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"

    def up(self) -> None:
        if self._server is not None:
            return
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: down() is immediate

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if gateway.auth is not None and self.headers.get("Authorization") != gateway.auth:
                    gateway.refused += 1
                    payload = json.dumps({"error": {
                        "root_cause": [{"type": "security_exception",
                                        "reason": "authentication failed"}],
                        "type": "security_exception", "reason": "authentication failed"},
                        "status": 401}).encode()
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="security"')
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                gateway.requests += 1
                conn = http.client.HTTPConnection(*gateway.target, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "authorization")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.down()


# -- the checks ---------------------------------------------------------------------------------
def ids_in(engine: Engine, index: str) -> dict[str, int]:
    """``_id`` -> how many documents carry it (1 everywhere means no duplicates)."""
    engine.refresh(index)
    out: dict[str, int] = {}
    for hit in engine.scan(index, source=False):
        out[hit["_id"]] = out.get(hit["_id"], 0) + 1
    return out


def deadletters_for(engine: Engine, stream: str) -> dict[str, dict[str, Any]]:
    """Dead letters bound for ``stream``: ``_id`` -> source."""
    engine.refresh(names.DEADLETTER_INDEX)
    if not engine.exists(names.DEADLETTER_INDEX):
        return {}
    return {h["_id"]: h["_source"] for h in engine.scan(
        names.DEADLETTER_INDEX, {"term": {"failure.stream": stream}})}


def assert_each_once(engine: Engine, stream: str, expected_ids: Iterable[str]) -> tuple[int, int]:
    """Every expected event is indexed in ``stream`` or dead-lettered with a reason, exactly
    once, and nothing else is there. Returns (indexed, dead-lettered)."""
    expected = set(expected_ids)
    stored = ids_in(engine, stream) if engine.exists(stream) else {}
    dead = deadletters_for(engine, stream)
    assert all(n == 1 for n in stored.values()), "duplicates in the stream"
    both = set(stored) & set(dead)
    assert not both, f"{len(both)} event(s) both indexed and dead-lettered"
    missing = expected - set(stored) - set(dead)
    assert not missing, f"{len(missing)} event(s) neither indexed nor dead-lettered: {sorted(missing)[:10]}"
    extra = (set(stored) | set(dead)) - expected
    assert not extra, f"{len(extra)} unexpected document(s)"
    for src in dead.values():
        assert (src.get("failure") or {}).get("message"), "a dead letter without a reason"
    return len(stored), len(dead)


def assert_counters_add_up(counters: Any) -> None:
    assert counters.in_transit == 0, counters
    assert counters.accounted == counters.received, counters


def indexing_pressure_bytes(engine: Engine) -> int:
    stats = engine.request("GET", "/_nodes/stats/indexing_pressure")
    total = 0
    for node in stats.get("nodes", {}).values():
        mem = (node.get("indexing_pressure") or {}).get("memory", {}).get("current", {})
        total += int(mem.get("all_in_bytes", 0))
    return total


def assert_pressure_released(engine: Engine, timeout: float = 15.0) -> None:
    """The engine holds no indexing-pressure bytes any more (nothing stuck in a write)."""
    deadline = time.monotonic() + timeout
    while (held := indexing_pressure_bytes(engine)) > 0:
        assert time.monotonic() < deadline, f"{held} indexing-pressure bytes still held"
        time.sleep(0.2)
