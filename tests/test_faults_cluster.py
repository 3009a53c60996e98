"""Fault suite, cluster side: index write blocks (403, 429), wrong credentials, hostile documents.

Against the real engine. Each test asserts that every event is indexed or dead-lettered with a
reason exactly once, that the shipper's counters add up, that the engine holds no indexing
pressure afterwards, and that the same shipper recovers without a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from faultkit import (
    Gateway,
    assert_counters_add_up,
    assert_each_once,
    assert_pressure_released,
)
from logsight import names
from logsight.shipper import BulkTransport, SendResult, Shipper

pytestmark = [pytest.mark.faults, pytest.mark.engine]


class CountingTransport(BulkTransport):
    """The real ``_bulk`` transport, counting the requests it makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests = 0

    def send(self, records: Any) -> SendResult:
        self.requests += 1
        return super().send(records)


def _doc(i: int, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"@timestamp": "2024-05-01T10:00:00.000Z", "message": f"event {i}",
            "service.name": "faults", "event.id": f"{prefix}-{i}", **extra}


def _shipper(transport: BulkTransport, tmp_path: Path, **kw: Any) -> Shipper:
    opts: dict[str, Any] = {"spool_dir": tmp_path / "spool", "flush_interval": 0.05,
                            "batch_size": 200, "backoff_initial": 0.2, "backoff_max": 2.0,
                            "stats_interval": None, "fsync": "never", "random_state": 7}
    opts.update(kw)
    return Shipper(transport, **opts)


def _backing_index(engine: Any, stream: str) -> str:
    ds = engine.request("GET", f"/_data_stream/{stream}")["data_streams"][0]
    return str(ds["indices"][-1]["index_name"])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("block", ["index.blocks.write", "index.blocks.read_only_allow_delete"])
