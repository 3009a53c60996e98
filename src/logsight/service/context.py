"""What every route of the API shares: the engine holder, the settings, the result cache, the
worker threads and analysis slots, the time windows of a request, the name checks, and the one
call into the jobs (:meth:`ServiceContext.run`, where a job's error kinds become answers).

The routes (``logsight.service.routes``) get a :class:`ServiceContext` from the app factory.
"""

# no `from __future__ import annotations`: FastAPI reads signatures at runtime
import functools
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi.responses import Response
from pydantic import BaseModel

from logsight import names
from logsight.engine import Engine, EngineAuthError, EngineError, EngineUnavailable
from logsight.errors import Busy, LogsightError
from logsight.findings import KINDS, Finding
from logsight.jobs import JOBS, JobParams, JobResult
from logsight.jobs.catalog import KnownNames, namespaces_seen, values_seen
from logsight.service.cache import Lookup, ResultCache
from logsight.service.errors import RequestTimeout, api_error, bad_request, not_found
from logsight.service.models import (
    AnalysisResponse,
    FindingOut,
    TimeError,
    Window,
    check_window,
    floor_minute,
    is_relative,
    parse_time,
)
from logsight.service.selflog import ServiceLog
from logsight.service.settings import ServiceSettings
from logsight.timeutil import iso

EngineFactory = Callable[[], Engine]
Clock = Callable[[], datetime]
Runner = Callable[[Engine, str, JobParams], JobResult]
T = TypeVar("T")

AnalysisKind = Literal["bottlenecks", "trace_completion", "trace_regressions", "log_anomalies",
                       "drift", "performance", "dependencies", "canary", "cost",
                       "resource_anomalies"]
FindingKind = Literal[KINDS]  # type: ignore[valid-type]  # a Literal built from the tuple
if set(AnalysisKind.__args__) != set(JOBS):  # type: ignore[attr-defined]  # typing API
    # a real check, not an assert: -O strips asserts and the route would then accept kinds
    # JOBS does not know (or hide ones it does)
    raise RuntimeError(f"AnalysisKind {sorted(AnalysisKind.__args__)} "  # type: ignore[attr-defined]  # typing API
                       f"does not match JOBS {sorted(JOBS)}")


def default_engine_factory() -> Engine:
    from logsight.engine import connect

    return connect()


class EngineHolder:
    """Connects on first use (the service starts even while the cluster is down) and keeps
    the one engine for every request and the scheduler."""

    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                try:
                    self._engine = self._factory()
                except (EngineUnavailable, EngineAuthError):  # auth: a config error (502)
                    raise
                except EngineError as e:
                    raise EngineUnavailable(e.status, e.message) from e
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


def _finding_out(f: Finding | dict[str, Any]) -> FindingOut:
    doc = f.to_document() if isinstance(f, Finding) else f
    return FindingOut.model_validate(doc)


def _json(body: BaseModel) -> bytes:
    return body.model_dump_json(by_alias=True).encode()


def times_key(
    now: datetime, windows: Sequence[tuple[tuple[str, str | None], tuple[str, str | None]]],
) -> tuple[tuple[Any, ...], bool]:
    """The time parameters of a request as part of a cache key, and whether they fix the
    windows in time.

    ``windows`` are ``((start name, raw), (end name, raw))``, the first the main window (its
    absent end is now). Ages become offsets from now (``1h``, ``60m``, ``now-1h`` share a
    key; a request a few seconds later for the "same" last hour hits), absolute times their
    UTC instant. Fixed means no window moves with the clock: every window given at all has an
    absolute end, and no part is an age. Parameters must already be valid (parsed once)."""
    parts: list[tuple[Any, ...]] = []
    fixed = True
    for i, window_ in enumerate(windows):
        given = any(raw is not None and raw.strip() for _, raw in window_)
        if (i == 0 or given) and is_relative(window_[1][1]):
            fixed = False
        for j, (name, raw) in enumerate(window_):
            if raw is None or not raw.strip():
                # an absent end of a window in play is now; an absent start is derived
                parts.append((name, "now", 0.0) if j == 1 and (i == 0 or given) else (name,))
                continue
            t = parse_time(raw, now=now, name=name)
            assert t is not None
            if is_relative(raw):
                fixed = False
                parts.append((name, "now", (t - now).total_seconds()))
            else:
                parts.append((name, "at", iso(t)))
    return tuple(parts), fixed


