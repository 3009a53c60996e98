"""Service settings: one frozen object built from flags or the environment, never global.

Why not ``pydantic-settings``: considered (issue 12) and left out. Nearly every variable has a
grammar of its own (durations with units via :func:`logsight.timeutil.parse_duration`,
``task=5m,...`` interval lists, ``off``/``no``/``0`` switches, comma-separated keys) and an error
message naming the variable, which the CLI and the tests rely on; with pydantic-settings each
would need a custom validator and its ValidationError text would change what users see, for
no gain in the parsing itself. The variables are read in one place,
:meth:`ServiceSettings.from_env`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from logsight.names import check_namespace
from logsight.timeutil import parse_duration

_OFF = ("off", "0", "false", "no", "none", "disabled")


def task_names() -> tuple[str, ...]:
    """The scheduler's task names: one per analysis kind."""
    from logsight.jobs import JOBS

    return tuple(JOBS)


def check_intervals(intervals: Mapping[str, timedelta | None], *, what: str = "") -> None:
    """ValueError for a task name that is no analysis (it would silently never run) or an
    interval that is not positive; None (off) is fine. ``what`` (a flag or variable name)
    prefixes the message."""
    prefix = f"{what}: " if what else ""
    valid = task_names()
    unknown = [name for name in intervals if name not in valid]
    if unknown:
        raise ValueError(
            f"{prefix}unknown scheduler task{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; valid tasks: {', '.join(valid)}"
        )
    for name, iv in intervals.items():
        if iv is not None and iv <= timedelta(0):
            raise ValueError(f"{prefix}the interval of {name} must be positive (or off)")


def parse_intervals(spec: str | None, *, what: str = "") -> dict[str, timedelta | None]:
    """``"bottlenecks=5m,drift=1h,log_anomalies=off"`` -> per-task intervals (None = off).
    ValueError for a malformed part, an unknown task name or a non-positive interval;
    ``what`` (e.g. the environment variable) prefixes the message."""
    prefix = f"{what}: " if what else ""
    out: dict[str, timedelta | None] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{prefix}scheduler interval {part!r} is not of the form task=5m")
        value = value.strip()
        out[name.strip()] = (
            None if value.lower() in _OFF
            else parse_duration(value, what=f"{prefix}interval of {name.strip()}")
        )
    check_intervals(out, what=what)
    return out


def parse_keys(spec: str | None) -> tuple[str, ...]:
    """Comma-separated API keys; blanks dropped."""
    return tuple(k.strip() for k in (spec or "").split(",") if k.strip())


