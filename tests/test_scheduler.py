"""The in-service scheduler against the real engine: one run per window across replicas
(create / if_seq_no leases), takeover of expired and failed leases, stable findings on
re-runs, its own logs through logsight's adapter, and its configuration."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logsight import names
from logsight.engine import Engine, connect
from logsight.service.scheduler import (
    EPOCH,
    Lease,
    LeaseStore,
    ScheduledTask,
    Scheduler,
    TaskRun,
    aligned_window,
    analysis_task,
    default_tasks,
    lease_id,
)
from logsight.service.selflog import service_log
from logsight.service.settings import (
    ServiceSettings,
    parse_duration,
    parse_intervals,
    parse_keys,
)

NOW = datetime(2024, 5, 1, 12, 7, 30, tzinfo=UTC)
FIVE = timedelta(minutes=5)


class Counter:
    """A task body that counts its runs (thread-safe) and can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[datetime, datetime]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, engine: Engine, start: datetime, end: datetime) -> int:
        with self._lock:
            self.calls.append((start, end))
        if self.fail:
            raise RuntimeError("analysis exploded")
        return 0


def _scope() -> str:
    return "t" + uuid.uuid4().hex[:12]


def _scheduler(engine: Engine, tasks: list[ScheduledTask], scope: str, owner: str,
               **kw: Any) -> Scheduler:
    return Scheduler(lambda: engine, tasks, owner=owner, scope=scope, clock=lambda: NOW, **kw)


# -- windows ---------------------------------------------------------------------------------
def test_aligned_window_known_values() -> None:
    assert aligned_window(FIVE, NOW) == (
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC), datetime(2024, 5, 1, 12, 5, tzinfo=UTC))
    assert aligned_window(FIVE, NOW, lag=timedelta(minutes=3)) == (
        datetime(2024, 5, 1, 11, 55, tzinfo=UTC), datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    assert aligned_window(FIVE, NOW, back=1)[1] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="positive"):
        aligned_window(timedelta(0), NOW)


@given(
    seconds=st.integers(min_value=10**9, max_value=3 * 10**9),
    interval=st.integers(min_value=1, max_value=86_400 * 7),
    lag=st.integers(min_value=0, max_value=3600),
)
def test_aligned_window_properties(seconds: int, interval: int, lag: int) -> None:
    now = EPOCH + timedelta(seconds=seconds)
    start, end = aligned_window(timedelta(seconds=interval), now, lag=timedelta(seconds=lag))
    assert end - start == timedelta(seconds=interval)
    assert end <= now - timedelta(seconds=lag) < end + timedelta(seconds=interval)
    assert (end - EPOCH).total_seconds() % interval == 0


# -- leases ----------------------------------------------------------------------------------
@pytest.mark.engine
def test_two_replicas_one_run_per_window(engine: Engine) -> None:
    scope, body = _scope(), Counter()
    task = ScheduledTask("count", FIVE, body)
    a = _scheduler(engine, [task], scope, "replica-a")
    b = _scheduler(engine, [task], scope, "replica-b")
    first = a.tick()
    second = b.tick()
    assert [r.state for r in first] == ["done"]
    assert [r.state for r in second] == ["skipped"]
    assert body.calls == [aligned_window(FIVE, NOW)]
    # the next window is a new lease
    later = NOW + FIVE
    assert [r.state for r in b.tick(later)] == ["done"]
    assert [r.state for r in a.tick(later)] == ["skipped"]
    assert len(body.calls) == 2


@pytest.mark.engine
def test_concurrent_replicas_race_for_one_window(engine: Engine) -> None:
    scope, body = _scope(), Counter()
    task = ScheduledTask("race", FIVE, body)
    replicas = [_scheduler(engine, [task], scope, f"r{i}") for i in range(6)]
    barrier = threading.Barrier(len(replicas))

    def go(s: Scheduler) -> list[str]:
        barrier.wait()
        return [r.state for r in s.tick()]

    with ThreadPoolExecutor(len(replicas)) as pool:
        states = sorted(st_ for out in pool.map(go, replicas) for st_ in out)
    assert states == ["done"] + ["skipped"] * (len(replicas) - 1)
    assert len(body.calls) == 1


