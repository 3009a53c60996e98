"""The shipper against the real engine: outage and restart without loss or duplicates, the
spool across processes, bounded memory while the cluster is down, dead letters."""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logsight
from logsight import names
from logsight.shipper import BulkTransport, Shipper, Spool, SpoolLocked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dead_url() -> str:
    return f"http://127.0.0.1:{_free_port()}"  # nothing listens there: the cluster is "down"


def _record(i: int) -> bytes:
    return (b'{"create":{"_index":"logs-logsight-x","_id":"%d"}}\n{"n":%d}\n' % (i, i))


def _ids_in(engine: Any, index: str) -> collections.Counter[str]:
    engine.refresh(index)
    return collections.Counter(
        h["_source"]["event"]["id"] for h in engine.scan(index, source=["event.id"]))


# -- spool ---------------------------------------------------------------------------------
def test_spool_replays_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200, fsync="never")
    for start in range(0, 30, 5):
        assert spool.append([_record(i) for i in range(start, start + 5)]) == 5
    assert spool.pending_records == 30
    seen: list[int] = []
    while True:
        records, token = spool.read(7, 1 << 20)
        if not records:
            break
        seen += [json.loads(r.split(b"\n")[1])["n"] for r in records]
        assert token is not None
        spool.commit(token)
    assert seen == list(range(30))
    assert spool.empty and spool.pending_bytes == 0
    assert not list(tmp_path.glob("*.ndjson"))
    spool.close()


def test_spool_resumes_from_cursor_and_skips_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([_record(i) for i in range(10)])
    records, token = spool.read(4, 1 << 20)
    assert token is not None
    spool.commit(token)
    spool.close()
    segment = next(tmp_path.glob("*.ndjson"))
    with open(segment, "ab") as f:  # a crash in the middle of a write
        f.write(b'{"create":{"_index":"logs-logsight-x","_id":"torn"}}\n{"n":')
    again = Spool(tmp_path)
    assert again.pending_records == 6
    records, token = again.read(100, 1 << 20)
    assert [json.loads(r.split(b"\n")[1])["n"] for r in records] == list(range(4, 10))
    assert token is not None
    again.commit(token)
    again.append([_record(99)])  # new records go to a new segment, after the torn one
    records, token = again.read(100, 1 << 20)
    assert [json.loads(r.split(b"\n")[1])["n"] for r in records] == [99]
    again.close()


def _numbers(records: list[bytes]) -> list[int]:
    return [json.loads(r.split(b"\n")[1])["n"] for r in records]


def test_spool_read_ahead_commits_only_a_contiguous_prefix(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([_record(i) for i in range(9)])
    reads = [spool.read(3, 1 << 20) for _ in range(3)]  # three senders in flight
    assert [_numbers(r) for r, _ in reads] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert not spool.unread
    spool.commit(reads[2][1])  # type: ignore[arg-type]  # read returned a token
    assert spool.pending_records == 9  # the oldest read is not acknowledged yet
    spool.close()
    again = Spool(tmp_path)  # a crash now re-sends everything from the durable cursor
    assert again.pending_records == 9
    first, t1 = again.read(3, 1 << 20)
    second, t2 = again.read(3, 1 << 20)
    assert t1 is not None and t2 is not None
    again.commit(t2)
    again.rewind()  # the first send failed: read again from the cursor
    again.commit(t1)  # a commit from before the rewind is stale and ignored
    assert again.pending_records == 9
    replay, t3 = again.read(100, 1 << 20)
    assert _numbers(replay) == list(range(9)) and t3 is not None
    again.commit(t3)
    assert again.empty and not list(tmp_path.glob("*.ndjson"))
    again.close()


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    ops=st.lists(st.sampled_from(["read", "commit_first", "commit_last", "rewind",
                                  "reopen", "append"]), max_size=30),
    segment_bytes=st.sampled_from([120, 400, 1 << 20]),
)
def test_spool_property_every_record_is_delivered(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int], ops: list[str],
    segment_bytes: int,
) -> None:
    """Whatever the interleaving of reads, out-of-order commits, rewinds and restarts, every
    appended record is delivered at least once, and a drained spool is empty on reopening."""
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, segment_bytes=segment_bytes, fsync="never")
    appended: list[int] = []
    delivered: set[int] = set()
    n = 0

    def append(k: int) -> None:
        nonlocal n
        spool.append([_record(i) for i in range(n, n + k)])
        appended.extend(range(n, n + k))
        n += k

    for k in batches:
        append(k)
    in_flight: list[tuple[list[bytes], Any]] = []
    for op in ops:
        if op == "read":
            records, token = spool.read(3, 1 << 20)
            if token is not None:
                in_flight.append((records, token))
        elif op.startswith("commit") and in_flight:
            records, token = in_flight.pop(0 if op == "commit_first" else -1)
            delivered.update(_numbers(records))
            spool.commit(token)
        elif op == "rewind":
            spool.rewind()
            in_flight.clear()
        elif op == "reopen":
            spool.close()
            spool = Spool(directory, segment_bytes=segment_bytes, fsync="never")
            in_flight.clear()
        elif op == "append":
            append(2)
    for records, token in in_flight:  # the senders still busy finish
        delivered.update(_numbers(records))
        spool.commit(token)
    while True:
        records, token = spool.read(4, 1 << 20)
        if token is None:
            break
        delivered.update(_numbers(records))
        spool.commit(token)
    assert set(appended) <= delivered
    assert spool.empty
    spool.close()
    reopened = Spool(directory, fsync="never")
    assert reopened.empty and reopened.read(10, 1 << 20) == ([], None)
    reopened.close()