def _replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the app and its scheduler are configured with.

    ``api_keys`` never appear in ``repr`` (settings end up in logs and tracebacks)."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)
    auth: bool = True
    # scheduler
    scheduler: bool = False
    interval: timedelta = timedelta(minutes=5)
    intervals: Mapping[str, timedelta | None] = field(default_factory=dict)
    scheduler_lag: timedelta = timedelta(minutes=1)  # late data: analyse a window this long after
    scheduler_poll: float = 15.0  # seconds between scheduler passes
    lease_ttl: timedelta = timedelta(minutes=15)
    baseline_windows: int = 6  # regressions/drift compare with this many windows before
    replica_id: str = field(default_factory=_replica_id)
    # requests
    namespace: str | None = None  # data-stream namespace analyses read (None = all)
    # where the service's own logs go: never the analysed namespace, whose "services seen"
    # and alert groups would otherwise list logsight itself
    self_log_namespace: str = "logsight"
    max_window: timedelta = timedelta(days=7)
    default_window: timedelta = timedelta(hours=1)
    request_timeout: float = 30.0
    retry_after: int = 10
    max_page_size: int = 500
    known_ttl: float = 60.0  # seconds a seen service/model stays known without asking again
    # result cache of the read-only analysis routes (GET bottlenecks/anomalies/drift/performance)
    cache_ttl: float = 30.0  # seconds; windows reaching into the last cache_ttl (or now-relative)
    cache_past_ttl: float = 600.0  # seconds, for fixed windows that ended before that
    cache_size: int = 256  # entries (0: no cache; concurrent identical requests still share)
    cache_max_bytes: int = 64 * 1024 * 1024
    analysis_threads: int = 4  # analyses computing at once, timed-out ones included
    analysis_slot_wait: float = 5.0  # seconds a request waits for a free slot before a 503

    def __post_init__(self) -> None:
        if self.auth and not self.api_keys:
            raise ValueError(
                "API-key auth is on but no key is configured: set LOGSIGHT_API_KEYS, pass "
                "--api-key, or turn auth off with --no-auth"
            )
        if self.max_window <= timedelta(0) or self.default_window <= timedelta(0):
            raise ValueError("max_window and default_window must be positive")
        if self.default_window > self.max_window:
            raise ValueError("default_window must not exceed max_window")
        if self.interval <= timedelta(0):
            raise ValueError("the scheduler interval must be positive")
        check_intervals(self.intervals)
        if self.namespace is not None:
            check_namespace(self.namespace)
        check_namespace(self.self_log_namespace)
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        if self.cache_ttl < 0 or self.cache_past_ttl < 0:
            raise ValueError("cache TTLs must not be negative")
        if self.cache_size < 0 or self.cache_max_bytes < 0:
            raise ValueError("cache_size and cache_max_bytes must not be negative")
        if self.analysis_threads < 1:
            raise ValueError("analysis_threads must be at least 1")
        if self.analysis_slot_wait < 0:
            raise ValueError("analysis_slot_wait must not be negative")

    def with_(self, **changes: Any) -> ServiceSettings:
        return replace(self, **changes)

    def interval_of(self, task: str) -> timedelta | None:
        """The task's interval (None: the task is switched off)."""
        if task in self.intervals:
            return self.intervals[task]
        return self.interval

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServiceSettings:
        """Settings from ``LOGSIGHT_API_KEYS``, ``LOGSIGHT_AUTH`` (off to disable),
        ``LOGSIGHT_SCHEDULER`` (on/off), ``LOGSIGHT_SCHEDULER_INTERVAL``,
        ``LOGSIGHT_SCHEDULER_INTERVALS`` (``task=5m,...``), ``LOGSIGHT_NAMESPACE``,
        ``LOGSIGHT_SELF_LOG_NAMESPACE``,
        ``LOGSIGHT_MAX_WINDOW``, ``LOGSIGHT_REQUEST_TIMEOUT``, ``LOGSIGHT_CACHE_TTL``,
        ``LOGSIGHT_CACHE_PAST_TTL`` (durations), ``LOGSIGHT_CACHE_SIZE``,
        ``LOGSIGHT_ANALYSIS_THREADS``; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {"api_keys": parse_keys(env.get("LOGSIGHT_API_KEYS"))}
        if "LOGSIGHT_AUTH" in env:
            values["auth"] = env["LOGSIGHT_AUTH"].strip().lower() not in _OFF
        if "LOGSIGHT_SCHEDULER" in env:
            values["scheduler"] = env["LOGSIGHT_SCHEDULER"].strip().lower() not in _OFF
        if env.get("LOGSIGHT_SCHEDULER_INTERVAL"):
            values["interval"] = parse_duration(
                env["LOGSIGHT_SCHEDULER_INTERVAL"], what="LOGSIGHT_SCHEDULER_INTERVAL"
            )
        if env.get("LOGSIGHT_SCHEDULER_INTERVALS"):
            values["intervals"] = parse_intervals(
                env["LOGSIGHT_SCHEDULER_INTERVALS"], what="LOGSIGHT_SCHEDULER_INTERVALS"
            )
        if env.get("LOGSIGHT_NAMESPACE"):
            values["namespace"] = env["LOGSIGHT_NAMESPACE"]
        if env.get("LOGSIGHT_SELF_LOG_NAMESPACE"):
            values["self_log_namespace"] = env["LOGSIGHT_SELF_LOG_NAMESPACE"]
        if env.get("LOGSIGHT_MAX_WINDOW"):
            values["max_window"] = parse_duration(
                env["LOGSIGHT_MAX_WINDOW"], what="LOGSIGHT_MAX_WINDOW"
            )
        if env.get("LOGSIGHT_REQUEST_TIMEOUT"):
            values["request_timeout"] = parse_duration(
                env["LOGSIGHT_REQUEST_TIMEOUT"], what="LOGSIGHT_REQUEST_TIMEOUT"
            ).total_seconds()
        for var, name in (("LOGSIGHT_CACHE_TTL", "cache_ttl"),
                          ("LOGSIGHT_CACHE_PAST_TTL", "cache_past_ttl")):
            if env.get(var):
                values[name] = parse_duration(env[var], what=var).total_seconds()
        for var, name in (("LOGSIGHT_CACHE_SIZE", "cache_size"),
                          ("LOGSIGHT_ANALYSIS_THREADS", "analysis_threads")):
            if env.get(var):
                try:
                    values[name] = int(env[var])
                except ValueError:
                    raise ValueError(f"{var}={env[var]!r} is not a whole number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