@pytest.mark.engine
def test_expired_lease_is_taken_over_once(engine: Engine) -> None:
    scope = _scope()
    ttl = timedelta(minutes=10)
    start, end = aligned_window(FIVE, NOW)
    dead = LeaseStore(engine, owner="dead", ttl=ttl, scope=scope)
    lease = dead.acquire("job", start, end, NOW)
    assert lease is not None and lease.attempt == 1
    alive = LeaseStore(engine, owner="alive", ttl=ttl, scope=scope)
    other = LeaseStore(engine, owner="other", ttl=ttl, scope=scope)
    assert alive.acquire("job", start, end, NOW + timedelta(minutes=5)) is None  # not expired
    later = NOW + ttl + timedelta(seconds=1)
    taken = alive.acquire("job", start, end, later)
    assert taken is not None and taken.attempt == 2
    assert other.acquire("job", start, end, later) is None  # now alive holds a fresh lease
    assert dead.finish(lease, state="done", now=later) is False  # the dead owner lost it
    assert alive.finish(taken, state="done", now=later) is True
    assert other.acquire("job", start, end, later + ttl * 5) is None  # done stays done
    doc = engine.get(names.LEASES_INDEX, taken.id)
    assert doc is not None and doc["_source"]["owner"] == "alive"
    assert doc["_source"]["state"] == "done"


@pytest.mark.engine
def test_failed_runs_are_retried_up_to_max_attempts(engine: Engine) -> None:
    scope, body = _scope(), Counter(fail=True)
    task = ScheduledTask("flaky", FIVE, body)
    a = _scheduler(engine, [task], scope, "a", max_attempts=2)
    b = _scheduler(engine, [task], scope, "b", max_attempts=2)
    assert [r.state for r in a.tick()] == ["failed"]
    assert "analysis exploded" in (a.tick()[0].error or "")  # second attempt, same window
    assert [r.state for r in b.tick()] == ["skipped"]  # gave up after max_attempts
    assert len(body.calls) == 2


@pytest.mark.engine
def test_one_failing_task_does_not_stop_the_others(engine: Engine) -> None:
    scope, ok = _scope(), Counter()
    tasks = [ScheduledTask("bad", FIVE, Counter(fail=True)), ScheduledTask("good", FIVE, ok)]
    records = _scheduler(engine, tasks, scope, "a").tick()
    assert {r.task: r.state for r in records} == {"bad": "failed", "good": "done"}
    assert len(ok.calls) == 1


def test_engine_down_is_a_quiet_pass() -> None:
    from logsight.engine import EngineUnavailable

    def down() -> Engine:
        raise EngineUnavailable("N/A", "cannot reach the cluster")

    body = Counter()
    s = Scheduler(down, [ScheduledTask("x", FIVE, body)], owner="a", clock=lambda: NOW)
    assert s.tick() == []
    assert body.calls == []


# -- real analyses, stable findings ----------------------------------------------------------
@pytest.mark.engine
def test_scheduled_bottlenecks_write_each_finding_once(engine: Engine, namespace: str) -> None:
    from test_service import seed_spans  # tests/ is on sys.path (rootdir-less tests)

    service = f"sched-{namespace}"
    start, end = aligned_window(FIVE, NOW)
    seed_spans(engine, namespace, service, start=start, traces=9)
    task = analysis_task("bottlenecks", FIVE, lag=timedelta(0), baseline_windows=2,
                         namespace=namespace)
    records = _scheduler(engine, [task], namespace, "a").tick()
    assert [r.state for r in records] == ["done"] and records[0].findings == 2
    query = {"bool": {"filter": [{"term": {"service": service}},
                                 {"term": {"kind": "trace_bottleneck"}}]}}
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, query) == 2
    # force the window to run again (as after a lease takeover): ids are stable
    engine.delete(names.LEASES_INDEX, lease_id(namespace, "bottlenecks", start))
    again = _scheduler(engine, [task], namespace, "b").tick()
    assert [r.state for r in again] == ["done"]
    engine.refresh(names.FINDINGS_INDEX)
    assert engine.count(names.FINDINGS_INDEX, query) == 2


@pytest.mark.engine
def test_per_model_task_runs_for_models_seen(engine: Engine, namespace: str) -> None:
    from test_service import seed_predictions  # see above

    start, end = aligned_window(timedelta(hours=1), NOW)
    model = f"m-{namespace}"
    seed_predictions(engine, namespace, f"s-{namespace}", model,
                     reference=(start - timedelta(hours=1), start), current=(start, end), n=120)
    task = analysis_task("drift", timedelta(hours=1), lag=timedelta(0), baseline_windows=1,
                         namespace=namespace)
    records = _scheduler(engine, [task], namespace, "a").tick()
    assert [r.state for r in records] == ["done"], records
    assert records[0].findings >= 1
    engine.refresh(names.FINDINGS_INDEX)
    found = engine.count(names.FINDINGS_INDEX, {"bool": {"filter": [
        {"term": {"model": model}}, {"term": {"feature": "x1"}}]}})
    assert found == 1


