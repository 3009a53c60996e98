"""A small in-process cache of finished response bodies for the read-only analysis routes,
with single flight: concurrent identical requests wait for one computation.

An on-call engineer (and their dashboards, and their colleagues) asks the same question again
and again during an incident; recomputing a critical path per request made ``/v1/bottlenecks``
queue for seconds. Entries are serialised JSON bodies (a hit costs neither the analysis nor
the response model), bounded by count and bytes (least recently used go first), each with its
own time to live chosen by the caller. Failures are never stored.

The in-flight table and the entries are guarded by a threading lock and in-flight results are
``concurrent.futures.Future`` objects, not asyncio ones: a test client may drive the same app
from several event loops, and a waiter must never await a future of another loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedBody:
    """One stored (or just computed) response body; times are on the cache's clock."""

    body: bytes
    stored_at: float
    expires_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int  # computations started
    joined: int  # requests that waited for a computation already running
    evictions: int
    entries: int
    bytes: int
    in_flight: int


@dataclass(frozen=True)
class Lookup:
    entry: CachedBody
    hit: bool  # False: this request ran the computation


class _LeaderGone(Exception):
    """The request computing a key was cancelled before it finished: a waiter takes over."""


class ResultCache:
    """LRU of response bodies keyed by normalised request parameters, with single flight.

    ``clock`` returns seconds (monotonic or epoch; only differences matter); a clock that
    goes backwards expires what it stored after the jump, never keeps it longer."""

    def __init__(
        self,
        *,
        max_entries: int = 256,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache bounds must not be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, CachedBody] = OrderedDict()
        self._bytes = 0
        self._in_flight: dict[Hashable, concurrent.futures.Future[CachedBody]] = {}
        self._hits = self._misses = self._joined = self._evictions = 0

    def now(self) -> float:
        return self._clock()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._joined, self._evictions,
                              len(self._entries), self._bytes, len(self._in_flight))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get(self, key: Hashable) -> CachedBody | None:
        """The fresh entry of ``key`` (counted as a hit), or None."""
        with self._lock:
            return self._fresh(key, self._clock())

    def _fresh(self, key: Hashable, now: float) -> CachedBody | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.stored_at <= now < entry.expires_at:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.body)

    def put(self, key: Hashable, body: bytes, ttl: float) -> CachedBody:
        """Store ``body`` for ``ttl`` seconds (not at all when ttl <= 0 or it cannot fit)."""
        now = self._clock()
        if ttl <= 0 or self.max_entries == 0 or len(body) > self.max_bytes:
            with self._lock:  # an older answer for the key must not outlive this newer one
                if key in self._entries:
                    self._drop(key)
            return CachedBody(body, now, now)  # expired at once: nobody may reuse it
        entry = CachedBody(body, now, now + ttl)
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += len(body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                self._evictions += 1
        return entry

    async def get_or_compute(
        self, key: Hashable, compute: Callable[[], Awaitable[tuple[bytes, float]]]
    ) -> Lookup:
        """The fresh entry of ``key``; otherwise run ``compute`` (returning the body and its
        time to live in seconds) once, however many requests ask for ``key`` meanwhile.

        Waiters get the computation's exception when it fails (nothing is stored); when the
        computing request is cancelled one of the waiters computes instead."""
        while True:
            with self._lock:
                entry = self._fresh(key, self._clock())
                if entry is not None:
                    return Lookup(entry, hit=True)
                future = self._in_flight.get(key)
                leader = future is None
                if future is None:
                    future = concurrent.futures.Future()
                    # a running future cannot be cancelled: a waiter that gives up (its
                    # client went away) must not cancel the result for the others
                    future.set_running_or_notify_cancel()
                    self._in_flight[key] = future
                    self._misses += 1
                else:
                    self._joined += 1
            if leader:
                return Lookup(await self._lead(key, future, compute), hit=False)
            shared = asyncio.wrap_future(future)
            # read the outcome even when this waiter is cancelled meanwhile (no "exception
            # never retrieved" noise); shield: cancelling one waiter must not cancel it
            shared.add_done_callback(lambda f: f.cancelled() or f.exception())
            try:
                return Lookup(await asyncio.shield(shared), hit=True)
            except _LeaderGone:
                continue

    async def _lead(
        self, key: Hashable, future: concurrent.futures.Future[CachedBody],
        compute: Callable[[], Awaitable[tuple[bytes, float]]],
    ) -> CachedBody:
        try:
            body, ttl = await compute()
            entry = self.put(key, body, ttl)
        except asyncio.CancelledError:
            self._finish(key, future, error=_LeaderGone())
            raise
        except BaseException as e:
            self._finish(key, future, error=e)
            raise
        self._finish(key, future, result=entry)
        return entry

    def _finish(self, key: Hashable, future: concurrent.futures.Future[CachedBody], *,
                result: CachedBody | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)
