"""Fault suite, the small parts: depth bound, credential redaction, spool file names, the
cursor on a full disk, rate-limited warnings, the span mapping, and the API's answer to a
cluster that refuses our credentials."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultkit import Gateway
from logsight import names
from logsight.engine import redact_url, settings_from_env, split_credentials
from logsight.engine.client import ConnectionSettings
from logsight.shipper import BulkTransport, Spool
from logsight.shipper.core import default_spool_dir
from logsight.shipper.limits import (
    MAX_DEPTH,
    deadletter_original,
    json_depth,
    original_bytes,
    value_depth,
)
from logsight.shipper.ratelog import RateLimitedLog

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{}', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='k"[{', max_size=3), inner, max_size=3),
    max_leaves=30)


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_depth_is_the_nesting_of_the_text(value: Any) -> None:
    text = json.dumps(value)
    assert json_depth(text, limit=1_000) == _depth(value)  # brackets inside strings ignored
    assert value_depth(value, limit=1_000) == _depth(value)


def test_json_depth_stops_early_on_a_hostile_document() -> None:
    hostile = "[" * 1_000_000 + "]" * 1_000_000
    assert json_depth(hostile) == MAX_DEPTH + 1  # "too deep", without walking it all
    assert json_depth('{"a": 1, "b": [1, 2]}') == 2
    assert json_depth("plain text, no JSON") == 0


def test_a_dead_letter_keeps_the_original_bytes_or_says_it_was_cut() -> None:
    raw = b'{"x": "\xff bad"}'
    dl = deadletter_original(raw)
    assert original_bytes(dl) == raw and dl["original"]["bytes"] == len(raw)
    big = b"y" * (2 * 1024 * 1024)
    cut = deadletter_original(big)
    assert "base64" not in cut["original"] and cut["original"]["text_truncated"]
    assert len(cut["original_text"]) == 32_000
    assert original_bytes(cut) is None  # only part of it was kept: not replayable


def test_the_shipper_encoder_dead_letters_an_over_deep_document() -> None:
    t = BulkTransport("http://127.0.0.1:1", namespace="x", clock=lambda: 0.0)
    deep: Any = 1
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    rec = t.encode(names.LOGS, {"message": "m", "event.id": "e1", "payload": deep})
    action, source = rec.split(b"\n")[:2]
    assert json.loads(action) == {"create": {"_index": names.DEADLETTER_INDEX, "_id": "e1"}}
    doc = json.loads(source)
    assert doc["failure"]["tag"] == "too_deep" and doc["failure"]["stream"] == "logs-logsight-x"
    assert json.loads(original_bytes(doc) or b"")["payload"]["d"]["d"]
    shallow = t.encode(names.LOGS, {"message": "m", "event.id": "e2", "payload": {"d": 1}})
    assert b'"_index":"logs-logsight-x"' in shallow


@pytest.mark.parametrize(("url", "user", "password", "bare"), [
    ("http://bob:s3cret@host:9200", "bob", "s3cret", "http://host:9200"),
    ("https://bob:p%40ss@host:9200/base", "bob", "p@ss", "https://host:9200/base"),
    ("http://bob@host", "bob", None, "http://host"),
    ("http://host:9200", None, None, "http://host:9200"),
])
def test_credentials_in_a_url_are_taken_apart(url: str, user: str | None, password: str | None,
                                              bare: str) -> None:
    assert split_credentials(url) == (user, password, bare)
    s = ConnectionSettings(url=url)
    assert (s.url, s.username, s.password) == (bare, user, password)
    assert "s3cret" not in repr(s) and "p%40ss" not in repr(s)


def test_explicit_credentials_win_over_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGSIGHT_USERNAME", "env-user")
    monkeypatch.setenv("LOGSIGHT_PASSWORD", "env-pw")
    s = settings_from_env("http://url-user:url-pw@host:9200")
    assert (s.url, s.username, s.password) == ("http://host:9200", "env-user", "env-pw")


def test_redaction_of_urls_in_text() -> None:
    text = ("cannot reach http://bob:pw1@h:1/x; GET /v1/findings?api_key=k3y&service=a "
            "https://u:p@h2/?token=t0k")
    out = redact_url(text)
    for secret in ("pw1", "k3y", "t0k", ":p@"):
        assert secret not in out
    assert "service=a" in out and "http://bob:***@h:1/x" in out


def test_the_access_log_never_writes_a_key_from_the_query_string(
        caplog: pytest.LogCaptureFixture) -> None:
    from logsight.service.selflog import redact_access_log

    redact_access_log()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    "/v1/findings?api_key=sekr1t&top=3", "1.1", 401)
    assert "sekr1t" not in caplog.text and "api_key=***&top=3" in caplog.text


def test_a_long_service_name_keeps_its_spool(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGSIGHT_SPOOL_DIR", str(tmp_path))
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    da, db = default_spool_dir(long_a), default_spool_dir(long_b)
    assert da != db and len(da.name) <= 80 and da.name.startswith("aaaa")
    Spool(da).close()  # no ENAMETOOLONG: the spool stays on
    assert default_spool_dir("svc-default") == tmp_path / "svc-default"  # short: unchanged


def test_the_cursor_is_rewritten_in_place_when_the_disk_is_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, fsync="never")
    spool.append([b'{"create":{}}\n{"n":%d}\n' % i for i in range(10)])
    spool.append([b'{"create":{}}\n{"n":%d}\n' % i for i in range(10, 20)])
    records, token = spool.read(5, 1 << 20)
    assert token is not None

    real_open = open

    def full_disk_open(path: Any, *args: Any, **kw: Any) -> Any:
        if str(path).endswith("cursor.json.tmp"):  # no room for a new file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kw)

    monkeypatch.setattr("builtins.open", full_disk_open)
    spool.commit(token)
    monkeypatch.undo()
    assert not spool.cursor_dirty
    cursor = json.loads((tmp_path / "cursor.json").read_text())
    assert cursor["offset"] == token.offset  # saved, in place
    spool.close()
    assert Spool(tmp_path).pending_records == 15  # a restart resumes after the 5 delivered


def test_a_failed_append_leaves_no_empty_segment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, fsync="batch")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    for _ in range(5):
        with pytest.raises(OSError):
            spool.append([b'{"create":{}}\n{"n":1}\n'])
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.ndjson"))  # no file per failed try
    assert spool.append([b'{"create":{}}\n{"n":2}\n']) == 1  # space is back: works again
    assert [p.stat().st_size > 0 for p in tmp_path.glob("*.ndjson")] == [True]
    spool.close()


def test_rate_limited_warnings_count_what_they_stand_for(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("logsight.shipper"), interval=10,
                        monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="logsight.shipper"):
        for _ in range(100):
            rl.warning("%d dropped: %s", "why", n=2)
        now[0] = 11
        rl.warning("%d dropped: %s", "why")
        rl.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["2 dropped: why", "199 dropped: why"] and rl.total == 201


def test_an_otel_json_span_maps_to_the_exporters_document() -> None:
    from logsight.spans import span_from_record

    t0 = 1_714_557_600_000_000_000
    doc = span_from_record({
        "trace_id": "a" * 32, "span_id": "b" * 16, "parent_span_id": "c" * 16,
        "name": "GET /x", "service": {"name": "api"}, "kind": "SPAN_KIND_SERVER",
        "start_time_unix_nano": t0, "end_time_unix_nano": t0 + 2_500_000,
        "status": {"code": 2}, "attributes": {"http.method": "GET", "db.system": "pg",
                                              "db.system.name": "pg"}})
    assert doc == {
        "@timestamp": "2024-05-01T10:00:00.000000Z", "trace.id": "a" * 32, "span.id": "b" * 16,
        "parent.id": "c" * 16, "service.name": "api", "span.name": "GET /x",
        "span.kind": "server", "span.start_unix_nano": t0, "span.end_unix_nano": t0 + 2_500_000,
        "span.duration_ms": pytest.approx(2.5), "span.status": "error",
        "event.outcome": "failure", "event.id": f"{'a' * 32}-{'b' * 16}",
        "attributes.http.method": "GET",
        # as the exporter names them: a value and an object cannot share a name
        "attributes.db.system_value": "pg", "attributes.db.system.name": "pg"}


@pytest.mark.engine
def test_ingest_takes_otel_json_span_files(engine: Any, namespace: str, tmp_path: Path) -> None:
    from logsight.ingest import ingest_file

    t0 = 1_714_557_600_000_000_000
    spans = [{"trace_id": "d" * 32, "span_id": f"{i:016x}", "name": "op",
              "service": {"name": "api"}, "start_time_unix_nano": t0 + i,
              "end_time_unix_nano": t0 + i + 1_000_000} for i in range(5)]
    path = tmp_path / "spans.ndjson"
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))
    report = ingest_file(engine, path, kind=names.TRACES, namespace=namespace, refresh=True)
    assert (report.indexed, report.dead_lettered) == (5, 0), report
    hits = engine.search(names.stream(names.TRACES, namespace), {"size": 10})["hits"]["hits"]
    assert {h["_id"] for h in hits} == {f"{'d' * 32}-{i:016x}" for i in range(5)}
    assert all(h["_source"]["span"]["duration_ms"] == pytest.approx(1.0) for h in hits)


@pytest.mark.engine
@pytest.mark.timeout(60)
def test_refused_credentials_are_a_502_configuration_error(engine: Any) -> None:
    """The API and /health say the cluster refused our credentials (502), not "try again"
    (503), and never echo the password; the CLI says it is a configuration error."""
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app

    gateway = Gateway(engine.url)
    gateway.require("svc", "right")
    bad = gateway.url.replace("http://", "http://svc:wr0ng-pw@")
    try:
        cfg = ServiceSettings(api_keys=("k",), scheduler=False)
        client = TestClient(create_app(lambda: connect(bad), cfg))
        health = client.get("/health")
        assert health.status_code == 502, health.text
        assert health.json()["engine"]["error"] == "the cluster refused our credentials"
        resp = client.get("/v1/findings", headers={"X-API-Key": "k"})
        assert resp.status_code == 502, resp.text
        assert resp.json()["error"] == "engine_credentials_refused"
        assert "wr0ng-pw" not in health.text + resp.text
        cli = subprocess.run([sys.executable, "-c", "from logsight.cli import main; main()",
                              "deadletter", "list", "--url", bad], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]
                                                                  / "src")}, timeout=60)
        assert cli.returncode == 1
        assert "configuration error" in cli.stderr and "refused our credentials" in cli.stderr
        assert "wr0ng-pw" not in cli.stderr + cli.stdout
    finally:
        gateway.close()


@pytest.mark.engine
@pytest.mark.timeout(60)
def test_the_connection_pool_has_room_for_every_sender(engine: Any, namespace: str) -> None:
    """Four senders over a pool of one connection made urllib3 discard connections
    ("Connection pool is full") on every burst: the pool holds one per sender."""
    from logsight.shipper import Shipper

    transport = BulkTransport(engine.url, namespace=namespace)
    shipper = Shipper(transport, use_spool=False, senders=16, flush_interval=0.05,
                      stats_interval=None)
    shipper.submit(names.LOGS, {"@timestamp": "2024-05-01T10:00:00.000Z", "message": "m"})
    assert shipper.flush(30)
    assert transport.connections == 16  # (the default pool, 10, is the floor)
    client = transport._engine._client  # type: ignore[union-attr]  # the seam's client, to look at its pool
    if engine.flavor == "opensearch":
        pool = client.transport.connection_pool.connections[0].pool
        assert pool.pool.maxsize == 16  # urllib3's queue of idle connections
    shipper.close()


class _Flaky:
    """A destination that fails at random (seeded): whole requests (unavailable), single
    items pushed back (429) or refused for good (400); stores ``create`` like the cluster
    (a second create of an id is a 409)."""

    def __init__(self, seed: int, p_down: float, p_retry: float, p_fail: float) -> None:
        import random

        self.rng = random.Random(seed)
        self.p = (p_down, p_retry, p_fail)
        self.stored: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        self.lock = __import__("threading").Lock()

    def encode(self, kind: str, doc: Any) -> bytes:
        return (b'{"create":{"_index":"logs-logsight-x","_id":"%s"}}\n{}\n'
                % doc["event.id"].encode())

    def send(self, records: Any) -> Any:
        from logsight.shipper import SendResult, Unavailable
        from logsight.shipper.transport import ItemFailure, is_deadletter

        with self.lock:
            p_down, p_retry, p_fail = self.p
            if self.rng.random() < p_down:
                raise Unavailable("down")
            result = SendResult()
            for r in records:
                rid = json.loads(r.split(b"\n")[0])["create"]["_id"]
                dl = is_deadletter(r)
                store = self.dead if dl else self.stored
                x = self.rng.random()
                # a refusal belongs to the document (as a mapping conflict does): every
                # try of it is refused; a push-back is by chance
                refused = int(rid[1:]) % 100 < p_fail * 100
                if not dl and x < p_retry:
                    result.retry.append(r)
                elif not dl and refused:
                    result.failed.append(ItemFailure(r, 400, "mapper", "refused"))
                elif rid in store:
                    result.duplicates += 1
                else:
                    store[rid] = 1
                    if dl:
                        result.dead_lettered += 1
                    else:
                        result.ok += 1
            return result

    def deadletter(self, failure: Any, clock: Any) -> bytes:
        rid = json.loads(failure.record.split(b"\n")[0])["create"]["_id"]
        return b'{"create":{"_index":"logsight-deadletter","_id":"%s"}}\n{}\n' % rid.encode()

    def close(self) -> None:
        pass


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), p_down=st.sampled_from([0.0, 0.2, 0.5]),
       p_retry=st.sampled_from([0.0, 0.1, 0.3]), p_fail=st.sampled_from([0.0, 0.05]),
       use_spool=st.booleans(), senders=st.sampled_from([1, 3]))
def test_every_event_is_stored_or_dead_lettered_once_and_the_counters_add_up(
        tmp_path_factory: pytest.TempPathFactory, seed: int, p_down: float, p_retry: float,
        p_fail: float, use_spool: bool, senders: int) -> None:
    from logsight.shipper import Shipper

    flaky = _Flaky(seed, p_down, p_retry, p_fail)
    shipper = Shipper(flaky, spool_dir=tmp_path_factory.mktemp("spool"), use_spool=use_spool,
                      batch_size=17, flush_interval=0.01, backoff_initial=0.001,
                      backoff_max=0.004, senders=senders, stats_interval=None, fsync="never",
                      random_state=seed)
    n = 300
    for i in range(n):
        shipper.submit(names.LOGS, {"event.id": f"e{i}"})
    assert shipper.flush(60)
    c = shipper.counters
    assert set(flaky.stored) | set(flaky.dead) == {f"e{i}" for i in range(n)}
    assert not set(flaky.stored) & set(flaky.dead)
    # stored once each; a re-send of a stored one (after another sender's failure rewound the
    # spool) is a duplicate, so sent + duplicates covers the stored ones exactly
    assert len(flaky.stored) + len(flaky.dead) == n and c.dropped == 0
    assert c.sent + c.dead_lettered + c.duplicates == n
    assert c.sent <= len(flaky.stored) and c.dead_lettered <= len(flaky.dead)
    if c.duplicates == 0:  # nothing re-sent: every acknowledgement counted where it landed
        assert (c.sent, c.dead_lettered) == (len(flaky.stored), len(flaky.dead))
    assert c.in_transit == 0 and c.accounted == c.received == n, c
    shipper.close()
