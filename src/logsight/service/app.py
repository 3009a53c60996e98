"""The HTTP API: ``create_app(engine_factory=..., settings=...)`` builds a fresh app with all
its state on ``app.state`` (engine holder, settings, scheduler), so tests build as many as they
like and nothing is global.

Every cluster call runs in a worker thread under the request timeout; a client's mistake is a
4xx with a message saying what is wrong, an unreachable cluster a 503 with Retry-After.

The read-only analysis routes (``GET /v1/bottlenecks``, ``/v1/anomalies``, ``/v1/drift``,
``/v1/performance``) answer from a short-lived result cache with single flight
(:mod:`logsight.service.cache`), and compute in a thread pool of their own
(``analysis_threads``) so cheap requests (``/health``, ``/v1/findings``) never wait for a
thread behind them.
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime and
# some refer to this factory's locals (the page-size limit)
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from logsight import __version__, names
from logsight.engine import Engine, EngineAuthError, EngineError, EngineUnavailable
from logsight.findings import KINDS, Finding, read_findings
from logsight.service.analyses import (
    ANALYSES,
    AnalysisUnavailable,
    Params,
    api_message,
    availability,
    run_analysis,
)
from logsight.service.auth import make_auth_dependency
from logsight.service.cache import Lookup, ResultCache
from logsight.service.errors import (
    REFUSED,
    ApiError,
    RequestTimeout,
    bad_request,
    error_responses,
    install_error_handlers,
    not_found,
    unknown_parameters,
)
from logsight.service.models import (
    AnalysisRequest,
    AnalysisResponse,
    BottleneckRow,
    BottlenecksResponse,
    EngineHealth,
    FindingOut,
    FindingsPage,
    Health,
    SchedulerHealth,
    Severity,
    TimeError,
    Window,
    check_window,
    decode_cursor,
    encode_cursor,
    floor_minute,
    is_relative,
    parse_time,
)
from logsight.service.scheduler import ScheduledTask, Scheduler, default_tasks, utc_now
from logsight.service.selflog import ServiceLog, service_log
from logsight.service.settings import ServiceSettings
from logsight.timeutil import iso

EngineFactory = Callable[[], Engine]
Clock = Callable[[], datetime]
Runner = Callable[[Engine, str, Params], tuple[list[dict[str, Any]], list[Finding]]]
T = TypeVar("T")

AnalysisKind = Literal["bottlenecks", "trace_regressions", "log_anomalies", "drift", "performance"]
FindingKind = Literal[KINDS]  # type: ignore[valid-type]  # a Literal built from the tuple
if set(AnalysisKind.__args__) != set(ANALYSES):  # type: ignore[attr-defined]  # typing API
    # a real check, not an assert: -O strips asserts and the route would then accept kinds
    # ANALYSES does not know (or hide ones it does)
    raise RuntimeError(f"AnalysisKind {sorted(AnalysisKind.__args__)} "  # type: ignore[attr-defined]  # typing API
                       f"does not match ANALYSES {sorted(ANALYSES)}")


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


class KnownNames:
    """Whether a service or model has ever sent data; positive answers are cached for
    ``ttl`` seconds (a hot endpoint should not ask the cluster every time)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._seen: dict[tuple[Any, ...], float] = {}

    def exists(self, engine: Engine, indices: Sequence[str], fields: Sequence[str],
               value: str, *, within: Mapping[str, str] | None = None) -> bool:
        """Whether any document of ``indices`` has ``value`` in one of ``fields`` (and the
        ``within`` field values, e.g. a version of one model)."""
        key = (",".join(indices), ",".join(fields), value,
               tuple(sorted((within or {}).items())))
        now = self._clock()
        if self._seen.get(key, 0.0) > now:
            return True
        query = {"bool": {"should": [{"term": {f: value}} for f in fields],
                          "minimum_should_match": 1,
                          "filter": [{"term": {f: v}} for f, v in (within or {}).items()]}}
        return self._remember(key, now, engine.count(",".join(indices), query) > 0)

    def has_data(self, engine: Engine, indices: Sequence[str]) -> bool:
        """Whether ``indices`` hold any document (a namespace that has sent data)."""
        key = (",".join(indices),)
        now = self._clock()
        if self._seen.get(key, 0.0) > now:
            return True
        return self._remember(key, now, engine.count(",".join(indices)) > 0)

    def _remember(self, key: tuple[Any, ...], now: float, found: bool) -> bool:
        if found:
            if len(self._seen) > 10_000:  # bounded: names come from clients
                self._seen.clear()
            self._seen[key] = now + self.ttl
        return found


