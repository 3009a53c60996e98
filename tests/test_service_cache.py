"""The result cache of the read-only analysis routes: hits return the same body, any other
parameter misses, entries expire on the injected clock (past windows later), concurrent
identical requests run the analysis once, failures are never stored, and cheap routes answer
while an analysis holds the analysis pool. The analysis is the real one over seeded spans,
counted through create_app's ``runner``."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight import names
from logsight.engine import Engine, EngineUnavailable, connect
from logsight.errors import BadRequest
from logsight.findings import Finding
from logsight.jobs import JobParams as Params
from logsight.jobs import JobResult, run_job
from logsight.service import ServiceSettings, create_app
from logsight.service.app import times_key
from logsight.service.cache import ResultCache

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class EmptyResult:
    """A job result with nothing in it (for runners that stand in for the analysis)."""

    findings: list[Finding] = []

    def rows(self) -> list[dict[str, Any]]:
        return []


Result = JobResult


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingRunner:
    """The real analysis, counted; ``hold`` runs first (in the worker thread), ``fail`` is
    raised by the first ``fail_times`` calls instead of analysing."""

    def __init__(self, *, hold: Callable[[], None] | None = None,
                 fail: Exception | None = None, fail_times: int = 0) -> None:
        self.calls: list[tuple[str, Params]] = []
        self._lock = threading.Lock()
        self._hold = hold
        self._fail = fail
        self._fail_times = fail_times

    def __call__(self, engine: Engine, kind: str, params: Params) -> Result:
        with self._lock:
            self.calls.append((kind, params))
            failing = self._fail is not None and len(self.calls) <= self._fail_times
        if self._hold is not None:
            self._hold()
        if failing:
            assert self._fail is not None
            raise self._fail
        return run_job(engine, kind, params)


def wait_until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Block (a worker thread) until ``condition``; a bound, not a measured time."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def spans(engine: Engine) -> dict[str, str]:
    """20 traces GET /predict (100 ms): feature.fetch 5..25 ms, db.query 25..95 ms."""
    ns = "t" + uuid.uuid4().hex[:12]
    svc = f"cache-{ns}"
    index = names.stream(names.TRACES, ns)
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in range(20):
        t0 = NOW - timedelta(minutes=30) + timedelta(seconds=30 * i)
        base = int(t0.timestamp() * 1e9)
        trace, root = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        for sid, parent, op, kind, a, b in (
            (root, None, "GET /predict", "server", 0, 100),
            (uuid.uuid4().hex[:16], root, "feature.fetch", "client", 5, 25),
            (uuid.uuid4().hex[:16], root, "db.query", "client", 25, 95),
        ):
            doc: dict[str, Any] = {
                "@timestamp": _iso(t0 + timedelta(milliseconds=a)), "trace.id": trace,
                "span.id": sid, "service.name": svc, "span.name": op, "span.kind": kind,
                "span.start_unix_nano": base + a * 1_000_000,
                "span.end_unix_nano": base + b * 1_000_000, "span.status": "ok",
            }
            if parent:
                doc["parent.id"] = parent
            actions.append(({"create": {"_index": index, "_id": sid}}, doc))
    assert not engine.bulk(actions, refresh=True).errors
    return {"ns": ns, "service": svc}


def make_app(engine: Engine, runner: CountingRunner, clock: FakeClock | None = None,
             **settings_: Any) -> FastAPI:
    cfg = ServiceSettings(**{"auth": False, **settings_})
    return create_app(lambda: connect(engine.url), cfg, clock=clock or FakeClock(NOW),
                      runner=runner)


@pytest.fixture
def runner() -> CountingRunner:
    return CountingRunner()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def client(engine: Engine, runner: CountingRunner, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(make_app(engine, runner, clock)) as c:
        yield c


def bottlenecks(c: TestClient, spans: dict[str, str], **params: Any) -> httpx.Response:
    q = {"service": spans["service"], "namespace": spans["ns"], "from": "1h", **params}
    return c.get("/v1/bottlenecks", params=q)


# -- hits and misses -------------------------------------------------------------------------
@pytest.mark.engine
def test_hit_returns_the_same_body_with_the_hit_header(
        client: TestClient, runner: CountingRunner, spans: dict[str, str]) -> None:
    first = bottlenecks(client, spans, top=2)
    assert first.status_code == 200, first.text
    assert first.headers["X-Logsight-Cache"] == "miss"
    assert first.headers["Cache-Control"] == "private, max-age=30"
    assert [r["operation"] for r in first.json()["bottlenecks"]] == ["db.query",
                                                                     "feature.fetch"]
    again = bottlenecks(client, spans, top=2)
    assert again.status_code == 200
    assert again.headers["X-Logsight-Cache"] == "hit"
    assert again.content == first.content
    # the same window spelled differently is the same question
    spelled = bottlenecks(client, spans, top=2, **{"from": "now-60m", "to": "now"})
    assert spelled.headers["X-Logsight-Cache"] == "hit"
    assert len(runner.calls) == 1


@pytest.mark.engine
@pytest.mark.parametrize("change", [{"top": 3}, {"operation": "GET /predict"}, {"from": "2h"},
                                    {"to": "now-1m"}, {"from": _iso(NOW - timedelta(hours=1))}])
def test_a_different_parameter_is_a_miss(client: TestClient, runner: CountingRunner,
                                         spans: dict[str, str], change: dict[str, Any]) -> None:
    assert bottlenecks(client, spans, top=2).headers["X-Logsight-Cache"] == "miss"
    other = bottlenecks(client, spans, **{"top": 2, **change})
    assert other.status_code == 200, other.text
    assert other.headers["X-Logsight-Cache"] == "miss"
    assert len(runner.calls) == 2


@pytest.mark.engine
def test_every_read_only_analysis_route_is_cached(engine: Engine, runner: CountingRunner,
                                                  spans: dict[str, str]) -> None:
    with TestClient(make_app(engine, runner)) as c:
        for _ in range(2):
            r = c.get("/v1/anomalies", params={"from": "1h", "namespace": spans["ns"]})
            assert r.status_code == 200, r.text
        assert r.headers["X-Logsight-Cache"] == "hit"
        # POST runs (and stores) every time: it is not a read
        for _ in range(2):
            r = c.post("/v1/analyses/bottlenecks", json={
                "from": "1h", "service": spans["service"], "write": False})
            assert r.status_code == 200, r.text
            assert "X-Logsight-Cache" not in r.headers
    assert [k for k, _ in runner.calls] == ["log_anomalies", "bottlenecks", "bottlenecks"]


# -- expiry ----------------------------------------------------------------------------------
@pytest.mark.engine
def test_entries_expire_after_the_ttl(client: TestClient, runner: CountingRunner,
                                      clock: FakeClock, spans: dict[str, str]) -> None:
    assert bottlenecks(client, spans).headers["X-Logsight-Cache"] == "miss"
    clock.advance(29)
    hit = bottlenecks(client, spans)
    assert hit.headers["X-Logsight-Cache"] == "hit"
    assert hit.headers["Age"] == "29"
    assert hit.headers["Cache-Control"] == "private, max-age=1"
    clock.advance(1)
    assert bottlenecks(client, spans).headers["X-Logsight-Cache"] == "miss"
    assert len(runner.calls) == 2


@pytest.mark.engine
def test_past_windows_live_longer_recent_and_future_ones_do_not(
        engine: Engine, runner: CountingRunner, clock: FakeClock,
        spans: dict[str, str]) -> None:
    past = {"from": _iso(NOW - timedelta(hours=1)), "to": _iso(NOW - timedelta(minutes=2))}
    recent = {"from": _iso(NOW - timedelta(hours=1)), "to": _iso(NOW - timedelta(seconds=40))}
    future = {"from": _iso(NOW - timedelta(hours=1)), "to": _iso(NOW + timedelta(minutes=5))}
    with TestClient(make_app(engine, runner, clock, cache_past_ttl=300.0)) as c:
        first = {name: bottlenecks(c, spans, **w) for name, w in
                 (("past", past), ("recent", recent), ("future", future))}
        assert {n: r.status_code for n, r in first.items()} == dict.fromkeys(first, 200)
        assert first["past"].headers["Cache-Control"] == "private, max-age=300"
        assert first["recent"].headers["Cache-Control"] == "private, max-age=30"
        assert first["future"].headers["Cache-Control"] == "private, max-age=30"
        clock.advance(31)
        assert bottlenecks(c, spans, **past).headers["X-Logsight-Cache"] == "hit"
        assert bottlenecks(c, spans, **recent).headers["X-Logsight-Cache"] == "miss"
        assert bottlenecks(c, spans, **future).headers["X-Logsight-Cache"] == "miss"
        clock.advance(300)
        assert bottlenecks(c, spans, **past).headers["X-Logsight-Cache"] == "miss"
    assert len(runner.calls) == 6


@pytest.mark.engine
def test_cache_off_still_answers(engine: Engine, runner: CountingRunner,
                                 spans: dict[str, str]) -> None:
    with TestClient(make_app(engine, runner, cache_size=0)) as c:
        for _ in range(2):
            r = bottlenecks(c, spans)
            assert r.status_code == 200
            assert r.headers["X-Logsight-Cache"] == "miss"
            assert r.headers["Cache-Control"] == "no-store"
    assert len(runner.calls) == 2


# -- single flight ---------------------------------------------------------------------------
async def _concurrently(app: FastAPI, n: int, params: dict[str, Any]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cache.test",
                                 timeout=60) as http:
        return list(await asyncio.gather(*(
            http.get("/v1/bottlenecks", params=params) for _ in range(n))))


@pytest.mark.engine
def test_concurrent_identical_requests_run_the_analysis_once(
        engine: Engine, spans: dict[str, str]) -> None:
    n = 8
    box: dict[str, FastAPI] = {}
    # the one computation waits until the other n-1 requests are waiting for it
    runner = CountingRunner(hold=lambda: wait_until(
        lambda: box["app"].state.cache.stats().joined >= n - 1, "the other requests"))
    app = box["app"] = make_app(engine, runner)
    params = {"service": spans["service"], "namespace": spans["ns"], "from": "1h"}
    answers = asyncio.run(_concurrently(app, n, params))
    assert [r.status_code for r in answers] == [200] * n
    assert len(runner.calls) == 1
    assert len({r.content for r in answers}) == 1
    assert sorted(r.headers["X-Logsight-Cache"] for r in answers) == ["hit"] * (n - 1) + ["miss"]
    stats = app.state.cache.stats()
    assert (stats.misses, stats.joined, stats.entries, stats.in_flight) == (1, n - 1, 1, 0)


@pytest.mark.engine
def test_a_failure_is_shared_by_its_waiters_and_never_stored(
        engine: Engine, spans: dict[str, str]) -> None:
    n = 5
    box: dict[str, FastAPI] = {}
    runner = CountingRunner(
        hold=lambda: wait_until(lambda: box["app"].state.cache.stats().joined >= n - 1,
                                "the other requests"),
        fail=BadRequest("window", "the analysis refused this window"), fail_times=1)
    app = box["app"] = make_app(engine, runner)
    params = {"service": spans["service"], "namespace": spans["ns"], "from": "1h"}
    answers = asyncio.run(_concurrently(app, n, params))
    assert [r.status_code for r in answers] == [400] * n
    assert all("refused this window" in r.json()["message"] for r in answers)
    assert len(runner.calls) == 1
    assert app.state.cache.stats().entries == 0
    with TestClient(app) as c:
        r = c.get("/v1/bottlenecks", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["X-Logsight-Cache"] == "miss"
    assert len(runner.calls) == 2


@pytest.mark.engine
@pytest.mark.parametrize(("error", "status"), [
    (EngineUnavailable(503, "cluster went away"), 503),
    (BadRequest("top", "no such thing"), 400),
])
def test_errors_are_not_cached(engine: Engine, spans: dict[str, str], error: Exception,
                               status: int) -> None:
    runner = CountingRunner(fail=error, fail_times=1)
    with TestClient(make_app(engine, runner)) as c:
        assert bottlenecks(c, spans).status_code == status
        r = bottlenecks(c, spans)
        assert r.status_code == 200, r.text
        assert r.headers["X-Logsight-Cache"] == "miss"
        # unknown services (404) are checked before the analysis and not stored either
        for _ in range(2):
            missing = c.get("/v1/bottlenecks", params={"service": "no-such-" + spans["ns"]})
            assert missing.status_code == 404
        assert c.app.state.cache.stats().entries == 1  # type: ignore[attr-defined]  # FastAPI
    assert len(runner.calls) == 2


# -- the event loop stays free ---------------------------------------------------------------
@pytest.mark.engine
def test_health_and_findings_answer_while_every_analysis_slot_is_busy(
        engine: Engine, spans: dict[str, str]) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(60)

    runner = CountingRunner(hold=hold)
    # a generous slot wait: the second analysis must queue here, not be refused with 503
    app = make_app(engine, runner, analysis_threads=1, analysis_slot_wait=60.0)
    params: dict[str, Any] = {"service": spans["service"], "namespace": spans["ns"],
                              "from": "1h"}

    async def scenario() -> tuple[list[int], list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cache.test",
                                     timeout=60) as http:
            slow = [asyncio.create_task(http.get("/v1/bottlenecks", params=p))
                    for p in (params, {**params, "top": 3})]
            try:
                while not entered.is_set():
                    await asyncio.sleep(0.005)
                cheap = [
                    (await http.get("/health")).status_code,
                    (await http.get("/v1/findings", params={"limit": 1})).status_code,
                    (await http.get("/health")).status_code,
                ]
                # the second analysis waits for the one slot
                assert not any(t.done() for t in slow)
                assert len(runner.calls) == 1
            finally:
                release.set()
            return cheap, list(await asyncio.gather(*slow))

    cheap, done = asyncio.run(scenario())
    assert cheap == [200, 200, 200]
    assert [r.status_code for r in done] == [200, 200]
    assert len(runner.calls) == 2


class SlowRunner:
    """Blocks every analysis until ``release``; counts the analyses running at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.active = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, engine: Engine, kind: str, params: Params) -> Result:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            self.release.wait(60)
            return EmptyResult()
        finally:
            with self._lock:
                self.active -= 1