def test_spool_reading_on_into_a_newer_segment_keeps_its_records_unread(
        tmp_path: Path) -> None:
    """Regression: reading an older segment to its end and on into the next one used to reset
    the pending count to what was in flight, so later records looked delivered (flush said
    yes) and were never sent."""
    spool = Spool(tmp_path, segment_bytes=200, fsync="never")
    spool.append([_record(i) for i in range(5)])  # segment 1
    spool.append([_record(i) for i in range(5, 10)])  # segment 1 is full: segment 2
    first = spool.read(5, 1 << 20)
    second = spool.read(5, 1 << 20)  # segment 1 exhausted: on into segment 2
    assert spool.pending_records == 10
    spool.append([_record(i) for i in range(10, 15)])
    assert spool.unread
    delivered = [*first[0], *second[0]]
    tokens = [first[1], second[1]]
    while spool.unread:
        records, token = spool.read(4, 1 << 20)
        delivered += records
        tokens.append(token)
    for token in tokens:
        spool.commit(token)  # type: ignore[arg-type]  # every read above returned records
    assert sorted(delivered) == sorted(_record(i) for i in range(15))
    assert spool.empty
    spool.close()


def test_spool_is_owned_by_one_process_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    code = f"from logsight.shipper import Spool; Spool({str(tmp_path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "SpoolLocked" in proc.stderr
    spool.close()
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, fsync="sometimes")  # type: ignore[arg-type]  # the bad value on purpose
    assert SpoolLocked.__doc__


def test_spool_refuses_beyond_its_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=len(_record(1)) * 3)
    assert spool.append([_record(i) for i in range(5)]) == 3
    spool.close()


# -- shipper while the cluster is down -------------------------------------------------------
def test_memory_stays_bounded_while_the_cluster_is_down(tmp_path: Path) -> None:
    shipper = Shipper(BulkTransport(_dead_url(), connect_timeout=0.5), spool_dir=tmp_path,
                      batch_size=200, flush_interval=0.05, max_queue=5_000,
                      max_memory_bytes=64 * 1024, backoff_max=0.5, random_state=0)
    from logsight.adapters.structlog import make_logger
    from logsight.ecs import Service

    log = make_logger(shipper.submit, Service("down"), "bounded")
    n = 0
    peak_memory = 0
    for _burst in range(20):
        for _ in range(1_000):
            log.info("while down", payload="x" * 200, n=n)
            n += 1
        shipper.flush(timeout=0.5, give_up_if_down=True)  # the pump spills; nothing delivered
        c = shipper.counters
        peak_memory = max(peak_memory, c.pending_memory_bytes)
        assert c.queued <= shipper.max_queue
    assert not shipper.flush(timeout=30, give_up_if_down=True)
    c = shipper.counters
    assert c.sent == 0 and c.dropped == 0
    assert c.enqueued == n
    assert c.queued == 0 and c.pending_memory_bytes == 0  # all on disk
    assert c.spool_records == n and c.spooled == n
    assert peak_memory <= shipper.max_memory_bytes
    assert c.spool_bytes == sum(p.stat().st_size for p in tmp_path.glob("*.ndjson"))
    shipper.close(timeout=1)