def values_seen(engine: Engine, indices: Sequence[str], field: str, *,
                within: Mapping[str, str] | None = None, limit: int = 20) -> list[str]:
    """Up to ``limit`` values of ``field`` in ``indices`` (most documents first), for a 404
    that says what does exist."""
    body: dict[str, Any] = {
        "size": 0,
        "query": {"bool": {"filter": [{"term": {f: v}} for f, v in (within or {}).items()]}},
        "aggs": {"seen": {"terms": {"field": field, "size": limit}}},
    }
    resp = engine.search(",".join(indices), body, ignore_unavailable="true",
                         allow_no_indices="true")
    buckets = resp.get("aggregations", {}).get("seen", {}).get("buckets", [])
    return sorted(str(b["key"]) for b in buckets)


def namespaces_seen(engine: Engine, kinds: Sequence[str]) -> list[str]:
    """The namespaces that have a data stream of one of ``kinds`` (for a 404 that says what
    does exist)."""
    found: set[str] = set()
    for kind in kinds:
        resp = engine.request("GET", f"/_data_stream/{names.stream_pattern(kind)}")
        prefix = names.stream_pattern(kind)[:-1]
        for ds in resp.get("data_streams", []) if isinstance(resp, Mapping) else []:
            name = str(ds.get("name", ""))
            if name.startswith(prefix):
                found.add(name[len(prefix):])
    return sorted(found)


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