def test_an_index_write_block_is_waited_out_not_dead_lettered(
        engine: Any, namespace: str, tmp_path: Path, block: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """A write block (403) or flood stage's read-only-allow-delete (429) is lifted sooner or
    later: the events wait (with a growing back-off shared by the senders) and arrive once."""
    caplog.set_level(logging.INFO, logger="logsight.shipper")
    stream = names.stream(names.LOGS, namespace)
    transport = CountingTransport(engine.url, namespace=namespace)
    shipper = _shipper(transport, tmp_path)
    shipper.submit(names.LOGS, _doc(0, namespace))
    assert shipper.flush(30)
    index = _backing_index(engine, stream)
    engine.request("PUT", f"/{index}/_settings", body={block: True})
    try:
        for i in range(1, 2_001):
            shipper.submit(names.LOGS, _doc(i, namespace))
        time.sleep(4.0)  # blocked for 4 s: the senders back off instead of hammering
        blocked_requests = transport.requests
        c = shipper.counters
        assert c.dead_lettered == 0 and c.sent == 1, c
    finally:
        engine.request("PUT", f"/{index}/_settings", body={block: None})
    assert shipper.flush(60)  # the same shipper recovers: no restart
    # 10 batches, 4 s blocked, back-off 0.1-0.2 s doubling to 2 s: a handful of probes, not
    # one request per batch every 0.1 s (which would be ~400)
    assert blocked_requests <= 25, blocked_requests
    assert assert_each_once(engine, stream, [f"{namespace}-{i}" for i in range(2_001)]) == (
        2_001, 0)
    c = shipper.counters
    assert c.sent == 2_001 and c.retried > 0
    assert_counters_add_up(c)
    assert_pressure_released(engine)
    text = caplog.text
    assert text.count("pushes back") == 1 and text.count("takes records again") == 1
    shipper.close()


@pytest.mark.timeout(90)
def test_wrong_credentials_are_a_configuration_error_and_recover_when_fixed(
        engine: Any, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A cluster that refuses our credentials (401, behind an authenticating gateway) is said
    once, with the password redacted; the events wait in the spool and arrive once the
    credentials are accepted, without a restart."""
    caplog.set_level(logging.INFO, logger="logsight.shipper")
    stream = names.stream(names.LOGS, namespace)
    gateway = Gateway(engine.url)
    gateway.require("shipper", "right-password")
    try:
        url = gateway.url.replace("http://", "http://shipper:hunter2-wrong@")
        shipper = _shipper(BulkTransport(url, namespace=namespace), tmp_path)
        for i in range(500):
            shipper.submit(names.LOGS, _doc(i, namespace))
        assert not shipper.flush(3, give_up_if_down=True)
        assert gateway.refused > 0 and gateway.requests == 0
        c = shipper.counters
        assert c.spool_records == 500 and c.sent == 0 and c.dead_lettered == 0, c
        # the operator accepts the password the app has (or the app's secret is rotated)
        gateway.require("shipper", "hunter2-wrong")
        assert shipper.flush(60)
        assert assert_each_once(engine, stream, [f"{namespace}-{i}" for i in range(500)]) == (
            500, 0)
        assert_counters_add_up(shipper.counters)
        assert_pressure_released(engine)
        shipper.close()
    finally:
        gateway.close()
    assert "hunter2" not in caplog.text  # never echoed
    refused = [r for r in caplog.records if "refused our credentials" in r.getMessage()]
    assert len(refused) == 1  # one line for the state change, no tracebacks
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.timeout(120)
def test_hostile_documents_through_the_shipper(engine: Any, namespace: str,
                                               tmp_path: Path) -> None:
    """Depth (20,000 levels, and just past the limit), size, field count, type conflicts and
    lone surrogates among innocent events: each hostile one is indexed or dead-lettered with
    a reason, once, and the innocent ones of the same batches are indexed."""
    stream = names.stream(names.LOGS, namespace)
    transport = BulkTransport(engine.url, namespace=namespace)
    shipper = _shipper(transport, tmp_path, batch_size=50)

    def nested(depth: int, *, as_list: bool = False) -> Any:
        v: Any = 1
        for _ in range(depth):
            v = [v] if as_list else {"d": v}
        return v

    hostile: dict[str, dict[str, Any]] = {
        "deep": {"payload": nested(20_000)},
        "just-too-deep": {"payload": nested(25)},
        "deep-list": {"payload": nested(5_000, as_list=True)},
        "huge": {"blob": "x" * (4 * 1024 * 1024)},
        "many-fields": {"wide": {f"f{k}": k for k in range(3_000)}},
        "typed-object": {"qty": {"unit": "kg"}},
        "type-conflict": {"qty": 5},  # an object is mapped there now: refused for good
        "surrogates": {"detail": "x\udc00y"},
    }
    ids = []
    i = 0
    for name, extra in hostile.items():
        for _ in range(20):  # innocent neighbours in the same batch
            shipper.submit(names.LOGS, _doc(i, namespace))
            ids.append(f"{namespace}-{i}")
            i += 1
        shipper.submit(names.LOGS, {**_doc(i, namespace), **extra,
                                    "event.id": f"{namespace}-{name}"})
        ids.append(f"{namespace}-{name}")
        if name == "typed-object":
            assert shipper.flush(30)  # the mapping exists before the conflicting event
    t0 = time.monotonic()
    assert shipper.flush(60)
    assert time.monotonic() - t0 < 30  # nothing timed out in the engine
    indexed, dead = assert_each_once(engine, stream, ids)
    letters = {k.removeprefix(f"{namespace}-"): v
               for k, v in _deadletters(engine, stream).items()}
    for name in ("deep", "just-too-deep", "deep-list"):
        assert "nested deeper than 20" in letters[name]["failure"]["message"]
        assert letters[name]["original"]["bytes"] > 0  # the original is kept, as bytes
    assert "many-fields" in letters and "type-conflict" in letters
    for innocent in range(i):
        assert str(innocent) not in letters
    assert dead == 5 and indexed == len(ids) - 5
    assert_counters_add_up(shipper.counters)
    assert shipper.counters.dead_lettered == 5
    assert_pressure_released(engine)
    shipper.close()


def _deadletters(engine: Any, stream: str) -> dict[str, dict[str, Any]]:
    from faultkit import deadletters_for

    return deadletters_for(engine, stream)


@pytest.mark.timeout(120)
def test_hostile_lines_through_ingest_then_replay(engine: Any, namespace: str,
                                                  tmp_path: Path) -> None:
    """``logsight ingest`` with a 20,000-deep line, bad UTF-8 and a type conflict among good
    lines: the good lines of the batch are indexed, each bad one dead-lettered with a reason,
    once. Lines refused by a write block that outlasts the retries are dead-lettered too, and
    ``deadletter replay`` delivers them once the block is gone, exactly once (a second replay
    stores nothing)."""
    from logsight.deadletters import list_deadletters, replay_deadletters
    from logsight.ingest import ingest_file

    kind = names.MLEVENTS
    stream = names.stream(kind, namespace)

    def kpi(i: int, **extra: Any) -> str:
        return json.dumps({"@timestamp": "2024-05-01T10:00:00Z", "service": {"name": "faults"},
                           "ml": {"event_type": "kpi", "kpi": {"name": "k", "value": i}},
                           **extra})

    lines = [kpi(i) for i in range(30)]
    lines.insert(5, "{" + '"a":{' * 20_000 + "}" * 20_001)
    lines.insert(10, kpi(99, ml={"event_type": "kpi", "kpi": {"name": {"x": 1}}}))
    path = tmp_path / "hostile.ndjson"
    body = ("\n".join(lines) + "\n").encode()
    body += b'{"@timestamp":"2024-05-01T10:00:00Z","note":"bad \xff\xfe bytes"}\n'
    path.write_bytes(body)
    t0 = time.monotonic()
    report = ingest_file(engine, path, kind=kind, namespace=namespace, refresh=True)
    assert time.monotonic() - t0 < 30  # no batch held up by a hostile line
    assert report.lines == 33 and report.duplicates == 0
    assert report.indexed + report.dead_lettered == 33
    assert report.indexed >= 30  # every good line of the batches
    dead = _deadletters(engine, stream)
    assert len(dead) == report.dead_lettered >= 2
    assert any("nested deeper than 20" in d["failure"]["message"] for d in dead.values())
    assert_pressure_released(engine)

    # a write block that outlasts the retries: dead-lettered with the reason, replayable
    index = _backing_index(engine, stream)
    engine.request("PUT", f"/{index}/_settings", body={"index.blocks.write": True})
    blocked = tmp_path / "blocked.ndjson"
    blocked.write_text("".join(kpi(100 + i) + "\n" for i in range(10)))
    try:
        late = ingest_file(engine, blocked, kind=kind, namespace=namespace, refresh=True,
                           retry_for=1.0)
    finally:
        engine.request("PUT", f"/{index}/_settings", body={"index.blocks.write": None})
    assert (late.indexed, late.dead_lettered) == (0, 10)
    assert any("cluster_block_exception" in r for r in late.reasons)
    total, _, reasons = list_deadletters(engine, stream=stream)
    assert total == len(dead) + 10 and reasons

    first = replay_deadletters(engine, stream=stream)
    assert first.considered == total and first.replayed >= 10
    assert first.not_replayable >= 1  # the over-deep line stays where it is
    second = replay_deadletters(engine, stream=stream)
    assert second.replayed == 0 and second.considered == total - first.replayed
    engine.refresh(stream)
    assert engine.count(stream) == report.indexed + first.replayed  # nothing stored twice
    assert_pressure_released(engine)


@pytest.mark.timeout(60)
def test_counters_add_up_with_a_full_queue_and_memory_bound(tmp_path: Path) -> None:
    """Drops are counted once, where they happen, and logged (rate-limited)."""
    release = threading.Event()

    class Slow:
        def encode(self, kind: str, doc: Any) -> bytes:
            return b'{"create":{}}\n' + json.dumps(doc).encode() + b"\n"

        def send(self, records: Any) -> SendResult:
            release.wait(10)
            return SendResult(ok=len(records))

        def deadletter(self, failure: Any, clock: Any) -> None:
            return None

        def close(self) -> None:
            release.set()

    shipper = Shipper(Slow(), use_spool=False, max_queue=1_000, batch_size=100,
                      max_memory_bytes=20_000, flush_interval=0.01, senders=1,
                      stats_interval=None)
    accepted = sum(shipper.submit(names.LOGS, {"i": i}) for i in range(20_000))
    time.sleep(0.5)
    release.set()
    assert shipper.flush(30)
    c = shipper.counters
    assert c.enqueued == accepted and c.rejected == 20_000 - accepted
    assert c.sent + c.dropped == accepted, c
    assert_counters_add_up(c)
    shipper.close()


@pytest.mark.timeout(90)
def test_deadletter_cli_lists_and_replays(engine: Any, namespace: str, tmp_path: Path) -> None:
    """End to end through the CLI: ``logsight ingest`` with a blocked stream dead-letters the
    lines with the reason; ``deadletter list`` shows them, ``deadletter replay`` delivers them
    once the block is gone, and a second replay has nothing left to do."""
    from click.testing import CliRunner

    from logsight.cli import main

    stream = names.stream(names.LOGS, namespace)
    good = tmp_path / "first.log"
    good.write_text("2024-05-01T10:00:00Z INFO first line\n")
    runner = CliRunner()
    args = ["--url", engine.url, "--namespace", namespace, "--service", "faults"]
    first = runner.invoke(main, ["ingest", str(good), *args, "--json"])
    assert first.exit_code == 0, first.output
    index = _backing_index(engine, stream)
    engine.request("PUT", f"/{index}/_settings", body={"index.blocks.write": True})
    blocked = tmp_path / "blocked.log"
    blocked.write_text("".join(f"2024-05-01T10:00:0{i}Z INFO line {i}\n" for i in range(5)))
    try:
        out = runner.invoke(main, ["ingest", str(blocked), *args, "--retry-for", "0.5",
                                   "--json"])
    finally:
        engine.request("PUT", f"/{index}/_settings", body={"index.blocks.write": None})
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["dead_lettered"] == 5
    listed = runner.invoke(main, ["deadletter", "list", "--url", engine.url, "--stream", stream,
                                  "--json"])
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.output)
    assert body["total"] == 5 and all(d["replayable"] for d in body["dead_letters"])
    assert any("cluster_block_exception" in r for r in body["reasons"])
    replay = runner.invoke(main, ["deadletter", "replay", "--url", engine.url, "--stream",
                                  stream, "--json"])
    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.output)["replayed"] == 5
    again = runner.invoke(main, ["deadletter", "replay", "--url", engine.url, "--stream",
                                 stream])
    assert again.exit_code == 0 and again.output.startswith("0 dead letter(s)"), again.output
    engine.refresh(stream)
    assert engine.count(stream) == 6
    hits = engine.search(stream, {"size": 10, "query": {"match": {"message": "line"}}})
    # replayed as they were sent: parsed by the pipeline, with the --service given
    assert {h["_source"]["service"]["name"] for h in hits["hits"]["hits"]} == {"faults"}
    assert_pressure_released(engine)
