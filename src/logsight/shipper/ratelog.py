"""A warning that is logged at most once per interval, with the count of what it stands for.

Faults come in floods (a full disk fails every write, a blocked index refuses every item): one
line per occurrence buries the application's own output, none hides the fault. The first
occurrence is logged at once, later ones are counted and summarised at most every
``interval`` seconds, and :meth:`RateLimitedLog.flush` logs what is left (at close).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any


class RateLimitedLog:
    """``warning(fmt, *args, n=1)``: ``fmt`` gets the count since the last line as its first
    ``%d``, then ``args``."""

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self.interval = interval
        self._mono = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None
        self._count = 0
        self._pending: tuple[str, tuple[Any, ...]] | None = None
        self.total = 0

    def warning(self, fmt: str, *args: Any, n: int = 1) -> None:
        with self._lock:
            self._count += n
            self.total += n
            now = self._mono()
            if self._last is not None and now - self._last < self.interval:
                self._pending = (fmt, args)
                return
            self._last = now
            count, self._count, self._pending = self._count, 0, None
        self._log.warning(fmt, count, *args)

    def flush(self) -> None:
        with self._lock:
            pending, count = self._pending, self._count
            self._pending, self._count = None, 0
        if pending is not None and count:
            self._log.warning(pending[0], count, *pending[1])