def create_app(
    engine_factory: EngineFactory | None = None,
    settings: ServiceSettings | None = None,
    *,
    clock: Clock = utc_now,
    log_handle: Any = None,
    scheduler_tasks: Sequence[ScheduledTask] | None = None,
    runner: Runner = run_analysis,
    close_log_handle: bool = False,
) -> FastAPI:
    """A new app. ``engine_factory`` connects to the cluster (default: ``LOGSIGHT_URL``);
    ``settings`` default to :meth:`ServiceSettings.from_env`; ``clock`` is the service's now
    (time windows and the result cache's expiry); ``log_handle`` is a
    :class:`logsight.Logsight` for the service's own logs (stdlib logging without one);
    ``scheduler_tasks`` replace the default tasks (one per available analysis); ``runner``
    runs an analysis for the API routes (default :func:`run_analysis`);
    ``close_log_handle`` closes ``log_handle`` when the app shuts down (it owns it)."""
    cfg = settings or ServiceSettings.from_env()
    holder = EngineHolder(engine_factory or default_engine_factory)
    known = KnownNames(cfg.known_ttl)
    cache = ResultCache(max_entries=cfg.cache_size, max_bytes=cfg.cache_max_bytes,
                        clock=lambda: clock().timestamp())
    # a window counts as past (long TTL) once late data can no longer change it
    settled = max(cfg.cache_ttl, cfg.scheduler_lag.total_seconds())
    # a thread semaphore, not an anyio limiter: a request that times out abandons its thread,
    # and anyio would hand the limiter token back while the analysis still runs (and holds
    # its PITs); the slot must stay taken until the thread itself is done
    analysis_slots = threading.BoundedSemaphore(cfg.analysis_threads)
    log: ServiceLog = service_log(log_handle, "logsight.service")
    scheduler: Scheduler | None = None
    if cfg.scheduler:
        scheduler = Scheduler(
            holder.get,
            list(scheduler_tasks) if scheduler_tasks is not None else default_tasks(cfg),
            owner=cfg.replica_id, lease_ttl=cfg.lease_ttl, scope=cfg.namespace or "all",
            poll=cfg.scheduler_poll, clock=clock,
            log=service_log(log_handle, "logsight.scheduler"),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        log.info("service.started", auth=cfg.auth, scheduler=cfg.scheduler,
                 namespace=cfg.namespace or "*")
        try:
            yield
        finally:
            if scheduler is not None:
                await anyio.to_thread.run_sync(scheduler.stop)
            holder.close()
            log.info("service.stopped")
            if close_log_handle and log_handle is not None:
                await anyio.to_thread.run_sync(functools.partial(log_handle.close, timeout=5.0))

    app = FastAPI(
        title="logsight",
        version=__version__,
        description=(
            "Log and trace analytics for ML systems. Times are ISO-8601 (naive = UTC) or ages "
            "such as `15m`, `now-2h`, `7d`. Every `/v1` route needs an API key "
            "(`X-API-Key` or `Authorization: ApiKey <key>`) unless the service runs with "
            "`--no-auth`. An unknown query parameter (one the route does not document) is "
            "refused with 422 `invalid_request` naming it: a misspelt filter would otherwise "
            "be ignored and the answer cover more than was asked. "
            "`namespace` defaults to the service's configured namespace (`--namespace` / "
            "`LOGSIGHT_NAMESPACE`), all namespaces when none is configured."
        ),
        lifespan=lifespan,
    )
    app.state.settings = cfg
    app.state.engine = holder
    app.state.scheduler = scheduler
    app.state.cache = cache
    app.state.analysis_slots = analysis_slots
    install_error_handlers(app, retry_after=cfg.retry_after)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.failed", path=request.url.path, error=type(exc).__name__)
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    auth = make_auth_dependency(cfg.api_keys, enabled=cfg.auth)
    declared: dict[int, frozenset[str]] = {}

    def query_names(route: APIRoute) -> frozenset[str]:
        """The query parameters ``route`` declares (its own and its dependencies')."""
        found = declared.get(id(route))
        if found is None:
            names_: set[str] = set()
            stack = [route.dependant]
            while stack:
                dep = stack.pop()
                names_.update(p.alias for p in dep.query_params)
                stack.extend(dep.dependencies)
            found = declared[id(route)] = frozenset(names_)
        return found

    async def strict_query(request: Request) -> None:
        """422 for a query parameter the route does not declare (after auth: an anonymous
        caller learns nothing about the routes)."""
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return
        accepted = query_names(route)
        unknown = sorted({k for k in request.query_params if k not in accepted})
        if unknown:
            raise unknown_parameters(unknown, sorted(accepted))

    guarded = [Depends(auth), Depends(strict_query)]

    def in_slot(fn: Callable[[], T], abandoned: threading.Event) -> Callable[[], T]:
        """``fn`` run in an analysis slot, taken and released by the worker thread itself, so
        an abandoned (timed-out) analysis keeps its slot until it really ends. No free slot
        within ``analysis_slot_wait`` is a 503: waiting requests must not pile up."""

        def call() -> T:
            if not analysis_slots.acquire(timeout=cfg.analysis_slot_wait):
                raise ApiError(
                    503, "busy", f"all {cfg.analysis_threads} analysis slots are busy; try "
                    "again later", headers={"Retry-After": str(cfg.retry_after)})
            try:
                if abandoned.is_set():  # the request gave up while this thread waited
                    raise RequestTimeout(cfg.request_timeout)
                return fn()
            finally:
                analysis_slots.release()

        return call

    async def blocking(fn: Callable[..., T], *args: Any, analysis_slot: bool = False,
                       **kw: Any) -> T:
        """``fn(*args, **kw)`` in a worker thread under the request timeout (504 after it;
        the thread is abandoned, not stopped); ``analysis_slot`` runs it in one of the
        ``analysis_threads`` analysis slots."""
        abandoned = threading.Event()
        call: Callable[[], T] = functools.partial(fn, *args, **kw)
        if analysis_slot:
            call = in_slot(call, abandoned)
        try:
            with anyio.fail_after(cfg.request_timeout):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            abandoned.set()
            raise RequestTimeout(cfg.request_timeout) from None

    def time_to_live(fixed: bool, ends: Sequence[datetime]) -> float:
        if fixed and max(ends) <= clock() - timedelta(seconds=settled):
            return cfg.cache_past_ttl
        return cfg.cache_ttl

    async def cached(key: tuple[Any, ...], fixed: bool, ends: Sequence[datetime],
                     work: Callable[[], bytes]) -> Response:
        """Answer ``key`` from the cache or compute it once (``work`` runs in the analysis
        pool and returns the JSON body); errors propagate and are never stored."""

        async def compute() -> tuple[bytes, float]:
            body = await blocking(work, analysis_slot=True)
            return body, time_to_live(fixed, ends)

        return cache_response(await cache.get_or_compute(key, compute))

    def cache_response(found: Lookup) -> Response:
        now = cache.now()
        entry = found.entry
        left = int(entry.remaining(now))
        return Response(entry.body, media_type="application/json", headers={
            "X-Logsight-Cache": "hit" if found.hit else "miss",
            "Age": str(int(entry.age(now))),
            "Cache-Control": f"private, max-age={left}" if left > 0 else "no-store",
        })

    def resolve(raw: str | None, name: str, now: datetime, align: bool) -> datetime | None:
        """One time parameter against the request's one ``now``; with ``align`` a relative
        time (an age, ``now``) is floored to the whole minute."""
        t = parse_time(raw, now=now, name=name)
        if t is not None and align and is_relative(raw):
            t = floor_minute(t)
        return t

    def parse_window(start: str | None, end: str | None, *, now: datetime,
                     align: bool = False) -> tuple[datetime, datetime]:
        """The ``[from, to)`` window, every time resolved against ``now`` (the request's one
        reading of the clock); ``align`` floors its relative times to the minute."""
        try:
            e = resolve(end, "to", now, align) or (floor_minute(now) if align else now)
            s = resolve(start, "from", now, align) or e - cfg.default_window
            check_window(s, e, max_window=cfg.max_window)
        except TimeError as err:
            raise bad_request(str(err), "bad_time") from None
        return s, e

    def baseline_window(start: datetime, end: datetime, bstart: str | None, bend: str | None,
                        names_: tuple[str, str], *, now: datetime, kind: str,
                        align: bool = False) -> tuple[datetime, datetime]:
        """The baseline (reference) window of ``[start, end)``: it ends where the window
        starts unless ``bend`` says otherwise, and starts one window length before its end
        unless ``bstart`` says otherwise. Log anomalies need ``baseline_to = from`` (after
        resolution); any other baseline must not overlap the window (400
        ``overlapping_windows``)."""
        bf, bt = names_
        try:
            be = resolve(bend, bt, now, align) or start
            bs = resolve(bstart, bf, now, align) or be - (end - start)
            check_window(bs, be, max_window=cfg.max_window, names=names_)
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

    def check_namespace(namespace: str | None) -> str | None:
        ns = namespace or cfg.namespace
        if ns is None:
            return None
        try:
            return names.check_namespace(ns)
        except ValueError as e:
            raise bad_request(str(e), "bad_namespace") from None

    data_kinds = (names.LOGS, names.TRACES, names.MLEVENTS)

    def require_namespace(engine: Engine, namespace: str | None) -> None:
        """404 ``unknown_namespace`` when ``namespace`` holds no data at all (a typo would
        otherwise answer an empty result, as if all were well). A namespace with data, just
        not of this analysis's stream, is known: its answer is an honest empty one."""
        if namespace is None:
            return
        if known.has_data(engine, [names.stream(k, namespace) for k in data_kinds]):
            return
        seen = namespaces_seen(engine, data_kinds)
        shown = seen[:50]
        more = f" (and {len(seen) - len(shown)} more)" if len(seen) > len(shown) else ""
        raise not_found(f"unknown namespace {namespace!r}: no logs, traces or mlevents data "
                        f"in it; namespaces with data: {shown}{more}", "unknown_namespace",
                        details={"namespaces": shown})

    def require_known(engine: Engine, what: str, value: str | None, kinds: Sequence[str],
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
        if not known.exists(engine, indices, fields, value):
            where = ", ".join(kinds) + (" or findings" if findings else "")
            in_ns = f" in namespace {namespace!r}" if namespace else ""
            seen = values_seen(engine, [names.read_target(k, namespace) for k in kinds],
                               fields[0])
            raise not_found(f"unknown {what} {value!r}: no {where} data from it{in_ns}; "
                            f"{what}s seen: {seen}", f"unknown_{what}",
                            details={f"{what}s": seen})

    def require_version(engine: Engine, model: str | None, version: str | None,
                        namespace: str | None) -> None:
        """404 ``unknown_version`` when ``model`` never sent events of ``version`` (the
        analysis would otherwise answer an empty report)."""
        if model is None or version is None:
            return
        index = names.read_target(names.MLEVENTS, namespace)
        within = {names.F.ML_MODEL: model}
        if known.exists(engine, [index], [names.F.ML_VERSION], version, within=within):
            return
        seen = values_seen(engine, [index], names.F.ML_VERSION, within=within)
        in_ns = f" in namespace {namespace!r}" if namespace else ""
        raise not_found(f"unknown version {version!r} of model {model!r}: no mlevents data "
                        f"from it{in_ns}; versions seen: {seen}", "unknown_version",
                        details={"versions": seen})

    def run(kind: str, params: Params, *, check: Callable[[Engine], None] | None = None,
            baseline_names: tuple[str, str] = ("baseline_from", "baseline_to")) -> \
            tuple[list[dict[str, Any]], list[Finding]]:
        engine = holder.get()
        if check is not None:
            check(engine)
        try:
            return runner(engine, kind, params)
        except AnalysisUnavailable as e:
            raise ApiError(501, "not_available", str(e)) from None
        except ValueError as e:
            raise bad_request(api_message(kind, params, str(e), baseline_names)) from None

    # -- routes ------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["service"],
             responses={503: {"model": Health, "description": "The cluster is unreachable"}})
    async def health() -> JSONResponse:
        """Service and cluster state; open without an API key (for load balancers)."""

        def probe() -> EngineHealth:
            try:
                engine = holder.get()
                state = engine.health()
            except EngineAuthError:  # a configuration error: 502, not "try again" (503)
                return EngineHealth(reachable=False, error=REFUSED)
            except EngineError as e:
                return EngineHealth(reachable=False, error=f"cluster unavailable ({e.status})")
            return EngineHealth(reachable=True, flavor=engine.flavor, version=engine.version,
                                cluster_status=str(state.get("status")))

        try:
            eng = await blocking(probe)
        except RequestTimeout:
            eng = EngineHealth(reachable=False, error="cluster health timed out")
        sched = SchedulerHealth(
            enabled=scheduler is not None,
            running=bool(scheduler and scheduler.running),
            tasks=[t.name for t in scheduler.tasks] if scheduler else [],
            last_pass=iso(scheduler.last_pass) if scheduler and scheduler.last_pass else None,
        )
        body = Health(status="ok" if eng.reachable else "degraded", version=__version__,
                      engine=eng, scheduler=sched, analyses=availability())
        refused = eng.error == REFUSED
        return JSONResponse(body.model_dump(),
                            status_code=200 if eng.reachable else 502 if refused else 503,
                            headers=None if eng.reachable or refused else {
                                "Retry-After": str(cfg.retry_after)})

    errors = error_responses(400, 401, 404, 422, 503, 504)

    @app.get("/v1/bottlenecks", response_model=BottlenecksResponse, tags=["traces"],
             dependencies=guarded, responses=errors)
    async def bottlenecks(
        service: Annotated[str | None, Query(max_length=256,
                                             description="Entry-point service")] = None,
        operation: Annotated[str | None, Query(
            max_length=512, description="Entry-point operation (root span name)")] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        top: Annotated[int, Query(ge=1, le=1000)] = 10,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Operations ranked by the critical-path time they contribute (read only: nothing is
        stored; `POST /v1/analyses/bottlenecks` stores findings). Cached briefly: see the
        `X-Logsight-Cache` and `Age` headers."""
        now = clock()
        s, e = parse_window(start, end, now=now)
        ns = check_namespace(namespace)
        times, fixed = times_key(now, [(("from", start), ("to", end))])
        key = ("bottlenecks", ns, service, operation, top, times)

        def check(engine: Engine) -> None:
            require_namespace(engine, ns)
            require_known(engine, "service", service, [names.TRACES], ns)

        def work() -> bytes:
            rows, findings = run("bottlenecks", Params(
                start=s, end=e, service=service, operation=operation, namespace=ns, top=top,
                write=False), check=check)
            return _json(BottlenecksResponse(
                window=Window(start=iso(s), end=iso(e)), service=service,
                operation=operation, bottlenecks=[BottleneckRow.model_validate(r) for r in rows],
                findings=[_finding_out(f) for f in findings],
            ))

        return await cached(key, fixed, [e], work)

    def analysis_response(kind: str, s: datetime, e: datetime,
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
        kind: str, window_: tuple[str | None, str | None],
        baseline: tuple[str | None, str | None], baseline_names: tuple[str, str],
        namespace: str | None, **params: Any,
    ) -> Response:
        """A read-only analysis of the current window against a baseline window, answered
        from the cache. ``params`` (``service``, or ``model`` and maybe ``version``) go to the
        analysis and into the cache key; the model, else the service, must have sent data."""
        now = clock()
        s, e = parse_window(*window_, now=now)
        b = baseline_window(s, e, *baseline, baseline_names, now=now, kind=kind)
        ns = check_namespace(namespace)
        times, fixed = times_key(now, [
            (("from", window_[0]), ("to", window_[1])),
            ((baseline_names[0], baseline[0]), (baseline_names[1], baseline[1]))])
        what = "model" if "model" in params else "service"

        def check(engine: Engine) -> None:
            require_namespace(engine, ns)
            require_known(engine, what, params[what], [ANALYSES[kind].stream], ns)
            if what == "model":
                require_version(engine, params["model"], params.get("version"), ns)

        def work() -> bytes:
            out = run(kind, Params(start=s, end=e, baseline_start=b[0], baseline_end=b[1],
                                   namespace=ns, write=False, **params), check=check,
                      baseline_names=baseline_names)
            return _json(analysis_response(kind, s, e, b, False, out))

        return await cached((kind, ns, *params.values(), times), fixed, [e, b[1]], work)

    @app.get("/v1/anomalies", response_model=AnalysisResponse, tags=["logs"],
             dependencies=guarded, responses=errors)
    async def anomalies(
        service: Annotated[str | None, Query(max_length=256)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        baseline_start: Annotated[str | None, Query(
            alias="baseline_from", max_length=64,
            description="Baseline start (default: the window before)")] = None,
        baseline_end: Annotated[str | None, Query(alias="baseline_to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Anomalous log windows of the current window against a baseline (read only;
        cached briefly)."""
        return await compared_windows(
            "log_anomalies", (start, end), (baseline_start, baseline_end),
            ("baseline_from", "baseline_to"), namespace, service=service)

    @app.get("/v1/drift", response_model=AnalysisResponse, tags=["models"],
             dependencies=guarded, responses=errors)
    async def drift(
        model: Annotated[str, Query(min_length=1, max_length=256)],
        reference_start: Annotated[str | None, Query(
            alias="reference_from", max_length=64,
            description="Reference window start (default: the window before the current)")
        ] = None,
        reference_end: Annotated[str | None, Query(alias="reference_to", max_length=64)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64,
                                           description="Current window start")] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Feature and prediction drift of `model`: reference vs current window (read only;
        cached briefly)."""
        return await compared_windows(
            "drift", (start, end), (reference_start, reference_end),
            ("reference_from", "reference_to"), namespace, model=model)

    @app.get("/v1/performance", response_model=AnalysisResponse, tags=["models"],
             dependencies=guarded, responses=errors)
    async def performance(
        model: Annotated[str, Query(min_length=1, max_length=256)],
        version: Annotated[str | None, Query(
            max_length=256, description="Only this model version (404 unknown_version when "
            "the model never sent it)")] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        baseline_start: Annotated[str | None, Query(alias="baseline_from", max_length=64)] = None,
        baseline_end: Annotated[str | None, Query(alias="baseline_to", max_length=64)] = None,
        namespace: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """Model quality from feedback (per version) and KPI changes in a window (read only;
        cached briefly)."""
        return await compared_windows(
            "performance", (start, end), (baseline_start, baseline_end),
            ("baseline_from", "baseline_to"), namespace, model=model, version=version)

    @app.get("/v1/findings", response_model=FindingsPage, tags=["findings"],
             dependencies=guarded, responses=errors)
    async def findings(
        kind: Annotated[list[FindingKind] | None, Query()] = None,
        service: Annotated[str | None, Query(max_length=256)] = None,
        severity: Annotated[list[Severity] | None, Query()] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=cfg.max_page_size)] = 50,
        cursor: Annotated[str | None, Query(max_length=1024,
                                            description="next_cursor of the previous page")
                          ] = None,
        namespace: Annotated[str | None, Query(
            max_length=100, description="Only findings about this data-stream namespace "
            "(default: the configured namespace, else all)")] = None,
    ) -> FindingsPage:
        """Stored findings, newest first, filtered; page with `next_cursor`. Without `from`
        the range is open (the window limit applies only when both ends are given)."""
        ns = check_namespace(namespace)
        now = clock()
        try:
            s = parse_time(start, now=now, name="from")
            e = parse_time(end, now=now, name="to")
        except TimeError as err:
            raise bad_request(str(err), "bad_time") from None
        if s is not None and e is not None and e <= s:
            raise bad_request(f"inverted time range: from ({iso(s)}) must be before to "
                              f"({iso(e)})", "bad_time")
        after = None
        if cursor:
            try:
                after = decode_cursor(cursor)
            except ValueError as err:
                raise bad_request(str(err), "bad_cursor") from None

        def read() -> tuple[list[dict[str, Any]], list[Any] | None]:
            engine = holder.get()
            require_known(engine, "service", service,
                          [names.LOGS, names.TRACES, names.MLEVENTS], ns, findings=True)
            return read_findings(engine, kind=kind, service=service, severity=severity,
                                 start=s, end=e, size=limit, search_after=after, namespace=ns)

        docs, nxt = await blocking(read)
        return FindingsPage(findings=[_finding_out(d) for d in docs],
                            next_cursor=encode_cursor(nxt) if nxt else None)

    @app.get("/v1/analyses", tags=["analyses"], dependencies=guarded,
             responses=error_responses(401))
    async def analyses() -> dict[str, dict[str, Any]]:
        """The analyses `POST /v1/analyses/{kind}` runs, and whether this build has them."""
        avail = availability()
        return {k: {"available": avail[k], "findings": list(s.finding_kinds),
                    "needs_model": s.needs_model, "description": s.description}
                for k, s in ANALYSES.items()}

    @app.post("/v1/analyses/{kind}", response_model=AnalysisResponse, tags=["analyses"],
              dependencies=guarded, responses=errors)
    async def run_now(
        kind: Annotated[AnalysisKind, Path(description="Which analysis to run")],
        body: AnalysisRequest | None = None,
    ) -> AnalysisResponse:
        """Run one analysis now over a window and return its findings (stored unless
        `write` is false; stable ids, so a re-run overwrites instead of duplicating).
        `namespace` defaults to the service's configured namespace; without one configured
        an analysis reads, and writes findings for, every namespace."""
        req = body or AnalysisRequest.model_validate({})
        spec = ANALYSES[kind]
        # one reading of the clock for every time of the request; relative times floored to
        # the minute, so a re-run within the same minute has the same window (finding ids
        # include it) and overwrites instead of adding copies
        now = clock()
        s, e = parse_window(req.start, req.end, now=now, align=True)
        base: tuple[datetime, datetime] | None = None
        if spec.uses_baseline:
            base = baseline_window(s, e, req.baseline_start, req.baseline_end,
                                   ("baseline_from", "baseline_to"), now=now, kind=kind,
                                   align=True)
        relative = [req.start, req.end] + (
            [req.baseline_start, req.baseline_end] if spec.uses_baseline else [])
        aligned = any(v is None or is_relative(v) for v in relative[:2]) or any(
            v is not None and is_relative(v) for v in relative[2:])
        if spec.needs_model and not req.model:
            raise bad_request(f"analysis {kind!r} needs a model", "missing_model")
        ns = check_namespace(req.namespace)

        def check(engine: Engine) -> None:
            require_namespace(engine, ns)
            require_known(engine, "service", req.service, [spec.stream], ns)
            require_known(engine, "model", req.model, [names.MLEVENTS], ns)
            require_version(engine, req.model, req.version, ns)

        params = Params(start=s, end=e, baseline_start=base[0] if base else None,
                        baseline_end=base[1] if base else None, service=req.service,
                        operation=req.operation, model=req.model, version=req.version,
                        namespace=ns, top=req.top, write=req.write)
        out = await blocking(run, kind, params, check=check, analysis_slot=True,
                             baseline_names=("baseline_from", "baseline_to"))
        log.info("analysis.run", kind=kind, findings=len(out[1]), written=req.write,
                 namespace=ns or "*")
        return analysis_response(kind, s, e, base, req.write, out, aligned=aligned)

    return app



def create_app_from_env() -> FastAPI:
    """The app as configured by the environment, for ``uvicorn --factory
    logsight.service.app:create_app_from_env`` and ``logsight serve --workers N`` (each worker
    process builds its own): settings from :meth:`ServiceSettings.from_env`, the cluster at
    ``LOGSIGHT_URL``, the service's own logs shipped unless ``LOGSIGHT_SELF_LOG=off``."""
    import os

    from logsight.engine import connect
    from logsight.service.selflog import configure_self_logging

    settings = ServiceSettings.from_env()
    url = os.environ.get("LOGSIGHT_URL") or None
    self_log = os.environ.get("LOGSIGHT_SELF_LOG", "on").strip().lower() not in (
        "off", "0", "false", "no")
    handle = configure_self_logging(
        url, namespace=settings.self_log_namespace) if self_log else None
    return create_app(lambda: connect(url), settings, log_handle=handle,
                      close_log_handle=True)
