"""Runs each analysis on its interval inside the service, once per window across replicas.

Windows are aligned to the epoch (``[k*interval, (k+1)*interval)``), so every replica computes
the same windows. Before running one, a replica takes the window's *lease*: a document in
``logsight-leases`` with a deterministic id, created with ``op_type=create`` (only one creator
wins). A lease left ``running`` past its expiry (a replica died) or ``failed`` (fewer than
``max_attempts`` times) is taken over with ``if_seq_no``/``if_primary_term`` optimistic
concurrency, so again exactly one replica wins. Findings carry stable ids, so even a window
that does run twice (a takeover after a slow run) overwrites rather than duplicates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.engine import EngineError, EngineUnavailable
from logsight.jobs import JOBS, JobParams, run_job
from logsight.jobs.catalog import models_in_window
from logsight.service.selflog import ServiceLog
from logsight.timeutil import EPOCH, iso, parse_iso

if TYPE_CHECKING:
    from logsight.engine import Engine
    from logsight.service.settings import ServiceSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def aligned_window(
    interval: timedelta, now: datetime, *, lag: timedelta = timedelta(0), back: int = 0
) -> tuple[datetime, datetime]:
    """The last complete epoch-aligned window that ended at least ``lag`` before ``now``
    (``back`` windows earlier for catching up)."""
    step = interval.total_seconds()
    if step <= 0:
        raise ValueError("interval must be positive")
    elapsed = (now - lag - EPOCH).total_seconds()
    end = EPOCH + timedelta(seconds=(elapsed // step - back) * step)
    return end - interval, end


def _parse(value: Any) -> datetime:
    """A stored timestamp; an unreadable one counts as long expired."""
    try:
        return parse_iso(str(value))
    except ValueError:
        return EPOCH


# -- leases ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lease:
    id: str
    task: str
    window_start: datetime
    window_end: datetime
    seq_no: int
    primary_term: int
    attempt: int


def lease_id(scope: str, task: str, window_start: datetime) -> str:
    return f"{scope}:{task}:{iso(window_start)}"


class LeaseStore:
    """Create-or-take-over leases in ``index`` (default ``logsight-leases``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str,
        ttl: timedelta,
        scope: str = "all",
        max_attempts: int = 3,
        index: str = names.LEASES_INDEX,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.ttl = ttl
        self.scope = scope
        self.max_attempts = max_attempts
        self.index = index

    def _doc(self, task: str, start: datetime, end: datetime, now: datetime, *, state: str,
             attempt: int, **extra: Any) -> dict[str, Any]:
        return {
            "@timestamp": iso(now), "task": task, "window": f"{iso(start)}/{iso(end)}",
            "window_start": iso(start), "window_end": iso(end), "owner": self.owner,
            "expires_at": iso(now + self.ttl), "state": state, "attempt": attempt,
            "scope": self.scope, **extra,
        }

    def acquire(self, task: str, start: datetime, end: datetime, now: datetime) -> Lease | None:
        """The lease for (task, window), or None when another replica has it / it is done."""
        lid = lease_id(self.scope, task, start)
        try:
            resp = self.engine.index(
                self.index, self._doc(task, start, end, now, state="running", attempt=1),
                id=lid, op_type="create",
            )
            return Lease(lid, task, start, end, int(resp["_seq_no"]),
                         int(resp["_primary_term"]), 1)
        except EngineUnavailable:
            raise
        except EngineError as e:
            if e.status != 409:
                raise
        current = self.engine.get(self.index, lid)
        if current is None:  # deleted between our create and get: next pass will retry
            return None
        src = current.get("_source", {})
        state = src.get("state")
        attempt = int(src.get("attempt") or 1)
        if state == "done":
            return None
        if state == "running" and _parse(src.get("expires_at")) > now:
            return None
        if state == "failed" and attempt >= self.max_attempts:
            return None
        try:
            resp = self.engine.index(
                self.index,
                self._doc(task, start, end, now, state="running", attempt=attempt + 1,
                          previous_owner=src.get("owner")),
                id=lid, if_seq_no=int(current["_seq_no"]),
                if_primary_term=int(current["_primary_term"]),
            )
        except EngineUnavailable:
            raise
        except EngineError as e:
            if e.status == 409:  # another replica took it over first
                return None
            raise
        return Lease(lid, task, start, end, int(resp["_seq_no"]), int(resp["_primary_term"]),
                     attempt + 1)

    def renew(self, lease: Lease, now: datetime) -> Lease | None:
        """Extend a running lease to ``now + ttl`` (a heartbeat while its task runs); the
        renewed lease, or None when another replica took it over meanwhile."""
        try:
            resp = self.engine.index(
                self.index,
                self._doc(lease.task, lease.window_start, lease.window_end, now,
                          state="running", attempt=lease.attempt),
                id=lease.id, if_seq_no=lease.seq_no, if_primary_term=lease.primary_term,
            )
        except EngineUnavailable:
            raise
        except EngineError as e:
            if e.status == 409:
                return None
            raise
        return Lease(lease.id, lease.task, lease.window_start, lease.window_end,
                     int(resp["_seq_no"]), int(resp["_primary_term"]), lease.attempt)

    def finish(self, lease: Lease, *, state: str, now: datetime, findings: int = 0,
               error: str | None = None) -> bool:
        """Mark the lease ``done`` or ``failed``; False if it was taken over meanwhile."""
        extra: dict[str, Any] = {"findings": findings, "finished_at": iso(now)}
        if error:
            extra["error"] = error[:2000]
        try:
            self.engine.index(
                self.index,
                self._doc(lease.task, lease.window_start, lease.window_end, now, state=state,
                          attempt=lease.attempt, **extra),
                id=lease.id, if_seq_no=lease.seq_no, if_primary_term=lease.primary_term,
            )
        except EngineUnavailable:
            raise
        except EngineError as e:
            if e.status == 409:
                return False
            raise
        return True


# -- tasks -----------------------------------------------------------------------------------
TaskRun = Callable[["Engine", datetime, datetime], int]


@dataclass(frozen=True)
class ScheduledTask:
    """``run(engine, start, end)`` analyses one window, writes its findings, and returns how
    many it wrote."""

    name: str
    interval: timedelta
    run: TaskRun
    lag: timedelta = timedelta(0)


@dataclass(frozen=True)
class RunRecord:
    task: str
    window_start: datetime
    window_end: datetime
    state: str  # done | failed | skipped
    findings: int = 0
    error: str | None = None


def analysis_task(kind: str, interval: timedelta, *, lag: timedelta, baseline_windows: int,
                  namespace: str | None) -> ScheduledTask:
    """A scheduled run of analysis ``kind`` over each window (per model for model analyses;
    the baseline/reference is the ``baseline_windows`` windows just before)."""
    spec = JOBS[kind]

    def run(engine: Engine, start: datetime, end: datetime) -> int:
        base: dict[str, Any] = {}
        if spec.uses_baseline:
            base = {"baseline_start": start - interval * baseline_windows,
                    "baseline_end": start}
        if not spec.per_model:
            result = run_job(engine, kind,
                             JobParams(start=start, end=end, namespace=namespace, **base))
            return len(result.findings)
        total, errors = 0, []
        for model in models_in_window(engine, start, end, namespace):
            try:
                result = run_job(
                    engine, kind,
                    JobParams(start=start, end=end, namespace=namespace, model=model, **base),
                )
                total += len(result.findings)
            except EngineUnavailable:
                raise
            except Exception as e:  # one model's bad data must not starve the others
                errors.append(f"{model}: {type(e).__name__}: {e}")
        if errors:
            raise RuntimeError("; ".join(errors))
        return total

    return ScheduledTask(kind, interval, run, lag)


def default_tasks(settings: ServiceSettings) -> list[ScheduledTask]:
    """One task per analysis whose interval is not switched off."""
    tasks: list[ScheduledTask] = []
    for kind in JOBS:
        interval = settings.interval_of(kind)
        if interval is None:
            continue
        tasks.append(analysis_task(kind, interval, lag=settings.scheduler_lag,
                                   baseline_windows=settings.baseline_windows,
                                   namespace=settings.namespace))
    return tasks


# -- the loop --------------------------------------------------------------------------------
class _Heartbeat:
    """Renews ``lease`` every ``every`` seconds on a thread of its own while a task runs, so a
    run longer than the lease TTL is not taken over (and run twice) by another replica."""

    def __init__(self, store: LeaseStore, lease: Lease, *, every: float, clock: Clock,
                 log: ServiceLog) -> None:
        self.lease = lease
        self.lost = False
        self._store = store
        self._every = every
        self._clock = clock
        self._log = log
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="logsight-lease-heartbeat",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()  # a renewal in flight must land before finish() uses the seq_no

    def _beat(self) -> None:
        while not self._done.wait(self._every) and not self.lost:
            try:
                renewed = self._store.renew(self.lease, self._clock())
            except EngineError as e:  # transient: the next beat tries again before expiry
                self._log.warning("scheduler.lease_renew_failed", task=self.lease.task,
                                  error=f"{type(e).__name__}: {e}")
                continue
            if renewed is None:
                self.lost = True
                self._log.warning("scheduler.lease_lost", task=self.lease.task,
                                  lease=self.lease.id)
            else:
                self.lease = renewed


class Scheduler:
    """``tick(now)`` runs every task whose current window is not done yet (one pass, no
    sleeping: tests drive it with their own clock); ``start()`` runs passes on a thread every
    ``poll`` seconds until ``stop()``. While a task runs its lease is renewed every
    ``heartbeat`` seconds (default a third of ``lease_ttl``)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        tasks: Sequence[ScheduledTask],
        *,
        owner: str,
        lease_ttl: timedelta = timedelta(minutes=15),
        scope: str = "all",
        max_attempts: int = 3,
        catch_up: int = 1,
        poll: float = 15.0,
        clock: Clock = utc_now,
        log: ServiceLog | None = None,
        heartbeat: float | None = None,
    ) -> None:
        if catch_up < 1:
            raise ValueError("catch_up must be at least 1")
        if lease_ttl <= timedelta(0):
            raise ValueError("lease_ttl must be positive")
        if heartbeat is None:
            heartbeat = lease_ttl.total_seconds() / 3
        if not 0 < heartbeat < lease_ttl.total_seconds():
            raise ValueError(f"heartbeat must be positive and shorter than lease_ttl "
                             f"({lease_ttl.total_seconds():g} s), got {heartbeat:g}")
        names_ = [t.name for t in tasks]
        if len(set(names_)) != len(names_):
            raise ValueError(f"task names must be unique, got {names_}")
        self._engine = engine
        self.tasks = tuple(tasks)
        self.owner = owner
        self.lease_ttl = lease_ttl
        self.scope = scope
        self.max_attempts = max_attempts
        self.catch_up = catch_up
        self.poll = poll
        self.heartbeat = heartbeat
        self.clock = clock
        self.log = log or ServiceLog()
        self.last_pass: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self, now: datetime | None = None) -> list[RunRecord]:
        now = now or self.clock()
        records: list[RunRecord] = []
        try:
            engine = self._engine()
        except EngineUnavailable as e:
            self.log.warning("scheduler.engine_unavailable", error=e.message)
            return records
        store = LeaseStore(engine, owner=self.owner, ttl=self.lease_ttl, scope=self.scope,
                           max_attempts=self.max_attempts)
        for task in self.tasks:
            for back in range(self.catch_up):
                start, end = aligned_window(task.interval, now, lag=task.lag, back=back)
                try:
                    records.append(self._run_one(store, task, start, end, now))
                except EngineUnavailable as e:
                    self.log.warning("scheduler.engine_unavailable", task=task.name,
                                     error=e.message)
                    self.last_pass = now
                    return records
        self.last_pass = now
        return records

    def _run_one(self, store: LeaseStore, task: ScheduledTask, start: datetime, end: datetime,
                 now: datetime) -> RunRecord:
        lease = store.acquire(task.name, start, end, now)
        if lease is None:
            return RunRecord(task.name, start, end, "skipped")
        window = f"{iso(start)}/{iso(end)}"
        self.log.info("scheduler.run_started", task=task.name, window=window,
                      attempt=lease.attempt, owner=self.owner)
        beat = _Heartbeat(store, lease, every=self.heartbeat, clock=self.clock, log=self.log)
        try:
            with beat:
                n = int(task.run(store.engine, start, end))
        except EngineUnavailable:
            raise  # the lease expires and a later pass (here or elsewhere) takes it over
        except Exception as e:  # an analysis failing must not stop the other tasks
            error = f"{type(e).__name__}: {e}"
            self.log.error("scheduler.run_failed", task=task.name, window=window, error=error,
                           attempt=lease.attempt)
            store.finish(beat.lease, state="failed", now=self.clock(), error=error)
            return RunRecord(task.name, start, end, "failed", error=error)
        kept = store.finish(beat.lease, state="done", now=self.clock(), findings=n)
        self.log.info("scheduler.run_done", task=task.name, window=window, findings=n,
                      lease_kept=kept)
        return RunRecord(task.name, start, end, "done", findings=n)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # keep the loop alive whatever one pass hits
                self.log.error("scheduler.pass_failed", error=f"{type(e).__name__}: {e}")
            self._stop.wait(self.poll)

    def start(self) -> Scheduler:
        """Start the loop (a no-op while it runs). Refused while a loop that ``stop()`` gave
        up waiting for still runs: clearing the stop flag would revive it beside a new one."""
        if self.running:
            if self._stop.is_set():
                raise RuntimeError(
                    "the previous scheduler loop is still finishing a task; call stop() "
                    "again (it waits for the loop) before start()")
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="logsight-scheduler",
                                        daemon=True)
        self._thread.start()
        self.log.info("scheduler.started", tasks=",".join(t.name for t in self.tasks),
                      owner=self.owner)
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the loop to stop and wait up to ``timeout`` seconds; False when it still runs
        (a long task): the thread is kept, so ``running`` stays true and ``start()`` refuses
        until a later ``stop()`` sees it end."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            self.log.warning("scheduler.stop_timed_out", owner=self.owner, timeout=timeout)
            return False
        self._thread = None
        self.log.info("scheduler.stopped", owner=self.owner)
        return True