@pytest.mark.engine
def test_timed_out_analyses_keep_their_slot_until_they_end(engine: Engine) -> None:
    """A timed-out analysis (504) still runs in its abandoned thread and keeps its slot: more
    requests get 503 with Retry-After instead of starting analyses beyond the limit."""
    slow = SlowRunner()
    cfg = ServiceSettings(auth=False, analysis_threads=2, request_timeout=0.5,
                          analysis_slot_wait=0.01, retry_after=7)
    app = create_app(lambda: connect(engine.url), cfg, clock=FakeClock(NOW), runner=slow)
    body = {"from": "2024-05-01T11:00:00Z", "to": "2024-05-01T12:00:00Z", "write": False}
    try:
        with TestClient(app) as c:
            timed_out = [c.post("/v1/analyses/bottlenecks", json=body) for _ in range(2)]
            assert [r.status_code for r in timed_out] == [504, 504]
            for _ in range(4):
                busy = c.post("/v1/analyses/bottlenecks", json=body)
                assert busy.status_code == 503, busy.text
                assert busy.json()["error"] == "busy"
                assert busy.headers["Retry-After"] == "7"
            assert slow.calls == 2
            assert slow.most <= cfg.analysis_threads
            slow.release.set()
            wait_until(lambda: slow.active == 0, "the abandoned analyses to end")
            # the slots are free again once the abandoned threads are done
            done = c.post("/v1/analyses/bottlenecks", json=body)
            assert done.status_code == 200, done.text
            assert slow.calls == 3
    finally:
        slow.release.set()
    assert slow.most <= cfg.analysis_threads


