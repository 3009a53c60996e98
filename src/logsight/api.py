"""``logsight.configure()``: one call that wires the adapters to a shipper and returns a handle.

No global state is changed unless asked: ``structlog_global=True`` calls
``structlog.configure`` so ``structlog.get_logger()`` ships, and ``stdlib=True`` (or a level)
adds the handler to the root logger; :meth:`Logsight.close` undoes both (the previous structlog
configuration is restored). Every handle is independent (tests build several).

The module-level :func:`log_prediction` / :func:`log_feedback` / :func:`log_kpi` (and
:func:`current`) are a convenience for applications with one handle: they use the handle of the
most recent :func:`configure` call that has not been closed yet (closing it falls back to the
previous open one; with none open they raise). Code that builds several handles should call the
handle's own methods.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from logsight import names
from logsight.adapters.metrics import ResourceSampler
from logsight.adapters.ml import MlEvents, Timestamp
from logsight.adapters.otel import EcsSpanExporter
from logsight.adapters.stdlib import (
    DEFAULT_EXCLUDED_LOGGERS,
    EcsJsonFormatter,
    EcsShipperHandler,
    check_logger_names,
)
from logsight.adapters.structlog import make_logger
from logsight.ecs import Clock, EventIds, Service
from logsight.shipper import BulkTransport, Counters, FileTransport, Shipper, Transport

# the open handles, oldest first: the module-level convenience functions use the last one
_open: list[Logsight] = []
_open_lock = threading.Lock()


def level_number(level: str | int) -> int:
    """A stdlib level number from a name (any case: ``"info"``, ``"WARNING"``) or a number."""
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise ValueError(f"level must be a level name or number, not {level!r}")
    if isinstance(level, int):
        if level < 0:
            raise ValueError(f"level must be >= 0, not {level}")
        return level
    mapping = logging.getLevelNamesMapping()
    number = mapping.get(level.strip().upper())
    if number is None:
        known = ", ".join(n.lower() for n in sorted(mapping, key=mapping.__getitem__))
        raise ValueError(f"unknown log level {level!r}; expected one of {known} or a number")
    return number


class Logsight:
    """A configured logsight: adapters for one service, one shipper. Build with
    :func:`configure`."""

    def __init__(
        self,
        service: Service,
        shipper: Shipper,
        *,
        namespace: str = names.DEFAULT_NAMESPACE,
        level: str | int = "debug",
        clock: Clock | None = None,
        ids: Callable[[], str] | None = None,
        trace: bool = True,
        exclude_loggers: Iterable[str] = DEFAULT_EXCLUDED_LOGGERS,
    ) -> None:
        self.service = service
        self.shipper = shipper
        self.namespace = namespace
        self.level = level
        self.exclude_loggers = check_logger_names(exclude_loggers)
        self._clock = clock
        self._ids = ids or EventIds()
        self._trace = trace
        self._ml = MlEvents(shipper.submit, service, clock=clock or time.time, ids=self._ids,
                            trace=trace)
        self._handler: EcsShipperHandler | None = None
        self._formatter: EcsJsonFormatter | None = None
        self._sampler: ResourceSampler | None = None
        self._attached: list[logging.Logger] = []
        # structlog's configuration before configure(structlog_global=True) replaced it, and
        # the logger factory that marks the replacement as ours (see close)
        self._structlog_restore: tuple[dict[str, Any] | None, Any] | None = None

    # -- structlog ---------------------------------------------------------------------------
    def logger(
        self, name: str | None = None, *, processors: Sequence[Callable[..., Any]] = (),
        merge_contextvars: bool = True, **initial_values: Any,
    ) -> Any:
        """A structlog bound logger named ``name`` whose events are shipped as ECS logs;
        context bound with ``structlog.contextvars.bind_contextvars`` is merged by default."""
        return make_logger(self.shipper.submit, self.service, name, level=self.level,
                           processors=processors, clock=self._clock or time.time,
                           ids=self._ids, trace=self._trace,
                           merge_contextvars=merge_contextvars, **initial_values)

    def structlog_processors(self, *, merge_contextvars: bool = True) -> list[Any]:
        """The processor chain for ``structlog.configure``: contextvars merging (structlog's
        recommended first step; ``merge_contextvars=False`` leaves it out), then the ECS
        processor, final."""
        from logsight.adapters.structlog import EcsProcessor, default_processors

        return [*default_processors(merge_contextvars=merge_contextvars),
                EcsProcessor(self.service, clock=self._clock or time.time, ids=self._ids,
                             trace=self._trace, final=True)]

    # -- stdlib ------------------------------------------------------------------------------
    @property
    def formatter(self) -> EcsJsonFormatter:
        """The python-json-logger ECS formatter (use it on any stream/file handler)."""
        if self._formatter is None:
            self._formatter = EcsJsonFormatter(self.service, clock=self._clock, ids=self._ids,
                                               trace=self._trace)
        return self._formatter

    @property
    def handler(self) -> logging.Handler:
        """A stdlib handler that ships each record of ``level`` or above as an ECS log
        document, except records of :attr:`exclude_loggers` (and their children) and records
        emitted on logsight's own threads."""
        if self._handler is None:
            self._handler = EcsShipperHandler(self.shipper.submit, self.formatter,
                                              level_number(self.level),
                                              exclude_loggers=self.exclude_loggers)
        return self._handler

    def attach(self, logger: logging.Logger | str | None = None,
               level: int | str | None = None) -> logging.Handler:
        """Add :attr:`handler` to ``logger`` (the root logger by default)."""
        target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        if level is not None:
            target.setLevel(level_number(level))
        if self.handler not in target.handlers:
            target.addHandler(self.handler)
            self._attached.append(target)
        return self.handler

    # -- ML events --------------------------------------------------------------------------
    def log_prediction(
        self,
        model: str,
        version: str | None,
        features: Mapping[str, Any] | None,
        prediction: Any,
        score: float | None = None,
        probabilities: Mapping[Any, float] | Sequence[float] | None = None,
        latency_ms: float | None = None,
        request_id: str | None = None,
        *,
        timestamp: Timestamp = None,
    ) -> str:
        return self._ml.log_prediction(model, version, features, prediction, score,
                                       probabilities, latency_ms, request_id,
                                       timestamp=timestamp)

    def log_feedback(self, request_id: str, label: Any, *, model: str | None = None,
                     version: str | None = None,
                     timestamp: Timestamp = None) -> None:
        self._ml.log_feedback(request_id, label, model=model, version=version,
                              timestamp=timestamp)

    def log_kpi(self, name: str, value: float, *, model: str | None = None,
                version: str | None = None, labels: Mapping[str, Any] | None = None,
                timestamp: Timestamp = None) -> None:
        self._ml.log_kpi(name, value, model=model, version=version, labels=labels,
                         timestamp=timestamp)

    # -- traces / metrics -------------------------------------------------------------------
    def span_exporter(self) -> EcsSpanExporter:
        """An OTel SpanExporter into the traces stream (wrap it in a BatchSpanProcessor)."""
        return EcsSpanExporter(self.shipper.submit, service=self.service,
                               flush=self.shipper.flush)

    def start_resource_metrics(self, interval: float = 15.0, *, gpu: bool = True) -> \
            ResourceSampler:
        """Start sampling CPU / memory / network / disk (and GPU) every ``interval`` s."""
        if self._sampler is None:
            self._sampler = ResourceSampler(self.shipper.submit, self.service,
                                            interval=interval, clock=self._clock or time.time,
                                            ids=self._ids, gpu=gpu).start()
        return self._sampler

    # -- shipper -----------------------------------------------------------------------------
    def emit(self, kind: str, doc: Mapping[str, Any]) -> bool:
        """Queue a prepared flat document for stream ``kind`` (logs|traces|metrics|mlevents)."""
        return self.shipper.submit(kind, doc)

    @property
    def counters(self) -> Counters:
        return self.shipper.counters

    def flush(self, timeout: float = 10.0, *, give_up_if_down: bool = False) -> bool:
        """Wait for delivery of everything so far (see :meth:`Shipper.flush`)."""
        return self.shipper.flush(timeout, give_up_if_down=give_up_if_down)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop metrics, detach handlers, flush and stop the shipper (left-overs are spooled
        for the next process). Returns whether everything was delivered."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        for lg in self._attached:
            if self._handler is not None:
                lg.removeHandler(self._handler)
        self._attached.clear()
        self._restore_structlog()
        with _open_lock:
            if self in _open:
                _open.remove(self)
        return self.shipper.close(timeout)

    def _restore_structlog(self) -> None:
        if self._structlog_restore is None:
            return
        import structlog

        previous, factory = self._structlog_restore
        self._structlog_restore = None
        # only while structlog still uses our configuration: a later configure() (another
        # handle, or the application) owns it now
        if structlog.get_config().get("logger_factory") is not factory:
            return
        if previous is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**previous)

    def __enter__(self) -> Logsight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def configure(
    service_name: str,
    url: str | None = None,
    *,
    namespace: str = names.DEFAULT_NAMESPACE,
    service_version: str | None = None,
    environment: str | None = None,
    labels: Mapping[str, str] | None = None,
    level: str | int = "debug",
    structlog_global: bool = False,
    stdlib: bool | int | str = False,
    sink: str | Path | IO[str] | IO[bytes] | None = None,
    engine: Any = None,
    spool_dir: str | Path | None = None,
    resource_metrics: bool | float = False,
    trace: bool = True,
    clock: Clock | None = None,
    ids: Callable[[], str] | None = None,
    exclude_loggers: Iterable[str] = DEFAULT_EXCLUDED_LOGGERS,
    **shipper_options: Any,
) -> Logsight:
    """Set up logsight for one service and return the handle.

    ``url`` (or ``LOGSIGHT_URL``) is the cluster; it need not be up yet (the shipper connects
    lazily and spools meanwhile). ``namespace`` picks the data streams
    (``logs-logsight-<namespace>``, ...). ``level`` is the least severe level shipped, by the
    structlog loggers and by the stdlib handler. ``sink`` instead writes NDJSON lines (a path,
    ``"stdout"``) for Filebeat / Elastic Agent. ``stdlib`` True or a level attaches the handler
    to the root logger (a level also sets the root logger's level); ``structlog_global`` makes
    ``structlog.get_logger()`` ship. The stdlib handler never ships the loggers in
    ``exclude_loggers`` (default :data:`DEFAULT_EXCLUDED_LOGGERS`: the cluster clients, urllib3
    and logsight's shipper and engine) nor anything logged on logsight's own threads.
    ``shipper_options`` go to :class:`logsight.shipper.Shipper` (batch_size, flush_interval,
    max_queue, max_memory_bytes, spool_max_bytes, fsync, backoff_initial, backoff_max, ...).
    See docs/adapters.md for the table of parameters.
    """
    names.check_namespace(namespace)
    # every argument is checked before the shipper starts its threads
    _check_sink(sink)
    if sink is None and engine is None:
        _check_url(url if url is not None else os.environ.get("LOGSIGHT_URL"))
    if not isinstance(resource_metrics, bool) and (
            not isinstance(resource_metrics, (int, float)) or resource_metrics <= 0):
        raise ValueError(f"resource_metrics must be True/False or a positive interval in "
                         f"seconds, not {resource_metrics!r}")
    level_no = level_number(level)
    exclude = check_logger_names(exclude_loggers)
    root_level = None if isinstance(stdlib, bool) else level_number(stdlib)
    service = Service(name=service_name, version=service_version, environment=environment,
                      labels=dict(labels or {}))
    transport: Transport
    if sink is not None:
        transport = FileTransport(sink, namespace=namespace)
    else:
        transport = BulkTransport(url, namespace=namespace, engine=engine)
    try:
        shipper = Shipper(transport, spool_dir=spool_dir, name=f"{service_name}-{namespace}",
                          **shipper_options)
    except Exception:
        transport.close()
        raise
    try:
        return _wire(shipper, service, namespace=namespace, level=level, level_no=level_no,
                     clock=clock, ids=ids, trace=trace, exclude=exclude,
                     structlog_global=structlog_global, stdlib=stdlib, root_level=root_level,
                     resource_metrics=resource_metrics)
    except BaseException:
        shipper.close(0.0)  # never leave a half-started shipper holding the spool lock
        raise