def test_configure_comes_up_with_the_cluster_down(tmp_path: Path) -> None:
    ls = logsight.configure("nobody", _dead_url(), spool_dir=tmp_path, flush_interval=0.05,
                            backoff_max=0.2)
    ls.logger("x").info("queued while down")
    assert not ls.flush(timeout=30, give_up_if_down=True)
    assert ls.counters.spool_records == 1
    assert not ls.close(timeout=0.5)


def test_a_forked_child_leaves_the_parents_spool_alone(tmp_path: Path) -> None:
    """A child that exits without logging (its exit hook closes the shipper) neither writes
    to nor unlocks the parent's spool, and the parent's shipper keeps working."""
    ls = logsight.configure("fork-idle", _dead_url(), spool_dir=tmp_path / "spool",
                            flush_interval=0.05)
    log = ls.logger("parent")
    log.info("before fork")
    assert not ls.flush(5, give_up_if_down=True)  # the cluster is down: spooled
    segments = {p.name: p.stat().st_size for p in (tmp_path / "spool").glob("*.ndjson")}
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if ls.close(timeout=2) and ls.shipper.spool is None else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(SpoolLocked):  # still the parent's
        Spool(tmp_path / "spool")
    assert {p.name: p.stat().st_size
            for p in (tmp_path / "spool").glob("*.ndjson")} == segments
    log.info("after fork")
    assert not ls.flush(5, give_up_if_down=True)
    assert ls.counters.spool_records == 2
    ls.close(timeout=1)


