"""The shipper: the application thread enqueues, two background threads do the rest.

* application thread: :meth:`Shipper.submit` appends ``(kind, doc)`` to a bounded deque (an
  atomic operation under the GIL: no lock, no I/O, no serialisation). A full queue drops the
  event and counts it; it never blocks or raises.
* pump thread: drains the queue, serialises documents into records (transport-specific bytes)
  and groups them into batches bounded by count and bytes. While the destination is healthy
  the batches wait in memory (at most ``max_memory_bytes``) for the sender; while it is down,
  or the sender is slower than the producers, they are spilled to the on-disk spool, so memory
  stays flat during an outage.
* sender thread: sends the spool first (oldest first, so replay is in order), then in-memory
  batches. Connection errors, 429 and 5xx back off exponentially with jitter; per-item errors
  that cannot succeed become dead-letter records; per-item 429/5xx are retried.

Delivery is at-least-once; every event carries a stable ``event.id`` used as the ``_id`` of a
``create`` action, so a re-sent event is answered 409 and counted as a duplicate, never stored
twice. The one reordering: a batch that was in flight when an outage began is spooled after the
batches the pump spilled during that request (``@timestamp`` stays authoritative).

Fork-safe: a process forked after construction (a pre-fork server's worker) gets a clean
shipper whose threads, connection and spool start with its first event (see ``_before_fork``).

Why one file past ~600 lines: the pump and the sender share the queue, the in-memory batches,
the spool handle and the counters under one lock, and the counters' balance (enqueued +
recovered = sent + duplicates + dead-lettered + dropped) is proved over exactly this state;
transport, spool, limits and back-off already live in modules of their own.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from logsight.shipper.guard import internal, internal_thread
from logsight.shipper.ratelog import RateLimitedLog
from logsight.shipper.spool import FsyncPolicy, Spool, SpoolLocked
from logsight.shipper.transport import (
    ItemFailure,
    TooLarge,
    Transport,
    Unavailable,
)

# the shipper's diagnostics (counters, outages, errors): a logger the log adapters never ship
# (DEFAULT_EXCLUDED_LOGGERS), shown wherever the application's logging config sends records
log = logging.getLogger("logsight.shipper")


@dataclass
class Counters:
    """What happened to the events given to a shipper (monotonic totals, then gauges).

    Every accepted event is in exactly one place, so these add up exactly::

        enqueued + recovered == sent + duplicates + dead_lettered + dropped + in_transit

    (``in_transit``: queued, waiting in memory, in the spool or in flight; 0 once
    :meth:`Shipper.flush` returned True). ``rejected`` events were never accepted."""

    enqueued: int = 0  # accepted by submit()
    recovered: int = 0  # found in the spool at start (left by an earlier process)
    sent: int = 0  # acknowledged by the destination (new documents in their stream)
    duplicates: int = 0  # acknowledged as already there (409 on a replay)
    dead_lettered: int = 0  # stored in the dead-letter index (refused for good, or too deep)
    dropped: int = 0  # accepted, then lost: memory or spool bound, unencodable, refused dead letter
    rejected: int = 0  # refused by submit(): queue full, or the shipper closed
    retried: int = 0  # records sent again after a failure (a record may count several times)
    spooled: int = 0  # records written to the disk spool
    spool_errors: int = 0  # spool writes that failed (disk full, I/O error): kept in memory
    queued: int = 0  # now in the in-memory queue
    pending_memory_records: int = 0  # now in serialised batches waiting in memory
    pending_memory_bytes: int = 0
    spool_records: int = 0  # now in the spool (in flight from it included)
    spool_bytes: int = 0
    in_flight: int = 0  # now being sent from memory

    @property
    def in_transit(self) -> int:
        return self.queued + self.pending_memory_records + self.spool_records + self.in_flight

    @property
    def received(self) -> int:
        return self.enqueued + self.recovered

    @property
    def accounted(self) -> int:
        """Where the received events are: always equals :attr:`received` when idle."""
        return self.sent + self.duplicates + self.dead_lettered + self.dropped + self.in_transit

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_live: weakref.WeakSet[Shipper] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for shipper in list(_live):
        with contextlib.suppress(Exception):  # nothing may escape interpreter shutdown
            shipper.close(timeout=shipper.exit_timeout)


atexit.register(_close_all_at_exit)

_SPOOL_SLOTS = 64  # numbered siblings a spool directory may take when it is in use
_SPOOL_RETRY = 5.0  # seconds between two tries of a spool that failed to write (disk full)
_MAX_DIR_NAME = 80  # longer shipper names are shortened and hashed (file-name limits)


def _before_fork() -> None:
    for shipper in list(_live):
        with contextlib.suppress(Exception):
            shipper._before_fork()


def _after_fork_parent() -> None:
    for shipper in list(_live):
        with contextlib.suppress(Exception):
            shipper._after_fork_parent()


def _after_fork_child() -> None:
    for shipper in list(_live):
        try:
            shipper._after_fork_child()
        except Exception:  # a broken shipper must not break the child
            log.exception("logsight shipper: reset after fork failed")


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)


def default_spool_dir(name: str) -> Path:
    """``LOGSIGHT_SPOOL_DIR`` or the user cache dir, one subdirectory per shipper name."""
    base = os.environ.get("LOGSIGHT_SPOOL_DIR")
    if not base:
        from platformdirs import user_cache_dir

        base = str(Path(user_cache_dir("logsight")) / "spool")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_"
                   for c in name) or "default"
    if safe in (".", "..") or len(safe) > _MAX_DIR_NAME:
        # a name the file system would refuse (too long: ENAMETOOLONG turned the spool off):
        # a readable prefix plus a hash of the whole name, so distinct names stay distinct
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        safe = f"{safe.strip('.')[:_MAX_DIR_NAME - 17] or 'spool'}-{digest}"
    return Path(base) / safe


class Shipper:
    """Batches, sends, spools and replays documents. Build one per destination; it starts its
    threads at construction and stops them in :meth:`close` (also called at exit)."""

    def __init__(
        self,
        transport: Transport,
        *,
        spool_dir: str | Path | None = None,
        name: str = "default",
        batch_size: int = 500,
        max_batch_bytes: int = 5 * 1024 * 1024,
        flush_interval: float = 1.0,
        max_queue: int = 50_000,
        max_memory_bytes: int = 16 * 1024 * 1024,
        spool_max_bytes: int = 1024 * 1024 * 1024,
        spool_segment_bytes: int = 16 * 1024 * 1024,
        fsync: FsyncPolicy = "batch",
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        stats_interval: float | None = 60.0,
        exit_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        random_state: int | None = None,
        use_spool: bool = True,
        senders: int = 4,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0 or senders < 1:
            raise ValueError("batch_size, max_queue and senders must be >= 1, "
                             "flush_interval > 0")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        for opt, value in (("max_batch_bytes", max_batch_bytes),
                           ("max_memory_bytes", max_memory_bytes),
                           ("spool_max_bytes", spool_max_bytes),
                           ("spool_segment_bytes", spool_segment_bytes),
                           ("exit_timeout", exit_timeout),
                           ("stats_interval", 1 if stats_interval is None else stats_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{opt} must be a positive number, not {value!r}")
        if fsync not in ("batch", "never", "always"):
            raise ValueError(f"fsync must be 'batch', 'never' or 'always', not {fsync!r}")
        self.drop_warning_interval = 10.0  # seconds between two "events dropped" warnings
        self.transport = transport
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_memory_bytes = max_memory_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats_interval = stats_interval
        self.exit_timeout = exit_timeout
        self._clock = clock
        self._mono = monotonic
        self._rng = random.Random(random_state)

        self._name = name
        self._n_senders = senders
        reserve = getattr(transport, "reserve_connections", None)
        if reserve is not None:  # a pool of one connection per sender, none discarded
            reserve(senders)
        self._spool_args: tuple[Path, int, int, FsyncPolicy] | None = (
            (Path(spool_dir) if spool_dir else default_spool_dir(name),
             spool_max_bytes, spool_segment_bytes, fsync) if use_spool else None)
        self._closed = False
        self._fork_locked = False  # _lock taken by the before-fork hook
        self._reset_runtime()
        self.spool: Spool | None = None
        if self._spool_args is not None:
            self.spool = self._open_spool(*self._spool_args)
            if self.spool is not None:
                self._c.recovered = self.spool.pending_records
        self._start()
        _live.add(self)

    def _reset_runtime(self) -> None:
        """Fresh queues, locks, events and counters (construction, and a forked child)."""
        self._queue: deque[tuple[str, Mapping[str, Any]]] = deque()
        self._pending: deque[list[bytes]] = deque()  # serialised batches, oldest first
        self._pending_bytes = 0
        self._lock = threading.Lock()  # pending + spool + counters (background threads only)
        self._work = threading.Condition(self._lock)
        self._wake = threading.Event()  # pump wake-up
        self._stop = threading.Event()
        self._pump_done = threading.Event()
        self._c = Counters()
        self._drained = 0
        self._app_dropped = 0
        self._app_lock = threading.Lock()  # only taken on the (rare) drop path
        self._last_drop_warning: float | None = None
        self._warned_dropped = 0
        self._start_lock = threading.Lock()  # a forked child's lazy restart
        self._healthy = True
        self._failures = 0
        self._pressure = 0  # consecutive batches with per-item 429/5xx (shared back-off)
        self._next_attempt = 0.0
        self._inflight = 0
        self._inflight_mem = 0  # of which from memory (spool reads stay counted in the spool)
        self._spool_down_until: float | None = None  # spool failed to write: memory until
        self._dead_log = RateLimitedLog(log, interval=self.drop_warning_interval,
                                        monotonic=self._mono)
        self._drop_log = RateLimitedLog(log, interval=self.drop_warning_interval,
                                        monotonic=self._mono)
        self._pumping = False
        self._running = False
        self._pump: threading.Thread | None = None
        self._senders: list[threading.Thread] = []

    def _start(self) -> None:
        # internal threads: nothing logged on them (the client's request lines included) is
        # shipped, which would make the shipper send again, and log again, forever
        self._pump = threading.Thread(target=internal_thread(self._pump_loop),
                                      name=f"logsight-pump-{self._name}", daemon=True)
        # several requests in flight (like the client helpers' parallel_bulk); sender 0 also
        # logs the counters periodically
        self._senders = [
            threading.Thread(target=internal_thread(self._send_loop), args=(i == 0,),
                             name=f"logsight-send{i}-{self._name}", daemon=True)
            for i in range(self._n_senders)
        ]
        self._pump.start()
        for t in self._senders:
            t.start()
        self._running = True

    def _start_in_child(self) -> None:
        """A forked child's first use: its own spool, then its own threads."""
        with self._start_lock:
            if self._running or self._closed:
                return
            if self._spool_args is not None and self.spool is None:
                self.spool = self._open_spool(*self._spool_args, forked=True)
                if self.spool is not None:
                    self._c.recovered = self.spool.pending_records
            self._start()

    # -- fork safety ------------------------------------------------------------------------
    # A pre-fork server (gunicorn) forks after configure(). The child has none of the parent's
    # threads, possibly-held copies of its locks, and the parent's spool, connections and
    # queued events. Before the fork each shipper's lock is taken, so no spool write is half
    # done; the child then drops the parent's state (the parent delivers its own events) and
    # starts its threads on first use, with a spool of its own.
    def _before_fork(self) -> None:
        self._fork_locked = self._lock.acquire(timeout=5.0)

    def _after_fork_parent(self) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self._lock.release()

    def _after_fork_child(self) -> None:
        self._fork_locked = False
        if self.spool is not None:
            self.spool.abandon()
            self.spool = None
        after_fork = getattr(self.transport, "after_fork", None)
        if after_fork is not None:
            after_fork()
        self._reset_runtime()

    @staticmethod
    def _open_spool(path: Path, max_bytes: int, seg: int, fsync: FsyncPolicy, *,
                    forked: bool = False) -> Spool | None:
        # A spool in use by another process (a forked worker's parent, a second process with
        # the same name) sends this one to the first free numbered sibling. Numbered, not by
        # pid, so a restarted worker takes over (and delivers) what a dead one left behind.
        candidates = [path] + [path.with_name(f"{path.name}-{i}")
                               for i in range(1, _SPOOL_SLOTS + 1)]
        for candidate in candidates:
            try:
                spool = Spool(candidate, max_bytes=max_bytes, segment_bytes=seg, fsync=fsync)
            except SpoolLocked:
                continue
            except OSError as e:
                log.warning("logsight: no disk spool (%s); outages are buffered in memory", e)
                return None
            if candidate != path:
                (log.debug if forked else log.warning)(
                    "logsight: spool %s is in use by another process; using %s",
                    path, candidate.name)
            return spool
        log.warning("logsight: all %d spool slots of %s are in use; outages are buffered in "
                    "memory", _SPOOL_SLOTS + 1, path)
        return None

    # -- application side ------------------------------------------------------------------
    def submit(self, kind: str, doc: Mapping[str, Any]) -> bool:
        """Queue one document (no I/O, no serialisation). False when dropped (queue full or
        shipper closed). Never raises for a full queue."""
        if not self._running:  # a forked child's first event (one attribute test otherwise)
            self._start_in_child()
        q = self._queue
        if len(q) >= self.max_queue or self._closed:
            n = 0
            with self._app_lock:
                self._app_dropped += 1
                now = self._mono()
                warn = (self._last_drop_warning is None
                        or now - self._last_drop_warning >= self.drop_warning_interval)
                if warn:
                    self._last_drop_warning = now
                    n, self._warned_dropped = (self._app_dropped - self._warned_dropped,
                                               self._app_dropped)
            if warn:  # first drop, then at most every drop_warning_interval seconds
                log.warning("logsight shipper: %s; %d event(s) dropped since the last warning "
                            "(%d in all; raise max_queue or log less)",
                            "closed" if self._closed else f"queue full ({self.max_queue})",
                            n, self._app_dropped)
            return False
        q.append((kind, doc))
        if len(q) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def persist(self, records: Sequence[bytes]) -> int:
        """Append records already encoded by ``transport.encode`` to the disk spool now (fsync'ed
        per the spool's policy), for a caller that must know they are durable before it answers
        (the OTLP receiver acknowledges an export only then). Returns how many the spool took:
        0 without a spool, fewer than given when it is full. Raises OSError when the write
        fails. The senders deliver them like any spooled record."""
        if not self._running:
            self._start_in_child()
        with self._lock:
            if self.spool is None or self._closed:
                return 0
            taken = self.spool.append(list(records))
            self._c.spooled += taken
            self._work.notify_all()
        return taken

    @property
    def counters(self) -> Counters:
        """A snapshot of the counters."""
        with self._lock:
            c = Counters(**asdict(self._c))
        queued = len(self._queue)
        c.queued = queued
        c.rejected = self._app_dropped
        c.enqueued = self._drained + queued
        c.pending_memory_bytes = self._pending_bytes
        c.pending_memory_records = sum(len(b) for b in list(self._pending))
        c.in_flight = self._inflight_mem
        if self.spool is not None:
            c.spool_records = self.spool.pending_records
            c.spool_bytes = self.spool.pending_bytes
        return c

    def flush(self, timeout: float = 10.0, *, give_up_if_down: bool = False) -> bool:
        """Wait until everything queued so far is delivered (True) or ``timeout`` passes
        (False; undelivered events stay queued or spooled). Tries the destination right away
        even during a back-off. With ``give_up_if_down``, returns False as soon as that
        attempt has failed and everything is safe in the spool."""
        deadline = self._mono() + timeout
        with self._lock:
            self._next_attempt = 0.0
            failures_before = self._failures
            self._work.notify_all()
        self._wake.set()
        while True:
            if self._idle():
                return True
            if self._mono() >= deadline:
                return False
            if give_up_if_down and self._failures > failures_before and self._on_disk():
                return False
            self._wake.set()
            time.sleep(0.01)

    def _on_disk(self) -> bool:
        if self._queue or self._pumping:
            return False
        with self._lock:
            return not self._pending and self._inflight == 0

    def _idle(self) -> bool:
        # order matters: the pump raises _pumping before it pops the first item
        if self._queue or self._pumping:
            return False
        with self._lock:
            spool_empty = self.spool is None or self.spool.empty
            return not self._pending and self._inflight == 0 and spool_empty

    def close(self, timeout: float = 10.0) -> bool:
        """Flush (up to ``timeout``), stop the threads, and spool whatever is left so the next
        process delivers it. Returns whether everything was delivered."""
        # closing the transport logs on the caller's thread (connection pools): not shipped
        with internal():
            return self._close(timeout)

    def _close(self, timeout: float) -> bool:
        if self._closed:
            return self._idle()
        # a destination that is down gets one more try, not the whole timeout: the spool keeps
        # the rest for the next process
        delivered = self.flush(timeout, give_up_if_down=True)
        self._closed = True
        self._stop.set()
        self._wake.set()
        with self._lock:
            self._work.notify_all()
        # one deadline for all the joins: senders stop after their request in flight, so
        # close never waits (senders + 1) x timeout
        deadline = self._mono() + max(1.0, timeout)
        alive: list[str] = []
        for t in [self._pump, *self._senders]:
            if t is not None and t.ident is not None:  # a forked child may never have started
                t.join(timeout=max(0.0, deadline - self._mono()))
                if t.is_alive():
                    alive.append(t.name)
        with self._lock:
            if self._spool_down_until is not None:  # one more try of a failing spool
                self._spool_down_until = self._mono() - 1.0
            self._spill(everything=True)
            if self.spool is None or self._pending:  # nowhere to keep them: lost, and counted
                n = sum(len(b) for b in self._pending)
                if n:
                    self._drop(n, "closed with nowhere to keep them (no working spool)")
                self._pending.clear()
                self._pending_bytes = 0
            if self.spool is not None and not alive:
                self.spool.close()
        if alive:
            # a thread stuck in a request still uses the spool and the connection: closing
            # them under it would corrupt the spool; the process exit releases both
            log.warning("logsight shipper: %s still running after %.1fs; spool and connection "
                        "left open", ", ".join(alive), max(1.0, timeout))
        else:
            self.transport.close()
        _live.discard(self)
        self._dead_log.flush()
        self._drop_log.flush()
        c = self.counters
        if c.dropped + c.rejected:
            log.warning("logsight shipper %s: %d event(s) were dropped (see the counters: %s)",
                        self._name, c.dropped + c.rejected, c.as_dict())
        return delivered

    # -- pump thread --------------------------------------------------------------------
    def _pump_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            stopping = self._stop.is_set()
            try:
                self._pump_once()
            except Exception:  # the worker must survive anything
                log.exception("logsight shipper: pump failed")
            if not self._queue:
                self._wake.clear()
            if stopping and not self._queue:
                self._pump_done.set()
                return

    def _pump_once(self) -> None:
        self._pumping = True
        try:
            self._drain()
        finally:
            self._pumping = False

    def _drain(self) -> None:
        q = self._queue
        encode = self.transport.encode
        batch: list[bytes] = []
        size = 0
        batches: list[tuple[list[bytes], int]] = []
        bad = 0
        n = 0
        while q:
            kind, doc = q.popleft()
            n += 1
            try:
                rec = encode(kind, doc)
            except Exception:
                bad += 1
                continue
            if batch and (len(batch) >= self.batch_size or size + len(rec) > self.max_batch_bytes):
                batches.append((batch, size))
                batch, size = [], 0
            batch.append(rec)
            size += len(rec)
            if len(batches) >= 4:  # hand over regularly so the sender starts early
                self._hand_over(batches, n, bad)
                batches, n, bad = [], 0, 0
        if batch:
            batches.append((batch, size))
        self._hand_over(batches, n, bad)

    def _hand_over(self, batches: list[tuple[list[bytes], int]], drained: int, bad: int) -> None:
        with self._lock:
            self._drained += drained
            if bad:
                self._drop(bad, "the document could not be encoded")
            for b, size in batches:
                self._pending.append(b)
                self._pending_bytes += size
            self._spill(everything=not self._healthy)
            self._work.notify_all()

    def _spill(self, *, everything: bool) -> None:
        """Move the oldest in-memory batches to the spool (lock held). Without a spool, keep
        up to ``max_memory_bytes`` and drop the oldest beyond it."""
        if self.spool is not None and self._spool_usable():
            limit = 0 if everything else self.max_memory_bytes
            while self._pending and self._pending_bytes > limit:
                batch = self._pending.popleft()
                size = sum(len(r) for r in batch)
                self._pending_bytes -= size
                try:
                    taken = self.spool.append(batch)
                except OSError as e:  # disk full, I/O error: the batch stays in memory
                    self._pending.appendleft(batch)
                    self._pending_bytes += size
                    self._spool_failed(e)
                    break
                self._spool_ok()
                self._c.spooled += taken
                if taken < len(batch):
                    self._drop(len(batch) - taken, "the spool is full (spool_max_bytes)")
        # without a (working) spool, memory is the only buffer: its bound drops the oldest
        while self._pending and self._pending_bytes > self.max_memory_bytes:
            batch = self._pending.popleft()
            self._pending_bytes -= sum(len(r) for r in batch)
            self._drop(len(batch), f"memory buffer full (max_memory_bytes "
                                   f"{self.max_memory_bytes})")

    def _drop(self, n: int, why: str) -> None:
        """(Lock held.) Count ``n`` lost records and say so (rate-limited)."""
        self._c.dropped += n
        self._drop_log.warning("logsight shipper: %d event(s) dropped since the last warning: "
                               "%s", why, n=n)

    def _spool_usable(self) -> bool:
        until = self._spool_down_until
        return until is None or self._mono() >= until

    def _spool_failed(self, e: OSError) -> None:
        """(Lock held.) A spool write failed: memory buffers until the next try, with one
        warning for the whole episode (not one per batch)."""
        self._c.spool_errors += 1
        first = self._spool_down_until is None
        self._spool_down_until = self._mono() + _SPOOL_RETRY
        if first:
            full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            log.warning("logsight shipper: %s (%s); buffering in memory (at most %d bytes) and "
                        "trying the spool again every %.0fs", "disk full" if full
                        else "spool write failed", e, self.max_memory_bytes, _SPOOL_RETRY)

    def _spool_ok(self) -> None:
        if self._spool_down_until is not None:
            self._spool_down_until = None
            log.warning("logsight shipper: the spool is writable again")

    # -- sender thread ------------------------------------------------------------------
    def _send_loop(self, logs_stats: bool) -> None:
        last_stats = self._mono()
        while True:
            with self._lock:
                while True:
                    if self._stop.is_set():
                        # after the request in flight: what remains is spooled by close()
                        # for the next process
                        return
                    has_work = bool(self._pending) or (self.spool is not None
                                                       and self.spool.unread)
                    wait = self._next_attempt - self._mono()
                    # while the destination is down, one request probes it (not all senders)
                    calm = self._healthy and not self._pressure
                    if has_work and wait <= 0 and (calm or self._inflight == 0):
                        break
                    self._work.wait(timeout=min(self.flush_interval, wait) if wait > 0
                                    else self.flush_interval)
                records, token = self._next_batch()
                self._inflight += len(records)
                if token is None:
                    self._inflight_mem += len(records)
            try:
                self._send(records, token)
            except Exception as e:  # a bug must neither lose the batch nor block the spool
                log.exception("logsight shipper: send failed")
                try:
                    self._failed(records, token, repr(e))
                except Exception:
                    log.exception("logsight shipper: keeping a failed batch failed")
            finally:
                with self._lock:
                    self._inflight -= len(records)
                    if token is None:
                        self._inflight_mem -= len(records)
            if (logs_stats and self.stats_interval
                    and self._mono() - last_stats >= self.stats_interval):
                last_stats = self._mono()
                log.info("logsight shipper counters: %s", self.counters.as_dict())

    def _next_batch(self) -> tuple[list[bytes], Any]:
        # the spool first: it holds the oldest events
        if self.spool is not None and self.spool.unread:
            records, token = self.spool.read(self.batch_size, self.max_batch_bytes)
            if records:
                return records, token
        if self._pending:
            batch = self._pending.popleft()
            self._pending_bytes -= sum(len(r) for r in batch)
            return batch, None
        return [], None

    def _send(self, records: list[bytes], token: Any) -> None:
        if not records:
            return
        # a 413 splits the batch in halves sent here, one after the other, so the spool's read
        # (token) is committed only once every record of it is delivered or durable again
        chunks: list[list[bytes]] = [records]
        ok = duplicates = dead_ok = 0
        retry: list[bytes] = []
        failed: list[ItemFailure] = []
        while chunks:
            chunk = chunks.pop(0)
            try:
                result = self.transport.send(chunk)
            except TooLarge:
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    chunks[:0] = [chunk[:half], chunk[half:]]
                else:
                    failed.append(ItemFailure(chunk[0], 413, "too_large", "record too large"))
                continue
            except Unavailable as e:
                with self._lock:
                    if token is None:  # from the spool, the whole read is sent again
                        self._c.sent += ok
                        self._c.duplicates += duplicates
                        self._c.dead_lettered += dead_ok
                if token is not None:  # the spool hands the whole read out again
                    self._failed(records, token, str(e))
                    return
                self._failed(retry + [r for c in [chunk, *chunks] for r in c], None, str(e))
                if failed:
                    self._dead_letter(failed)
                return
            ok += result.ok
            duplicates += result.duplicates
            dead_ok += result.dead_lettered
            retry += result.retry
            failed += result.failed
        dead, lost = self._dead_letter_records(failed)
        with self._lock:
            if self._failures:
                log.info("logsight shipper: destination is back after %d failures",
                         self._failures)
            self._healthy = True
            self._failures = 0
            if token is not None and self.spool is not None and not self.spool.current(token):
                # the spool was rewound after this read (Spool.rewind): its records are read
                # and sent again (the stored ones then answer 409), so they are counted
                # then, once, and nothing of this answer is kept
                self._work.notify_all()
                return
            self._c.sent += ok
            self._c.duplicates += duplicates
            self._c.dead_lettered += dead_ok
            if lost:
                self._drop(lost, "a dead letter was refused")
            if failed:
                self._note_dead(failed)
            if retry:
                self._c.retried += len(retry)
                # the cluster is pushing back (429, a write block): one back-off for all the
                # senders, growing while it lasts (capped at backoff_max), and one probe
                if not self._pressure:
                    log.warning("logsight shipper: the destination pushes back (%d of %d "
                                "records to retry); backing off", len(retry), len(records))
                self._pressure += 1
                self._next_attempt = self._mono() + self._backoff(self._pressure)
            elif self._pressure:
                log.warning("logsight shipper: the destination takes records again after %d "
                            "push-back(s)", self._pressure)
                self._pressure = 0
            if token is not None:
                # acknowledged off the spool: what still has to go is made durable first
                if not self._keep_durable(retry + dead, token):
                    return
            else:
                if retry:
                    self._pending.appendleft(list(retry))
                    self._pending_bytes += sum(len(r) for r in retry)
                if dead:
                    self._pending.append(dead)
                    self._pending_bytes += sum(len(r) for r in dead)
            self._work.notify_all()

    def _keep_durable(self, records: list[bytes], token: Any) -> bool:
        """(Lock held.) Append ``records`` (retries, dead letters) to the spool, then commit
        ``token``: what still has to go is durable before the read is marked delivered. A
        full or failing spool keeps the rest in memory (degraded, as :meth:`_spill` does)."""
        spool = self.spool
        assert spool is not None  # a token comes from the spool
        if records:
            taken = 0
            if self._spool_usable():
                try:
                    taken = spool.append(records)
                except OSError as e:  # disk full: memory keeps them (degraded, bounded)
                    self._spool_failed(e)
                else:
                    self._spool_ok()
            self._c.spooled += taken
            if taken < len(records):  # the spool is full or failing: memory is the overflow
                rest = records[taken:]
                self._pending.appendleft(rest)
                self._pending_bytes += sum(len(r) for r in rest)
                self._spill(everything=False)
        spool.commit(token)
        return True

    def _failed(self, records: list[bytes], token: Any, reason: str) -> None:
        with self._lock:
            self._failures += 1
            if self._healthy:
                log.warning("logsight shipper: destination unavailable (%s); spooling", reason)
            self._healthy = False
            self._c.retried += len(records)
            self._next_attempt = self._mono() + self._backoff(self._failures)
            if token is None:  # an in-memory batch: back to the front, then to disk
                self._pending.appendleft(records)
                self._pending_bytes += sum(len(r) for r in records)
            elif self.spool is not None:  # this read is sent again; the others stand
                self.spool.retry(token)
            self._spill(everything=True)

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with "equal jitter": half fixed, half random."""
        delay = min(self.backoff_max, self.backoff_initial * (2 ** min(failures - 1, 30)))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _dead_letter_records(self, failures: list[ItemFailure]) -> tuple[list[bytes], int]:
        """(dead-letter records, how many failures have none: lost)."""
        records: list[bytes] = []
        lost = 0
        for f in failures:
            try:
                rec = self.transport.deadletter(f, self._clock)
            except Exception:
                rec = None
            if rec is None:
                lost += 1
            else:
                records.append(rec)
        return records, lost

    def _note_dead(self, failures: list[ItemFailure]) -> None:
        """(Lock held.) Say that records are being dead-lettered, and why (rate-limited)."""
        f = failures[-1]
        self._dead_log.warning(
            "logsight shipper: %d event(s) refused for good since the last warning, sent to "
            "the dead-letter index (last: %s %s: %s)", f.status, f.error_type, f.reason[:300],
            n=len(failures))

    def _dead_letter(self, failures: list[ItemFailure]) -> None:
        records, lost = self._dead_letter_records(failures)
        with self._lock:
            if lost:
                self._drop(lost, "a dead letter was refused")
            self._note_dead(failures)
            if records:
                self._pending.append(records)
                self._pending_bytes += sum(len(r) for r in records)
                self._work.notify_all()