def _check_sink(sink: Any) -> None:
    if sink is None or isinstance(sink, (str, Path)) or callable(getattr(sink, "write", None)):
        if isinstance(sink, str) and not sink.strip():
            raise ValueError("sink must be a path, 'stdout', 'stderr' or a stream, not ''")
        return
    raise ValueError(f"sink must be a path, 'stdout', 'stderr' or an object with a write() "
                     f"method, not {sink!r}")


def _check_url(url: Any) -> None:
    if url is None:
        return  # the transport's default (and its own error) applies
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        if parts is not None:
            parts.port  # noqa: B018  # raises ValueError for a malformed port
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"url must be http(s)://host[:port], not {url!r}")


def _wire(shipper: Shipper, service: Service, *, namespace: str, level: str | int,
          level_no: int, clock: Clock | None, ids: Callable[[], str] | None, trace: bool,
          exclude: tuple[str, ...], structlog_global: bool, stdlib: bool | int | str,
          root_level: int | None, resource_metrics: bool | float) -> Logsight:
    handle = Logsight(service, shipper, namespace=namespace, level=level, clock=clock, ids=ids,
                      trace=trace, exclude_loggers=exclude)
    try:
        _wire_handle(handle, level_no=level_no, structlog_global=structlog_global,
                     stdlib=stdlib, root_level=root_level, resource_metrics=resource_metrics)
    except BaseException:
        handle.close(0.0)  # undoes the structlog configuration and the attached handler
        raise
    with _open_lock:
        _open.append(handle)
    return handle


