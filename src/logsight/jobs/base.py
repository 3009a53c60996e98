"""What every job shares: the window, the scope, and the shape of a result.

A job is a plain function ``run(request, source, writer=None) -> result``: the request is a
frozen dataclass of what was asked (a :class:`Window`, maybe a baseline, a :class:`Scope`, the
analysis's options), the source a reader of :mod:`logsight.sources` (cluster or file), the
writer a :class:`logsight.writer.Writer` (None: store nothing). Results carry their rows, their
findings and what was analysed; :meth:`JobResult.rows` is what the API answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from logsight.errors import BadRequest
from logsight.findings import Finding, _jsonable
from logsight.timeutil import iso


@dataclass(frozen=True)
class Window:
    """``[start, end)``; an open end (None) is the data's own first / last record (files)."""

    start: datetime | None = None
    end: datetime | None = None
    name: str = "window"  # the request field, for errors

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and not self.start < self.end:
            raise BadRequest(self.name, f"{{{self.name}.start}} ({iso(self.start)}) must be "
                             f"before {{{self.name}.end}} ({iso(self.end)})")

    @property
    def closed(self) -> tuple[datetime, datetime]:
        """Both ends; BadRequest when one is open (a cluster read needs both)."""
        if self.start is None or self.end is None:
            raise BadRequest(self.name, f"{{{self.name}}} needs a start and an end")
        return self.start, self.end

    def overlaps(self, other: Window) -> bool:
        s, e = self.closed
        os_, oe = other.closed
        return os_ < e and s < oe


@dataclass(frozen=True)
class Scope:
    """Which data: a namespace (None: all) and, per analysis, a service / entry operation or
    a model and its version."""

    namespace: str | None = None
    service: str | None = None
    operation: str | None = None
    model: str | None = None
    version: str | None = None


class JobResult(Protocol):
    """What every job returns."""

    @property
    def findings(self) -> list[Finding]: ...

    def rows(self) -> list[dict[str, Any]]:
        """The result rows as JSON-safe dicts (the API's ``results``)."""
        ...


def plain_rows(items: Any) -> list[dict[str, Any]]:
    """Result rows as JSON-safe dicts (dataclasses or mappings)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            d: Any = dataclasses.asdict(item)
        elif isinstance(item, Mapping):
            d = dict(item)
        else:
            d = {"value": item}
        rows.append(_jsonable(d))
    return rows
