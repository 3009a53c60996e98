"""The service's own activity log, through logsight's own adapter (we eat our own food).

:func:`service_log` returns a small wrapper with ``info/warning/error(event, **fields)``: over a
logsight structlog logger when :func:`logsight.configure` is importable and a handle is given,
over stdlib logging otherwise, so callers never care which."""

from __future__ import annotations

import logging
from typing import Any, Protocol

_STD = logging.getLogger("logsight.service")


class _StructLogger(Protocol):
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


class ServiceLog:
    """``log.info("lease.acquired", task=..., window=...)`` on either backend."""

    def __init__(self, structured: _StructLogger | None = None) -> None:
        self._s = structured

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._s is not None:
            try:
                method = {logging.INFO: self._s.info, logging.WARNING: self._s.warning}.get(
                    level, self._s.error
                )
                method(event, **fields)
                return
            except Exception:  # our own logging must never take the scheduler down
                pass
        _STD.log(level, "%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)


def service_log(handle: Any = None, name: str = "logsight.service") -> ServiceLog:
    """Wrap ``handle.logger(name)`` (a :class:`logsight.Logsight`), or stdlib logging."""
    if handle is None:
        return ServiceLog()
    try:
        return ServiceLog(handle.logger(name))
    except Exception:  # an adapter that cannot build a logger: fall back, keep serving
        return ServiceLog()


def configure_self_logging(url: str | None, *, namespace: str | None = "logsight") -> Any:
    """A logsight handle shipping the service's own logs (service ``logsight``) into
    ``namespace`` (by default a namespace of their own, so they never mix with the analysed
    data), or None when the adapter is not importable."""
    try:
        import logsight
    except Exception:
        return None
    kw: dict[str, Any] = {}
    if namespace:
        kw["namespace"] = namespace
    try:
        return logsight.configure(service_name="logsight", url=url, level="info", **kw)
    except Exception:
        return None


# -- the access log never carries a credential ---------------------------------------------------
class RedactCredentials(logging.Filter):
    """Rewrites a record's arguments so credentials in URLs (``?api_key=...``, ``?token=``,
    ``user:password@``) read ``***``: uvicorn's access log writes each request's path with its
    query string, so a key wrongly sent in the URL (refused with 401) would otherwise be
    written to disk. The record itself is not modified; a copy of its arguments is."""

    def filter(self, record: logging.LogRecord) -> bool:
        from logsight.engine import redact_url

        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) for a in args):
            redacted = tuple(redact_url(a) if isinstance(a, str) else a for a in args)
            if redacted != args:
                record.args = redacted
        elif isinstance(record.msg, str):
            text = redact_url(record.msg)
            if text != record.msg:
                record.msg = text
        return True


_REDACT = RedactCredentials()
ACCESS_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_access_log() -> None:
    """Install :class:`RedactCredentials` on uvicorn's loggers (idempotent)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