# -- our own logs, through our own adapter ---------------------------------------------------
@pytest.mark.engine
def test_scheduler_logs_through_logsight(engine: Engine, tmp_path: Path) -> None:
    import logsight

    sink = tmp_path / "self.ndjson"
    handle = logsight.configure(service_name="logsight", sink=sink, level="info",
                                spool_dir=tmp_path / "spool")
    try:
        scope = _scope()
        s = _scheduler(engine, [ScheduledTask("logged", FIVE, Counter())], scope, "a",
                       log=service_log(handle, "logsight.scheduler"))
        s.tick()
        handle.flush()
    finally:
        handle.close()
    lines = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    events = [d.get("message") for d in lines]
    assert "scheduler.run_started" in events and "scheduler.run_done" in events
    done = next(d for d in lines if d.get("message") == "scheduler.run_done")
    flat = json.dumps(done)
    assert '"logsight"' in flat and "logged" in flat


@pytest.mark.engine
def test_background_thread_runs_passes_until_stopped(engine: Engine) -> None:
    scope, body = _scope(), Counter()
    s = _scheduler(engine, [ScheduledTask("bg", FIVE, body)], scope, "a", poll=0.05)
    done = threading.Event()
    original = body.__call__

    def run(e: Engine, a: datetime, b: datetime) -> int:
        out = original(e, a, b)
        done.set()
        return out

    s.tasks = (ScheduledTask("bg", FIVE, run),)
    s.start()
    try:
        assert done.wait(30), "the scheduler thread never ran its task"
        assert s.running
    finally:
        s.stop()
    assert not s.running
    assert len(body.calls) == 1  # later passes found the window done


