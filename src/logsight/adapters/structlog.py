"""structlog adapter: a processor that turns the event dict into an ECS document, and a
wrapped logger that hands the document to the shipper (which serialises it off-thread)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog as _structlog

from logsight.adapters.tracing import current_trace
from logsight.ecs import DEFAULT_MAX_MESSAGE_CHARS, Clock, EventIds, Service, to_ecs
from logsight.shipper.guard import state as guard

Emit = Callable[[str, Mapping[str, Any]], bool]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50,
           "exception": 40, "fatal": 50, "notset": 0}


class EcsProcessor:
    """structlog processor: event dict -> flat ECS document (a new dict; the event dict is not
    modified). Set up once (service fields precomputed); each call is a few dict stores.

    As the last processor with ``final=True`` it returns ``((doc,), {})`` so the wrapped
    logger's method receives the document itself; otherwise it returns the document, so it can
    be followed by e.g. ``structlog.processors.JSONRenderer()``.
    """

    def __init__(
        self,
        service: Service,
        *,
        clock: Clock = time.time,
        ids: Callable[[], str] | None = None,
        trace: bool = True,
        final: bool = False,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    ) -> None:
        self._base = service.base_fields()
        self._clock = clock
        self._ids = ids or EventIds()
        self._trace = trace
        self._final = final
        self._max = max_message_chars

    def __call__(self, logger: Any, method_name: str, event_dict: Mapping[str, Any]) -> Any:
        doc = to_ecs(
            event_dict,
            service=self._base,
            clock=self._clock,
            # the method's level wins; a ``level`` kwarg is kept aside (labels.level)
            level=method_name if method_name in _LEVELS
            else event_dict.get("level", "info"),
            event_id=event_dict.get("event.id") or self._ids(),
            trace=current_trace() if self._trace else None,
            max_message_chars=self._max,
        )
        if self._final:
            return (doc,), {}
        return doc


class ShipperLogger:
    """What structlog wraps: every level method submits the ECS document to ``emit``.

    It never raises into the application: a failing ``emit`` counts as a dropped event.
    Events logged on logsight's own threads (:mod:`logsight.shipper.guard`) are dropped, so a
    structlog-configured library the transport calls cannot feed back into the shipper."""

    def __init__(self, emit: Emit, kind: str = "logs") -> None:
        self._emit = emit
        self._kind = kind

    def msg(self, doc: Mapping[str, Any] | None = None, *args: Any, **kw: Any) -> None:
        if doc is None or guard.internal:
            return
        with contextlib.suppress(Exception):  # a last guard: never raise into the app
            self._emit(self._kind, doc)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _guard(proc: Callable[..., Any]) -> Callable[..., Any]:
    """A processor that turns any exception in ``proc`` into a dropped event (DropEvent)."""

    def guarded(logger: Any, method_name: str, event_dict: Any) -> Any:
        try:
            return proc(logger, method_name, event_dict)
        except _structlog.DropEvent:
            raise
        except Exception:
            raise _structlog.DropEvent from None

    return guarded


def default_processors(*, merge_contextvars: bool = True) -> list[Callable[..., Any]]:
    """The processors logsight puts before the caller's: contextvars merging (unless turned
    off), guarded so a failure drops the event instead of raising into the application. The
    user's own processors come after it, so they see the merged context too."""
    if not merge_contextvars:
        return []
    return [_guard(_structlog.contextvars.merge_contextvars)]


def make_logger(
    emit: Emit,
    service: Service,
    name: str | None = None,
    *,
    level: str | int = "debug",
    processors: Sequence[Callable[..., Any]] = (),
    clock: Clock = time.time,
    ids: Callable[[], str] | None = None,
    trace: bool = True,
    merge_contextvars: bool = True,
    **initial_values: Any,
) -> Any:
    """A structlog bound logger whose events become ECS documents given to ``emit``.

    Context bound with ``structlog.contextvars.bind_contextvars`` is merged first (as in
    structlog's own recommended chain; the event's own keys win over it; ``merge_contextvars=
    False`` turns that off), then ``processors`` run, then the ECS processor. Levels below
    ``level`` are filtered before any processing."""
    min_level = level if isinstance(level, int) else _LEVELS.get(str(level).lower())
    if min_level is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}")
    ecs = EcsProcessor(service, clock=clock, ids=ids, trace=trace, final=True)
    chain = [*default_processors(merge_contextvars=merge_contextvars),
             *(_guard(p) for p in processors), _guard(ecs)]
    bound = _structlog.wrap_logger(
        ShipperLogger(emit),
        processors=chain,
        wrapper_class=_structlog.make_filtering_bound_logger(min_level),
    )
    if name is not None:
        initial_values = {"logger": name, **initial_values}
    return bound.bind(**initial_values) if initial_values else bound
