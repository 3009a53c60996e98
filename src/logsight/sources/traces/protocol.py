"""The one protocol the trace jobs read spans through (cluster or file)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pandas as pd

if TYPE_CHECKING:
    pass



# -- the sources the trace jobs read -----------------------------------------------------------
class SpanSource(Protocol):
    """Spans for the trace jobs; ``None`` window bounds mean open (a file's own first / last
    trace; the cluster needs both)."""

    namespace: str | None

    def spans(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None, operation: str | None = None) -> pd.DataFrame:
        """The spans of the traces whose root started in [start, end) (with an entry point:
        only traces whose root span is of ``service`` / ``operation``)."""
        ...

    def version_spans(self, start: datetime | None, end: datetime | None, *, service: str,
                      versions: Sequence[str]) -> pd.DataFrame:
        """The spans of the traces in [start, end) in which ``service`` ran one of
        ``versions`` (more traces may come along: the version split sorts them)."""
        ...

    def operation_stats(self, start: datetime, end: datetime) -> pd.DataFrame | None:
        """Engine-side latency percentiles per operation, or None where there is no engine."""
        ...

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None, operation: str | None = None) -> str | None:
        """Why nothing was found there (what was searched, what there is instead); None when
        there is something."""
        ...

    def describe(self, start: datetime | None, end: datetime | None) -> str:
        """Where a read looks, in words."""
        ...