class MovingClock:
    """The scheduler's clock, moved by the test (thread-safe reads)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


def _wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``condition`` (a bound, not a measured time)."""
    ended = threading.Event()
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        ended.wait(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def _long_run(engine: Engine, scope: str, clock: MovingClock, ttl: timedelta,
              taken: list[Lease | None], *, renewed: bool) -> TaskRun:
    """A task that spans 1.2 TTLs of ``clock``; halfway and at the end another replica tries
    to take its lease over (results into ``taken``)."""
    other = LeaseStore(engine, owner="other", ttl=ttl, scope=scope)
    lid = lease_id(scope, "long", aligned_window(FIVE, NOW)[0])

    def expiry() -> datetime:
        doc = engine.get(names.LEASES_INDEX, lid)
        assert doc is not None
        return datetime.fromisoformat(doc["_source"]["expires_at"].replace("Z", "+00:00"))

    def run(e: Engine, start: datetime, end: datetime) -> int:
        for _ in range(2):
            clock.advance(ttl * 0.6)
            if renewed:  # a heartbeat since the clock moved extends the lease past now
                _wait_for(lambda: expiry() > clock(), "a lease renewal")
            taken.append(other.acquire("long", start, end, clock()))
        return 0

    return run


@pytest.mark.engine
def test_heartbeat_keeps_a_run_longer_than_the_ttl_from_being_taken_over(
        engine: Engine) -> None:
    scope, ttl = _scope(), timedelta(minutes=10)
    taken: list[Lease | None] = []
    clock = MovingClock(NOW)
    run = _long_run(engine, scope, clock, ttl, taken, renewed=True)
    s = Scheduler(lambda: engine, [ScheduledTask("long", FIVE, run)], owner="a", scope=scope,
                  lease_ttl=ttl, clock=clock, heartbeat=0.01)
    assert [r.state for r in s.tick(NOW)] == ["done"]
    assert taken == [None, None]
    doc = engine.get(names.LEASES_INDEX, lease_id(scope, "long", aligned_window(FIVE, NOW)[0]))
    assert doc is not None
    assert (doc["_source"]["state"], doc["_source"]["owner"], doc["_source"]["attempt"]) == (
        "done", "a", 1)


@pytest.mark.engine
def test_without_a_renewal_a_run_longer_than_the_ttl_is_taken_over(engine: Engine) -> None:
    """The control: a heartbeat slower than the run leaves the lease to expire."""
    scope, ttl = _scope(), timedelta(minutes=10)
    taken: list[Lease | None] = []
    clock = MovingClock(NOW)
    run = _long_run(engine, scope, clock, ttl, taken, renewed=False)
    s = Scheduler(lambda: engine, [ScheduledTask("long", FIVE, run)], owner="a", scope=scope,
                  lease_ttl=ttl, clock=clock, heartbeat=ttl.total_seconds() / 2)
    records = s.tick(NOW)
    assert taken[0] is None and taken[1] is not None and taken[1].attempt == 2
    assert [r.state for r in records] == ["done"]  # it ran, but lost the lease
    doc = engine.get(names.LEASES_INDEX, lease_id(scope, "long", aligned_window(FIVE, NOW)[0]))
    assert doc is not None and doc["_source"]["owner"] == "other"


@pytest.mark.engine
def test_renew_after_a_takeover_is_refused(engine: Engine) -> None:
    scope, ttl = _scope(), timedelta(minutes=10)
    start, end = aligned_window(FIVE, NOW)
    mine = LeaseStore(engine, owner="a", ttl=ttl, scope=scope)
    lease = mine.acquire("job", start, end, NOW)
    assert lease is not None
    renewed = mine.renew(lease, NOW + timedelta(minutes=8))
    assert renewed is not None and renewed.seq_no > lease.seq_no
    other = LeaseStore(engine, owner="b", ttl=ttl, scope=scope)
    assert other.acquire("job", start, end, NOW + timedelta(minutes=12)) is None  # renewed
    assert other.acquire("job", start, end, NOW + timedelta(minutes=19)) is not None
    assert mine.renew(renewed, NOW + timedelta(minutes=19)) is None  # taken over
    assert mine.renew(lease, NOW) is None  # a stale seq_no never wins


def test_bad_heartbeat_is_refused() -> None:
    for beat in (0.0, 900.0):
        with pytest.raises(ValueError, match="heartbeat"):
            Scheduler(lambda: None, [], owner="a", lease_ttl=timedelta(minutes=15),  # type: ignore[arg-type, return-value]  # the engine is never used
                      heartbeat=beat)


@pytest.mark.engine
def test_stop_that_times_out_keeps_the_loop_and_start_refuses(engine: Engine) -> None:
    scope, entered, release = _scope(), threading.Event(), threading.Event()

    def run(e: Engine, a: datetime, b: datetime) -> int:
        entered.set()
        release.wait(30)
        return 0

    s = _scheduler(engine, [ScheduledTask("stuck", FIVE, run)], scope, "a", poll=0.05)
    s.start()
    try:
        assert entered.wait(30), "the scheduler thread never ran its task"
        assert s.stop(timeout=0.01) is False  # the task still runs
        assert s.running
        with pytest.raises(RuntimeError, match="still"):
            s.start()
        assert sum(t.name == "logsight-scheduler" and t.is_alive()
                   for t in threading.enumerate()) >= 1
    finally:
        release.set()
    assert s.stop() is True
    assert not s.running
    s.start()  # a clean restart once the old loop has ended
    try:
        assert s.running
    finally:
        assert s.stop() is True


# -- configuration ---------------------------------------------------------------------------
def test_default_tasks_follow_intervals_and_off_switch() -> None:
    cfg = ServiceSettings(auth=False, scheduler=True, interval=timedelta(minutes=10),
                          intervals={"drift": None, "bottlenecks": timedelta(minutes=1)})
    tasks = {t.name: t for t in default_tasks(cfg)}
    assert "drift" not in tasks
    assert tasks["bottlenecks"].interval == timedelta(minutes=1)
    assert tasks["performance"].interval == timedelta(minutes=10)


def test_settings_parsing() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(30) == timedelta(seconds=30)
    assert parse_intervals("bottlenecks=5m, drift=off") == {
        "bottlenecks": FIVE, "drift": None}
    assert parse_keys(" a, ,b ") == ("a", "b")
    for bad in ("5 parsecs", "-3m", "soon"):
        with pytest.raises(ValueError, match="duration|negative"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="task=5m"):
        parse_intervals("bottlenecks")
    env = {"LOGSIGHT_API_KEYS": "k1,k2", "LOGSIGHT_SCHEDULER": "on",
           "LOGSIGHT_SCHEDULER_INTERVALS": "drift=1h", "LOGSIGHT_MAX_WINDOW": "2d"}
    cfg = ServiceSettings.from_env(env)
    assert cfg.api_keys == ("k1", "k2") and cfg.scheduler and cfg.auth
    assert cfg.interval_of("drift") == timedelta(hours=1)
    assert cfg.max_window == timedelta(days=2)
    with pytest.raises(ValueError, match="namespace"):
        ServiceSettings(auth=False, namespace="Not-Valid")


def test_unknown_task_names_and_zero_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scheduler task 'bogus'; valid tasks: "
                                         "bottlenecks, trace_regressions"):
        parse_intervals("bogus=1h")
    with pytest.raises(ValueError, match="must be positive"):
        parse_intervals("drift=0s")
    assert parse_intervals("drift=0") == {"drift": None}  # 0 reads as off
    # settings built directly (or from the environment) are checked the same way
    with pytest.raises(ValueError, match="unknown scheduler task 'nope'"):
        ServiceSettings(auth=False, intervals={"nope": FIVE})
    with pytest.raises(ValueError, match="^LOGSIGHT_SCHEDULER_INTERVALS: unknown"):
        ServiceSettings.from_env({"LOGSIGHT_AUTH": "off",
                                  "LOGSIGHT_SCHEDULER_INTERVALS": "bottlenecks=5m,bogus=1h"})


def test_scheduler_rejects_duplicate_task_names() -> None:
    t = ScheduledTask("same", FIVE, Counter())
    with pytest.raises(ValueError, match="unique"):
        Scheduler(lambda: connect(), [t, t], owner="a")