def test_negative_slot_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="analysis_slot_wait"):
        ServiceSettings(auth=False, analysis_slot_wait=-1)


# -- keys and the cache itself ---------------------------------------------------------------
def test_times_key_normalises_spellings_and_knows_fixed_windows() -> None:
    main = (("from", "1h"), ("to", None))
    assert times_key(NOW, [main]) == times_key(NOW + timedelta(minutes=3),
                                                [(("from", "now-60m"), ("to", "now"))])
    assert times_key(NOW, [main])[1] is False
    fixed = [(("from", "2024-05-01T10:00:00Z"), ("to", "2024-05-01T13:00:00+01:00"))]
    same = [(("from", "2024-05-01T10:00"), ("to", "2024-05-01T12:00:00.000Z"))]
    assert times_key(NOW, fixed) == times_key(NOW + timedelta(days=1), same)
    assert times_key(NOW, fixed)[1] is True
    # from absent: an hour before a fixed `to` is fixed too
    assert times_key(NOW, [(("from", None), ("to", "2024-05-01T11:00Z"))])[1] is True
    # a baseline given without its end ends now
    base_open = (("baseline_from", "2024-05-01T08:00Z"), ("baseline_to", None))
    assert times_key(NOW, [fixed[0], base_open])[1] is False
    base_fixed = (("baseline_from", "2024-05-01T08:00Z"), ("baseline_to", "2024-05-01T09:00Z"))
    assert times_key(NOW, [fixed[0], base_fixed])[1] is True
    assert times_key(NOW, [fixed[0], (("baseline_from", "3h"), ("baseline_to",
                                                                "2024-05-01T09:00Z"))])[1] \
        is False


