"""stdlib logging adapter: a python-json-logger formatter that builds the same ECS document as
the structlog path, and a handler that gives the document to the shipper.

Neither mutates the ``LogRecord`` (no ``record.message`` / ``record.exc_text`` assignments):
the message is taken with ``record.getMessage()`` and extras are read from ``record.__dict__``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from logsight.adapters.tracing import current_trace
from logsight.ecs import DEFAULT_MAX_MESSAGE_CHARS, Clock, EventIds, Service, dumps_line, to_ecs
from logsight.shipper.guard import state as guard

Emit = Callable[[str, Mapping[str, Any]], bool]

# LogRecord attributes that are not "extra" fields; "message"/"asctime" appear once formatted
_RESERVED = frozenset(RESERVED_ATTRS) | {"message", "asctime"}


class EcsJsonFormatter(JsonFormatter):
    """python-json-logger formatter whose output is an ECS logging line.

    :meth:`document` is the dict (what the shipping handler queues); :meth:`format` serialises
    it for file / stream handlers. Extra fields keep their types. ``clock`` None (the default)
    stamps records with ``record.created``; a clock given here wins (tests, replays).

    ``service`` is a :class:`Service` or a plain service name (with ``service_version`` and
    ``environment``), so ``logging.config.dictConfig`` can build it:
    ``{"()": "logsight.adapters.EcsJsonFormatter", "service": "myapp"}``."""

    def __init__(
        self,
        service: Service | str,
        *,
        service_version: str | None = None,
        environment: str | None = None,
        clock: Clock | None = None,
        ids: Callable[[], str] | None = None,
        trace: bool = True,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    ) -> None:
        super().__init__()
        if isinstance(service, str):
            service = Service(service, version=service_version, environment=environment)
        elif not isinstance(service, Service):
            raise ValueError(f"service must be a service name or a logsight.ecs.Service, not "
                             f"{service!r}")
        self.service = service
        self._base = service.base_fields()
        self._clock = clock
        self._ids = ids or EventIds()
        self._trace = trace
        self._max = max_message_chars

    def document(self, record: logging.LogRecord) -> dict[str, Any]:
        try:
            message: Any = record.getMessage()
        except Exception:  # bad %-args must not lose the event
            message = f"{record.msg!r} % {record.args!r}"
        event: dict[str, Any] = {
            "event": message,
            "timestamp": self._clock() if self._clock is not None else record.created,
        }
        if record.exc_info:
            event["exc_info"] = record.exc_info
        elif record.exc_text:
            event["exception"] = record.exc_text
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in event and not key.startswith("_"):
                event[key] = value
        return to_ecs(
            event,
            service=self._base,
            level=record.levelname,
            logger=record.name,
            event_id=event.get("event.id") or self._ids(),
            trace=current_trace() if self._trace else None,
            max_message_chars=self._max,
        )

    def format(self, record: logging.LogRecord) -> str:
        return dumps_line(self.document(record)).decode("utf-8")


#: Loggers whose records the shipping handler drops, with their children: the cluster clients
#: and HTTP library the shipper itself uses, and logsight's own shipper and engine. Shipping
#: them would make every ``_bulk`` log a line that is shipped by the next ``_bulk``, forever.
DEFAULT_EXCLUDED_LOGGERS: tuple[str, ...] = (
    "opensearch",
    "elasticsearch",
    "elastic_transport",
    "urllib3",
    "logsight.shipper",
    "logsight.engine",
)


def check_logger_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple of logger names (ValueError for a bare string or a non-name)."""
    if isinstance(names, (str, bytes)):
        raise ValueError(f"exclude_loggers must be a list of logger names, not the string "
                         f"{names!r} (write ({names!r},) for one name)")
    out = tuple(names)
    for name in out:
        if not isinstance(name, str) or not name or name.startswith(".") or name.endswith("."):
            raise ValueError(f"exclude_loggers: {name!r} is not a logger name (expected a "
                             f"dotted name such as 'urllib3' or 'myapp.http')")
    return out


class EcsShipperHandler(logging.Handler):
    """Queues each record's ECS document on the shipper; the formatting is cheap (a dict) and
    the serialisation happens on the shipper's thread.

    Never shipped, so nothing logsight does can feed back into it: records of the loggers in
    ``exclude_loggers`` and their children (a name matches whole dotted components:
    ``urllib3`` covers ``urllib3.connectionpool``, not ``urllib3x``), and every record emitted
    on one of logsight's own threads (:mod:`logsight.shipper.guard`), whatever its logger.
    Other handlers still see those records: the exclusion is this handler's alone."""

    def __init__(
        self,
        emit: Emit,
        formatter: EcsJsonFormatter,
        level: int = logging.NOTSET,
        *,
        exclude_loggers: Iterable[str] = DEFAULT_EXCLUDED_LOGGERS,
    ):
        super().__init__(level)
        self._emit = emit
        self.setFormatter(formatter)
        self._ecs = formatter
        self.exclude_loggers = check_logger_names(exclude_loggers)
        self._exact = frozenset(self.exclude_loggers)
        self._children = tuple(name + "." for name in self.exclude_loggers)

    def excludes(self, logger_name: str) -> bool:
        """Whether records of ``logger_name`` are dropped by name."""
        return logger_name in self._exact or logger_name.startswith(self._children)

    def emit(self, record: logging.LogRecord) -> None:
        if guard.internal or record.name in self._exact or record.name.startswith(self._children):
            return
        try:
            self._emit("logs", self._ecs.document(record))
        except Exception:
            self.handleError(record)