# -- against the real engine ----------------------------------------------------------------
@pytest.mark.engine
def test_spool_survives_a_process_restart(engine: Any, namespace: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    code = textwrap.dedent(f"""
        import logsight
        ls = logsight.configure("restart-svc", {_dead_url()!r}, namespace={namespace!r},
                                spool_dir={str(spool)!r}, flush_interval=0.05)
        log = ls.logger("first-process")
        for i in range(500):
            log.info("spooled", i=i)
        # the interpreter's exit flushes (atexit): the cluster is down, so all is spooled
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": "src"})
    assert proc.returncode == 0, proc.stderr
    left = Spool(spool)
    assert left.pending_records == 500
    left.close()

    ls = logsight.configure("restart-svc", engine.url, namespace=namespace, spool_dir=spool,
                            flush_interval=0.05)
    assert ls.flush(timeout=60)
    ids = _ids_in(engine, names.stream(names.LOGS, namespace))
    assert len(ids) == 500 and set(ids.values()) == {1}
    assert ls.counters.sent == 500
    ls.close()


@pytest.mark.engine
def test_replayed_events_are_not_duplicated(engine: Any, namespace: str, tmp_path: Path) -> None:
    transport = BulkTransport(engine.url, namespace=namespace)
    records = [transport.encode(names.LOGS, {"@timestamp": "2024-01-01T00:00:00.000Z",
                                             "message": f"m{i}", "event.id": f"{namespace}-{i}"})
               for i in range(50)]
    first = transport.send(records)
    assert first.ok == 50
    # a crash after the cluster acknowledged but before the cursor moved: sent again
    spool = Spool(tmp_path)
    spool.append(records)
    spool.close()
    shipper = Shipper(BulkTransport(engine.url, namespace=namespace), spool_dir=tmp_path,
                      flush_interval=0.05)
    assert shipper.flush(timeout=30)
    c = shipper.counters
    assert c.duplicates == 50 and c.sent == 0
    ids = _ids_in(engine, names.stream(names.LOGS, namespace))
    assert len(ids) == 50 and set(ids.values()) == {1}
    shipper.close()
    transport.close()


@pytest.mark.engine
def test_mapping_conflicts_go_to_the_dead_letter_index(engine: Any, namespace: str,
                                                       tmp_path: Path) -> None:
    ls = logsight.configure("dlq-" + namespace, engine.url, namespace=namespace,
                            spool_dir=tmp_path, flush_interval=0.05)
    log = ls.logger("dlq")
    # A value of another type is only ignored (the index template sets ignore_malformed);
    # a concrete value where an object is mapped is still refused by the engine.
    log.info("typed", quantity={"unit": "kg"})
    assert ls.flush(30)
    log.info("conflict", quantity=5)  # quantity is an object now
    assert ls.flush(30)
    c = ls.counters
    # each event counted once: one stored in its stream, one in the dead-letter index
    assert c.sent == 1 and c.dead_lettered == 1 and c.accounted == c.received == 2
    engine.refresh(names.DEADLETTER_INDEX)
    hits = engine.search(names.DEADLETTER_INDEX, {"query": {"term": {
        "failure.stream": names.stream(names.LOGS, namespace)}}})["hits"]["hits"]
    assert len(hits) == 1
    dead = hits[0]["_source"]
    assert dead["original"]["message"] == "conflict"
    assert "quantity" in dead["failure"]["message"]
    assert dead["failure"]["tag"] == "mapper_parsing_exception"
    ls.close()


# The engine stopped and started mid-stream (a node of the test's own): see
# tests/test_faults_outage.py::test_engine_stopped_and_started_mid_stream.


@pytest.mark.engine
def test_lone_surrogates_are_stored_not_refused(engine: Any, namespace: str,
                                                tmp_path: Path) -> None:
    """A lone surrogate (from a bad decode upstream) must not reach the cluster as invalid
    UTF-8: the event is stored, with ``?`` in its place, not dead-lettered."""
    ls = logsight.configure("surrogate-" + namespace, engine.url, namespace=namespace,
                            spool_dir=tmp_path, flush_interval=0.05)
    log = ls.logger("surrogates")
    log.info("half a pair \ud83d here", detail="x\udc00y")
    assert ls.flush(30)
    c = ls.counters
    assert c.sent == 1 and c.dead_lettered == 0 and c.dropped == 0
    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    (hit,) = list(engine.scan(index))
    assert hit["_source"]["message"] == "half a pair ? here"
    assert hit["_source"]["detail"] == "x?y"
    ls.close()


@pytest.mark.engine
def test_documents_without_an_id_get_distinct_stable_ids(engine: Any, namespace: str) -> None:
    transport = BulkTransport(engine.url, namespace=namespace)
    records = [transport.encode(names.LOGS, {"@timestamp": "2024-01-01T00:00:00.000Z",
                                             "message": f"m{i}"}) for i in range(20)]
    ids = {json.loads(r.split(b"\n")[0])["create"]["_id"] for r in records}
    assert len(ids) == 20
    assert transport.send(records).ok == 20
    assert transport.send(records).duplicates == 20  # the record (id included) is what replays
    assert set(_ids_in(engine, names.stream(names.LOGS, namespace))) == ids  # in _source too
    transport.close()


@pytest.mark.engine
def test_a_forked_child_ships_on_its_own(engine: Any, namespace: str, tmp_path: Path) -> None:
    """A pre-fork server forks after configure(): the child logs and flushes through threads,
    a connection and a spool of its own, with ids of its own; the parent carries on."""
    ls = logsight.configure("fork-" + namespace, engine.url, namespace=namespace,
                            spool_dir=tmp_path / "spool", flush_interval=0.05)
    log = ls.logger("prefork")
    for i in range(5):
        log.info("parent before fork", i=i)
    assert ls.flush(30)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            for i in range(20):
                log.info("child event", i=i, child_pid=os.getpid())
            ok = ls.flush(30)
            spool = ls.shipper.spool
            report = {"ok": ok, "counters": ls.counters.as_dict(),
                      "spool": str(spool.directory) if spool else None}
            os.write(w, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        child = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child["ok"] and child["counters"]["sent"] == 20
    assert child["counters"]["enqueued"] == 20  # none of the parent's events were re-sent
    assert child["spool"] != str(tmp_path / "spool")  # the parent keeps its own spool
    for i in range(5):
        log.info("parent after fork", i=i)
    assert ls.flush(30)
    assert ls.counters.sent == 10

    index = names.stream(names.LOGS, namespace)
    engine.refresh(index)
    hits = [h["_source"] for h in engine.scan(index)]
    by_message = collections.Counter(h["message"] for h in hits)
    assert by_message == {"parent before fork": 5, "child event": 20, "parent after fork": 5}
    ids = collections.Counter(h["event"]["id"] for h in hits)
    assert len(ids) == 30 and set(ids.values()) == {1}
    assert {h["child_pid"] for h in hits if h["message"] == "child event"} == {pid}
    ls.close()


@pytest.mark.engine
def test_spilling_through_many_segments_delivers_everything(engine: Any, namespace: str,
                                                            tmp_path: Path) -> None:
    """Producers faster than the sender: batches spill to the spool across many small
    segments while senders read ahead; every event arrives exactly once and flush only says
    so when it is true."""
    ls = logsight.configure("spill-" + namespace, engine.url, namespace=namespace,
                            spool_dir=tmp_path, flush_interval=0.01, batch_size=50,
                            max_memory_bytes=2_000, spool_segment_bytes=4_096, fsync="never",
                            max_queue=100_000)
    log = ls.logger("spill")
    n = 5_000
    for i in range(n):
        log.info("spill", i=i)
    assert ls.flush(120)
    c = ls.counters
    assert c.spooled > 0 and c.sent == n and c.spool_records == 0 and c.spool_bytes == 0
    ids = _ids_in(engine, names.stream(names.LOGS, namespace))
    assert len(ids) == n and set(ids.values()) == {1}
    ls.close()


# -- review regressions (fake transports: the failure is the point, not the cluster) --------
from logsight.shipper import FileTransport  # noqa: E402  # grouped with the tests using it
from logsight.shipper.transport import (  # noqa: E402  # grouped with the tests using them
    ItemFailure,
    SendResult,
    Unavailable,
    is_deadletter,
)


class _Scripted:
    """A transport answering from a script of callables, then ``ok`` for everything."""

    def __init__(self, *script: Any, block: threading.Event | None = None) -> None:
        self.script = list(script)
        self.calls: list[list[bytes]] = []
        self.entered = threading.Event()
        self.block = block
        self.lock = threading.Lock()

    def encode(self, kind: str, doc: Any) -> bytes:
        return _record(int(doc["n"]))

    def send(self, records: Any) -> SendResult:
        with self.lock:
            self.calls.append(list(records))
            step = self.script.pop(0) if self.script else None
        self.entered.set()
        if self.block is not None:
            self.block.wait()
        if step is not None:
            return step(list(records))  # type: ignore[no-any-return]  # scripted answer
        dead = sum(1 for r in records if is_deadletter(r))  # as BulkTransport reports them
        return SendResult(ok=len(records) - dead, dead_lettered=dead)

    def deadletter(self, failure: ItemFailure, clock: Any) -> bytes | None:
        return (b'{"create":{"_index":"logsight-deadletter","_id":"d"}}\n{"dead":%s}\n'
                % failure.record.split(b"\n")[1])

    def close(self) -> None:
        pass


def _prefill(path: Path, n: int) -> None:
    spool = Spool(path, fsync="never")
    spool.append([_record(i) for i in range(n)])
    spool.close()


def _durable_after_cursor(path: Path) -> list[bytes]:
    """Records on disk from the durable cursor on (what a crash now would replay)."""
    cursor = json.loads((path / "cursor.json").read_text()) if (path / "cursor.json").exists() \
        else None
    if cursor is not None and cursor.get("segment") is None:  # "nothing to resume"
        cursor = None
    out: list[bytes] = []
    for seg in sorted(p.name for p in path.glob("*.ndjson")):
        data = (path / seg).read_bytes()
        if cursor is not None and seg < cursor["segment"]:
            continue
        if cursor is not None and seg == cursor["segment"]:
            data = data[cursor["offset"]:]
        lines = data.split(b"\n")
        out += [lines[i] + b"\n" + lines[i + 1] + b"\n" for i in range(0, len(lines) - 1, 2)]
    return out


def test_close_stops_busy_senders_and_never_closes_the_spool_under_them(tmp_path: Path) -> None:
    _prefill(tmp_path, 200)
    release = threading.Event()
    transport = _Scripted(block=release)
    shipper = Shipper(transport, spool_dir=tmp_path, batch_size=1, senders=3,
                      flush_interval=0.01, stats_interval=None, fsync="never")
    transport.entered.wait(10)
    assert not shipper.close(timeout=0.1)  # every sender is stuck in its request
    assert shipper.spool is not None and shipper.spool._lock_fd >= 0  # left open under them
    release.set()
    for t in shipper._senders:
        t.join(10)
        assert not t.is_alive()
    # each sender finished its request in flight and then stopped: the rest stays spooled
    assert len(transport.calls) == 3
    assert shipper.spool.pending_records == 200 - 3
    shipper.spool.close()
    assert Spool(tmp_path).pending_records == 200 - 3


def test_retries_and_dead_letters_from_the_spool_are_durable_before_the_commit(
        tmp_path: Path) -> None:
    _prefill(tmp_path, 10)
    release = threading.Event()

    def partial(records: list[bytes]) -> SendResult:
        # set from inside the first request (not after the Shipper starts, which races with
        # it): every later request waits, so the disk can be inspected meanwhile
        transport.block = release
        return SendResult(ok=8, retry=[records[9]],
                          failed=[ItemFailure(records[8], 400, "mapper", "bad")])

    transport = _Scripted(partial)
    shipper = Shipper(transport, spool_dir=tmp_path, batch_size=100, senders=1,
                      flush_interval=0.01, backoff_initial=0.01, backoff_max=0.02,
                      stats_interval=None, fsync="never")
    deadline = time.monotonic() + 30
    while len(transport.calls) < 2:
        assert time.monotonic() < deadline, transport.calls
        time.sleep(0.01)
    on_disk = _durable_after_cursor(tmp_path)
    assert _record(9) in on_disk  # the retry survives a crash now
    assert any(b'{"dead":{"n":8}}' in r for r in on_disk)  # and so does the dead letter
    assert not any(_record(i) in on_disk for i in range(8))  # delivered: behind the cursor
    release.set()
    assert shipper.flush(10)
    c = shipper.counters
    assert (c.sent, c.retried, c.dead_lettered, c.dropped) == (8 + 1, 1, 1, 0)
    assert c.recovered == 10 and c.accounted == c.received  # each event in one place
    shipper.close()


@pytest.mark.parametrize("use_spool", [True, False])
def test_an_unexpected_error_in_send_keeps_the_batch(tmp_path: Path, use_spool: bool) -> None:
    def boom(records: list[bytes]) -> SendResult:
        raise RuntimeError("a bug in the transport")

    transport = _Scripted(boom)
    if use_spool:
        _prefill(tmp_path, 20)
    shipper = Shipper(transport, spool_dir=tmp_path, use_spool=use_spool, batch_size=100,
                      senders=1, flush_interval=0.01, backoff_initial=0.01, backoff_max=0.02,
                      stats_interval=None, fsync="never")
    if not use_spool:
        for i in range(20):
            shipper.submit("logs", {"n": i})
    assert shipper.flush(10)  # neither lost nor blocking the spool
    assert shipper.counters.sent == 20
    delivered = [r for call in transport.calls[1:] for r in call]
    assert sorted(delivered) == sorted(_record(i) for i in range(20))
    shipper.close()


def test_a_failing_spool_write_keeps_the_batch_in_memory(tmp_path: Path) -> None:
    def down(records: list[bytes]) -> SendResult:
        raise Unavailable("down")

    transport = _Scripted(*([down] * 1000))
    shipper = Shipper(transport, spool_dir=tmp_path, batch_size=5, senders=1,
                      flush_interval=0.01, backoff_initial=10, backoff_max=10,
                      stats_interval=None, fsync="never")
    assert shipper.spool is not None

    def disk_full(records: Any) -> int:
        raise OSError(28, "No space left on device")

    shipper.spool.append = disk_full  # type: ignore[method-assign]  # a full disk, simulated
    for i in range(20):
        shipper.submit("logs", {"n": i})
    assert not shipper.flush(2, give_up_if_down=True)
    c = shipper.counters
    assert c.spool_errors > 0 and c.dropped == 0 and c.spooled == 0
    assert c.pending_memory_bytes == sum(len(_record(i)) for i in range(20))
    shipper.close(timeout=0.1)
    assert shipper.counters.dropped == 20  # nowhere to keep them at close: counted


def test_spool_close_twice_is_safe(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([_record(1)])
    spool.close()
    assert spool._lock_fd == -1
    spool.close()
    assert Spool(tmp_path).pending_records == 1  # the lock was released


@pytest.mark.engine
def test_concurrent_connects_share_one_engine(engine: Any) -> None:
    transport = BulkTransport(engine.url)
    barrier = threading.Barrier(8)
    got: list[Any] = []

    def connect() -> None:
        barrier.wait()
        got.append(transport._connect())

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(e is got[0] for e in got)
    transport.close()


def test_file_transport_keeps_each_batch_together() -> None:
    class SlowWriter:  # writes line by line, yielding the GIL between lines
        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.writes: list[tuple[int, list[bytes]]] = []

        def write(self, data: bytes) -> int:
            chunk = data.splitlines()
            self.writes.append((len(self.lines), chunk))
            for line in chunk:
                self.lines.append(line)
                time.sleep(0)
            return len(data)

        def flush(self) -> None:
            pass

    out = SlowWriter()
    transport = FileTransport(out)  # type: ignore[arg-type]  # a binary writer, duck-typed
    batches = [[_record(b * 50 + i) for i in range(50)] for b in range(16)]
    threads = [threading.Thread(target=transport.send, args=(batch,)) for batch in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out.lines) == 16 * 50
    for start, chunk in out.writes:
        assert out.lines[start:start + len(chunk)] == chunk


class _Blocked:
    """A transport whose send waits until released: the queue fills, nothing is lost to I/O."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def encode(self, kind: str, doc: Any) -> bytes:
        return b"{}\n" + json.dumps(dict(doc)).encode() + b"\n"

    def send(self, records: Any) -> Any:
        from logsight.shipper import SendResult

        self.release.wait(10)
        return SendResult(ok=len(records))

    def deadletter(self, failure: Any, clock: Any) -> None:
        return None

    def close(self) -> None:
        self.release.set()


def test_dropped_events_are_warned_about_rate_limited_and_summarised(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    transport = _Blocked()
    shipper = Shipper(transport, use_spool=False, max_queue=5, flush_interval=30,
                      batch_size=1000, monotonic=lambda: now[0])
    caplog.set_level("WARNING", logger="logsight.shipper")
    accepted = sum(shipper.submit(names.LOGS, {"i": i}) for i in range(20))
    assert accepted == 5
    warnings = [r for r in caplog.records if "dropped since the last warning" in r.getMessage()]
    assert len(warnings) == 1  # the first drop, then nothing within the interval
    now[0] += 11.0
    shipper.submit(names.LOGS, {"i": 99})
    warnings = [r for r in caplog.records if "dropped since the last warning" in r.getMessage()]
    assert len(warnings) == 2 and "16 in all" in warnings[1].getMessage()
    transport.release.set()
    shipper.close(5)
    summary = [r for r in caplog.records if "event(s) were dropped" in r.getMessage()]
    assert len(summary) == 1 and " 16 event(s)" in summary[0].getMessage()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sink": 123}, "sink must be"),
    ({"url": "not a url"}, "url must be"),
    ({"url": "ftp://host"}, "url must be"),
    ({"url": "http://host:notaport"}, "url must be"),
    ({"resource_metrics": -1}, "resource_metrics must be"),
    ({"max_memory_bytes": 0}, "max_memory_bytes must be"),
    ({"spool_max_bytes": -5}, "spool_max_bytes must be"),
    ({"fsync": "sometimes"}, "fsync must be"),
])
def test_configure_rejects_bad_values_and_leaves_nothing_running(
        tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    threads = {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError, match=match):
        logsight.configure("badcfg", spool_dir=tmp_path / "s", **kwargs)
    leaked = {t.name for t in threading.enumerate()} - threads
    assert not {t for t in leaked if t.startswith("logsight-")}
    spool = Spool(tmp_path / "s")  # not held by a half-started shipper
    spool.close()


def test_a_failing_configure_step_closes_its_shipper(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from logsight import api

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("sampler failed")

    monkeypatch.setattr(api.Logsight, "start_resource_metrics", broken)
    with pytest.raises(RuntimeError, match="sampler failed"):
        logsight.configure("halfstart", spool_dir=tmp_path / "s", resource_metrics=True)
    monkeypatch.undo()
    ls = logsight.configure("halfstart", spool_dir=tmp_path / "s")
    assert ls.shipper.spool is not None and ls.shipper.spool.directory == tmp_path / "s"  # not "-1"
    ls.close()