class ServiceContext:
    """The state and the shared steps of the routes of one app."""

    def __init__(self, cfg: ServiceSettings, holder: EngineHolder, *, clock: Clock,
                 runner: Runner, log: ServiceLog) -> None:
        self.cfg = cfg
        self.holder = holder
        self.clock = clock
        self.runner = runner
        self.log = log
        self.known = KnownNames(cfg.known_ttl)
        self.cache = ResultCache(max_entries=cfg.cache_size, max_bytes=cfg.cache_max_bytes,
                                 clock=lambda: clock().timestamp())
        # a window counts as past (long TTL) once late data can no longer change it
        self.settled = max(cfg.cache_ttl, cfg.scheduler_lag.total_seconds())
        # a thread semaphore, not an anyio limiter: a request that times out abandons its
        # thread, and anyio would hand the limiter token back while the analysis still runs
        # (and holds its PITs); the slot must stay taken until the thread itself is done
        self.analysis_slots = threading.BoundedSemaphore(cfg.analysis_threads)
        self.scheduler: Any = None  # the app's Scheduler, when it runs one (for /health)

    def in_slot(self, fn: Callable[[], T], abandoned: threading.Event) -> Callable[[], T]:
        """``fn`` self.run in an analysis slot, taken and released by the worker thread itself, so
        an abandoned (timed-out) analysis keeps its slot until it really ends. No free slot
        within ``analysis_slot_wait`` is a 503: waiting requests must not pile up."""

        def call() -> T:
            if not self.analysis_slots.acquire(timeout=self.cfg.analysis_slot_wait):
                raise Busy(f"all {self.cfg.analysis_threads} analysis slots are busy; try again "
                           "later", retry_after=self.cfg.retry_after)
            try:
                if abandoned.is_set():  # the request gave up while this thread waited
                    raise RequestTimeout(self.cfg.request_timeout)
                return fn()
            finally:
                self.analysis_slots.release()

        return call

    async def blocking(self, fn: Callable[..., T], *args: Any, analysis_slot: bool = False,
                       **kw: Any) -> T:
        """``fn(*args, **kw)`` in a worker thread under the request timeout (504 after it;
        the thread is abandoned, not stopped); ``analysis_slot`` runs it in one of the
        ``analysis_threads`` analysis slots."""
        abandoned = threading.Event()
        call: Callable[[], T] = functools.partial(fn, *args, **kw)
        if analysis_slot:
            call = self.in_slot(call, abandoned)
        try:
            with anyio.fail_after(self.cfg.request_timeout):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            abandoned.set()
            raise RequestTimeout(self.cfg.request_timeout) from None

    def time_to_live(self, fixed: bool, ends: Sequence[datetime]) -> float:
        if fixed and max(ends) <= self.clock() - timedelta(seconds=self.settled):
            return self.cfg.cache_past_ttl
        return self.cfg.cache_ttl

    async def cached(self, key: tuple[Any, ...], fixed: bool, ends: Sequence[datetime],
                     work: Callable[[], bytes]) -> Response:
        """Answer ``key`` from the self.cache or compute it once (``work`` runs in the analysis
        pool and returns the JSON body); errors propagate and are never stored."""

        async def compute() -> tuple[bytes, float]:
            body = await self.blocking(work, analysis_slot=True)
            return body, self.time_to_live(fixed, ends)

        return self.cache_response(await self.cache.get_or_compute(key, compute))

    def cache_response(self, found: Lookup) -> Response:
        now = self.cache.now()
        entry = found.entry
        left = int(entry.remaining(now))
        return Response(entry.body, media_type="application/json", headers={
            "X-Logsight-Cache": "hit" if found.hit else "miss",
            "Age": str(int(entry.age(now))),
            "Cache-Control": f"private, max-age={left}" if left > 0 else "no-store",
        })

    def resolve(self, raw: str | None, name: str, now: datetime, align: bool) -> datetime | None:
        """One time parameter against the request's one ``now``; with ``align`` a relative
        time (an age, ``now``) is floored to the whole minute."""
        t = parse_time(raw, now=now, name=name)
        if t is not None and align and is_relative(raw):
            t = floor_minute(t)
        return t

    def parse_window(self, start: str | None, end: str | None, *, now: datetime,
                     align: bool = False) -> tuple[datetime, datetime]:
        """The ``[from, to)`` window, every time resolved against ``now`` (the request's one
        reading of the self.clock); ``align`` floors its relative times to the minute."""
        try:
            e = self.resolve(end, "to", now, align) or (floor_minute(now) if align else now)
            s = self.resolve(start, "from", now, align) or e - self.cfg.default_window
            check_window(s, e, max_window=self.cfg.max_window)
        except TimeError as err:
            raise bad_request(str(err), "bad_time") from None
        return s, e

    def baseline_window(self, start: datetime, end: datetime, bstart: str | None, bend: str | None,
                        names_: tuple[str, str], *, now: datetime, kind: str,
                        align: bool = False) -> tuple[datetime, datetime]:
        """The baseline (reference) window of ``[start, end)``: it ends where the window
        starts unless ``bend`` says otherwise, and starts one window length before its end
        unless ``bstart`` says otherwise. Log anomalies need ``baseline_to = from`` (after
        resolution); any other baseline must not overlap the window (400
        ``overlapping_windows``)."""
        bf, bt = names_
        try:
            be = self.resolve(bend, bt, now, align) or start
            bs = self.resolve(bstart, bf, now, align) or be - (end - start)
            check_window(bs, be, max_window=self.cfg.max_window, names=names_)
        except TimeError as err:
            raise bad_request(str(err), "bad_time") from None
        if kind == "log_anomalies" and be != start:
            raise bad_request(
                f"log anomalies need a baseline that ends where the window starts ({bt} = "
                f"from): {bt} resolved to {iso(be)}, from to {iso(start)}; leave {bt} out "
                f"(it defaults to from) or give the same time")
        if bs < end and start < be:
            raise bad_request(
                f"the {bf}/{bt} window [{iso(bs)}, {iso(be)}) overlaps the current window "
                f"from/to [{iso(start)}, {iso(end)}); end it at or before from ({bt} "
                f"defaults to from)", "overlapping_windows")
        return bs, be

    def check_namespace(self, namespace: str | None) -> str | None:
        ns = namespace or self.cfg.namespace
        if ns is None:
            return None
        try:
            return names.check_namespace(ns)
        except ValueError as e:
            raise bad_request(str(e), "bad_namespace") from None

    data_kinds = (names.LOGS, names.TRACES, names.MLEVENTS)

    def require_namespace(self, engine: Engine, namespace: str | None) -> None:
        """404 ``unknown_namespace`` when ``namespace`` holds no data at all (a typo would
        otherwise answer an empty result, as if all were well). A namespace with data, just
        not of this analysis's stream, is self.known: its answer is an honest empty one."""
        if namespace is None:
            return
        if self.known.has_data(engine, [names.stream(k, namespace) for k in self.data_kinds]):
            return
        seen = namespaces_seen(engine, self.data_kinds)
        shown = seen[:50]
        more = f" (and {len(seen) - len(shown)} more)" if len(seen) > len(shown) else ""
        raise not_found(f"unknown namespace {namespace!r}: no logs, traces or mlevents data "
                        f"in it; namespaces with data: {shown}{more}", "unknown_namespace",
                        details={"namespaces": shown})

    def require_known(self, engine: Engine, what: str, value: str | None, kinds: Sequence[str],
                      namespace: str | None, *, findings: bool = False) -> None:
        if value is None:
            return
        if what == "model":
            fields: Sequence[str] = [names.F.ML_MODEL, "model"]
        else:
            fields = [names.F.SERVICE, "service"]
        indices = [names.read_target(k, namespace) for k in kinds]
        if findings:
            indices.append(names.FINDINGS_INDEX)
        if not self.known.exists(engine, indices, fields, value):
            where = ", ".join(kinds) + (" or findings" if findings else "")
            in_ns = f" in namespace {namespace!r}" if namespace else ""
            seen = values_seen(engine, [names.read_target(k, namespace) for k in kinds],
                               fields[0])
            raise not_found(f"unknown {what} {value!r}: no {where} data from it{in_ns}; "
                            f"{what}s seen: {seen}", f"unknown_{what}",
                            details={f"{what}s": seen})

    def require_version(self, engine: Engine, model: str | None, version: str | None,
                        namespace: str | None) -> None:
        """404 ``unknown_version`` when ``model`` never sent events of ``version`` (the
        analysis would otherwise answer an empty report)."""
        if model is None or version is None:
            return
        index = names.read_target(names.MLEVENTS, namespace)
        within = {names.F.ML_MODEL: model}
        if self.known.exists(engine, [index], [names.F.ML_VERSION], version, within=within):
            return
        seen = values_seen(engine, [index], names.F.ML_VERSION, within=within)
        in_ns = f" in namespace {namespace!r}" if namespace else ""
        raise not_found(f"unknown version {version!r} of model {model!r}: no mlevents data "
                        f"from it{in_ns}; versions seen: {seen}", "unknown_version",
                        details={"versions": seen})

    def run(self, kind: str, params: JobParams, *, check: Callable[[Engine], None] | None = None,
            baseline_names: tuple[str, str] = ("baseline_from", "baseline_to")) -> \
            tuple[list[dict[str, Any]], list[Finding]]:
        result = self.run_result(kind, params, check=check, baseline_names=baseline_names)
        return result.rows(), list(result.findings)

    def run_result(self, kind: str, params: JobParams, *,
                   check: Callable[[Engine], None] | None = None,
                   baseline_names: tuple[str, str] = ("baseline_from", "baseline_to")
                   ) -> JobResult:
        """:meth:`run`, returning the job's whole result (e.g. where an answer came from)."""
        engine = self.holder.get()
        if check is not None:
            check(engine)
        try:
            result = self.runner(engine, kind, params)
        except EngineUnavailable:
            raise  # its own answer (503, Retry-After, no detail)
        except LogsightError as e:
            # the jobs name their request fields; the route's own names go into the answer
            raise api_error(e, {
                "window": "from/to", "window.start": "from", "window.end": "to",
                "baseline": "/".join(baseline_names), "baseline.start": baseline_names[0],
                "baseline.end": baseline_names[1], "reference": "/".join(baseline_names),
            }) from None
        return result

    def analysis_response(self, kind: str, s: datetime, e: datetime,
                          base: tuple[datetime, datetime] | None, write: bool,
                          out: tuple[list[dict[str, Any]], list[Finding]], *,
                          aligned: bool = False) -> AnalysisResponse:
        rows, findings = out
        mark = "1m" if aligned else None
        return AnalysisResponse(
            kind=kind, window=Window(start=iso(s), end=iso(e), aligned=mark),
            baseline=Window(start=iso(base[0]), end=iso(base[1]), aligned=mark)
            if base else None,
            written=write, results=rows, findings=[_finding_out(f) for f in findings],
        )

    async def compared_windows(
        self, kind: str, window_: tuple[str | None, str | None],
        baseline: tuple[str | None, str | None], baseline_names: tuple[str, str],
        namespace: str | None, **params: Any,
    ) -> Response:
        """A read-only analysis of the current window against a baseline window, answered
        from the self.cache. ``params`` (``service``, or ``model`` and maybe ``version``) go to the
        analysis and into the self.cache key; the model, else the service, must have sent data."""
        now = self.clock()
        s, e = self.parse_window(*window_, now=now)
        b = self.baseline_window(s, e, *baseline, baseline_names, now=now, kind=kind)
        ns = self.check_namespace(namespace)
        times, fixed = times_key(now, [
            (("from", window_[0]), ("to", window_[1])),
            ((baseline_names[0], baseline[0]), (baseline_names[1], baseline[1]))])
        what = "model" if "model" in params else "service"

        def check(engine: Engine) -> None:
            self.require_namespace(engine, ns)
            self.require_known(engine, what, params[what], [JOBS[kind].stream], ns)
            if what == "model":
                self.require_version(engine, params["model"], params.get("version"), ns)

        def work() -> bytes:
            out = self.run(kind, JobParams(start=s, end=e, baseline_start=b[0], baseline_end=b[1],
                                   namespace=ns, write=False, **params), check=check,
                      baseline_names=baseline_names)
            return _json(self.analysis_response(kind, s, e, b, False, out))

        return await self.cached((kind, ns, *params.values(), times), fixed, [e, b[1]], work)