def test_lru_evicts_the_least_recently_used() -> None:
    now = [0.0]
    cache = ResultCache(max_entries=2, max_bytes=1000, clock=lambda: now[0])
    cache.put("a", b"A", 10)
    cache.put("b", b"B", 10)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"C", 10)
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.stats().evictions == 1


def test_byte_bound_and_clock_going_back() -> None:
    now = [100.0]
    cache = ResultCache(max_entries=10, max_bytes=10, clock=lambda: now[0])
    cache.put("big", b"x" * 11, 10)  # larger than the whole budget: not stored
    assert cache.get("big") is None
    cache.put("a", b"x" * 6, 10)
    cache.put("b", b"y" * 6, 10)
    assert cache.get("a") is None and cache.get("b") is not None
    now[0] = 50.0  # the wall clock jumped back: expire rather than keep longer
    assert cache.get("b") is None


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        ResultCache(max_entries=-1)
    with pytest.raises(ValueError, match="cache TTLs"):
        ServiceSettings(auth=False, cache_ttl=-1)
    with pytest.raises(ValueError, match="analysis_threads"):
        ServiceSettings(auth=False, analysis_threads=0)
    with pytest.raises(ValueError, match="LOGSIGHT_CACHE_SIZE"):
        ServiceSettings.from_env({"LOGSIGHT_AUTH": "off", "LOGSIGHT_CACHE_SIZE": "lots"})
    cfg = ServiceSettings.from_env({"LOGSIGHT_AUTH": "off", "LOGSIGHT_CACHE_TTL": "1m",
                                    "LOGSIGHT_CACHE_PAST_TTL": "1h",
                                    "LOGSIGHT_CACHE_SIZE": "8",
                                    "LOGSIGHT_ANALYSIS_THREADS": "2"})
    assert (cfg.cache_ttl, cfg.cache_past_ttl, cfg.cache_size, cfg.analysis_threads) == (
        60.0, 3600.0, 8, 2)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 30), st.integers(0, 3)),
                    max_size=60),
       max_entries=st.integers(0, 4), max_bytes=st.integers(0, 60))
