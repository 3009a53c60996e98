"""Which threads are logsight's own, so nothing logged on them is ever shipped.

The shipper's pump and sender threads, the resource sampler's thread and :meth:`Shipper.close`
run inside :func:`internal`. The log adapters look at :data:`state` before queuing a record:
whatever is logged there (the cluster client's request lines, urllib3's connection messages,
the shipper's own diagnostics, any library a transport calls) would otherwise be shipped,
which makes the shipper send again, which logs again: an endless feedback loop.

Inside :func:`internal` OpenTelemetry instrumentation is also suppressed, so an instrumented
HTTP client does not turn every ``_bulk`` request into a span that is exported and shipped.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class ThreadState(threading.local):
    # a class attribute, not one set in __init__: threads that never enter internal() read the
    # default with one attribute lookup (~40 ns), which keeps the adapters' hot path cheap
    internal: bool = False


state = ThreadState()


def is_internal() -> bool:
    """Whether the calling thread is running logsight's own work (records must be dropped)."""
    return state.internal


def _suppress_otel() -> Any:
    try:
        from opentelemetry import context as otel_context

        key = otel_context._SUPPRESS_INSTRUMENTATION_KEY  # what OTel instrumentations check
        return otel_context.attach(otel_context.set_value(key, True))
    except Exception:  # OTel missing or changed: suppression is a nicety, never a failure
        return None


def _restore_otel(token: Any) -> None:
    if token is None:
        return
    with contextlib.suppress(Exception):
        from opentelemetry import context as otel_context

        otel_context.detach(token)


@contextlib.contextmanager
def internal() -> Iterator[None]:
    """Mark the calling thread as logsight's own for the duration (re-entrant)."""
    previous = state.internal
    state.internal = True
    token = _suppress_otel()
    try:
        yield
    finally:
        _restore_otel(token)
        state.internal = previous


def internal_thread(target: Callable[P, R]) -> Callable[P, R]:
    """``target`` wrapped to run inside :func:`internal` (for ``threading.Thread(target=)``)."""

    @functools.wraps(target)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with internal():
            return target(*args, **kwargs)

    return run


# The cluster clients log every failed request with a traceback (opensearch-py at WARNING on
# "opensearch", urllib3's "Retrying"/"Connection pool is full"): during an outage that is a
# traceback per attempt on the application's stderr. On logsight's own threads the shipper
# says it once per state change instead ("destination unavailable", "is back"), so the
# clients' WARNING-and-above records are dropped there, and only there: their request lines
# (INFO/DEBUG, shown when the application asks for them) stay, and so does everything of the
# application's own use of the clients.
CLIENT_LOGGERS = ("opensearch", "elasticsearch", "elastic_transport",
                  "elastic_transport.transport", "elastic_transport.node_pool",
                  "urllib3.connectionpool")


class _NotOnInternalThreads:
    def filter(self, record: Any) -> bool:
        return not (state.internal and getattr(record, "levelno", 0) >= 30)  # WARNING


_QUIET = _NotOnInternalThreads()


def quiet_client_loggers() -> None:
    """Drop the cluster clients' warnings and tracebacks made on logsight's own threads
    (idempotent)."""
    import logging

    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