def _wire_handle(handle: Logsight, *, level_no: int, structlog_global: bool,
                 stdlib: bool | int | str, root_level: int | None,
                 resource_metrics: bool | float) -> None:
    shipper = handle.shipper
    if structlog_global:
        import structlog

        from logsight.adapters.structlog import ShipperLogger

        def factory(*args: Any) -> ShipperLogger:
            return ShipperLogger(shipper.submit)

        previous = dict(structlog.get_config()) if structlog.is_configured() else None
        handle._structlog_restore = (previous, factory)
        structlog.configure(
            processors=handle.structlog_processors(),
            logger_factory=factory,
            wrapper_class=structlog.make_filtering_bound_logger(level_no),
            cache_logger_on_first_use=True,
        )
    if stdlib:
        handle.attach(None, level=root_level)
    if resource_metrics:
        handle.start_resource_metrics(15.0 if resource_metrics is True else
                                      float(resource_metrics))


def current() -> Logsight:
    """The handle of the most recent :func:`configure` not closed yet."""
    with _open_lock:
        if not _open:
            raise RuntimeError("logsight is not configured (or every handle is closed): call "
                               "logsight.configure(...) first")
        return _open[-1]


def log_prediction(
    model: str,
    version: str | None,
    features: Mapping[str, Any] | None,
    prediction: Any,
    score: float | None = None,
    probabilities: Mapping[Any, float] | Sequence[float] | None = None,
    latency_ms: float | None = None,
    request_id: str | None = None,
    *,
    timestamp: Timestamp = None,
) -> str:
    """:meth:`Logsight.log_prediction` on :func:`current` (the most recent open handle)."""
    return current().log_prediction(model, version, features, prediction, score, probabilities,
                                    latency_ms, request_id, timestamp=timestamp)


def log_feedback(request_id: str, label: Any, *, model: str | None = None,
                 version: str | None = None,
                 timestamp: Timestamp = None) -> None:
    """:meth:`Logsight.log_feedback` on :func:`current` (the most recent open handle)."""
    current().log_feedback(request_id, label, model=model, version=version, timestamp=timestamp)


def log_kpi(name: str, value: float, *, model: str | None = None, version: str | None = None,
            labels: Mapping[str, Any] | None = None,
            timestamp: Timestamp = None) -> None:
    """:meth:`Logsight.log_kpi` on :func:`current` (the most recent open handle)."""
    current().log_kpi(name, value, model=model, version=version, labels=labels,
                      timestamp=timestamp)