def test_bounds_hold_after_any_puts(ops: list[tuple[int, int, int]], max_entries: int,
                                    max_bytes: int) -> None:
    now = [0.0]
    cache = ResultCache(max_entries=max_entries, max_bytes=max_bytes, clock=lambda: now[0])
    last: dict[int, bytes] = {}
    for key, size, step in ops:
        body = bytes([key]) * size
        cache.put(key, body, 5.0)
        last[key] = body
        now[0] += step
        stats = cache.stats()
        assert stats.entries <= max_entries
        assert stats.bytes <= max_bytes
        for k in last:
            got = cache.get(k)
            assert got is None or got.body == last[k]  # never a stale body for a key


def test_a_cancelled_computation_is_taken_over_by_a_waiter() -> None:
    cache = ResultCache(clock=lambda: 0.0)
    calls: list[str] = []

    async def scenario() -> tuple[bytes, bool]:
        never = asyncio.Event()

        async def stuck() -> tuple[bytes, float]:
            calls.append("stuck")
            await never.wait()
            raise AssertionError("unreachable")

        async def quick() -> tuple[bytes, float]:
            calls.append("quick")
            return b"answer", 10.0

        leader = asyncio.create_task(cache.get_or_compute("k", stuck))
        while not calls:
            await asyncio.sleep(0)
        waiter = asyncio.create_task(cache.get_or_compute("k", quick))
        while cache.stats().joined < 1:
            await asyncio.sleep(0)
        leader.cancel()  # its client went away
        found = await waiter
        assert leader.cancelled()
        return found.entry.body, found.hit

    assert asyncio.run(scenario()) == (b"answer", False)
    assert calls == ["stuck", "quick"]
    assert cache.stats().in_flight == 0 and cache.get("k") is not None
