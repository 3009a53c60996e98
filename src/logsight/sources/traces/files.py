"""An NDJSON span file as a span source: windows by trace start, entry-point filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from logsight.errors import BadRequest, NoData
from logsight.timeutil import as_utc, iso

if TYPE_CHECKING:
    pass
from logsight.sources.textfile import DecodeReport
from logsight.sources.traces.records import load_spans_file


def _ns(ts: datetime) -> int:
    return int(pd.Timestamp(as_utc(ts)).value)


def trace_starts(spans: pd.DataFrame) -> pd.Series:
    """Each trace's start (ns): its root span's, or its first span's where the root is missing
    (a trace cut by the export), the same rule the cluster reader windows traces by."""
    first = spans.groupby("trace_id", sort=False)["start_ns"].min()
    is_root = spans["parent_id"].isna() | (spans["parent_id"] == "")
    root = spans[is_root].groupby("trace_id", sort=False)["start_ns"].min()
    # assigned, not reindex+fillna: a float64 detour would round nanoseconds near 2**60
    starts = first.copy()
    starts.loc[root.index] = root
    return starts


class SpanFile:
    """An NDJSON span file (see :func:`load_spans_file`), read once. ``parameter`` is the
    request field that named it (``input``, ``baseline_input``) and ``window_parameter`` the
    one that chose its window, for the errors."""

    namespace: str | None = None

    def __init__(self, path: str | Path, *, parameter: str = "input",
                 window_parameter: str = "window") -> None:
        self.path = Path(path)
        self.parameter = parameter
        self.window_parameter = window_parameter
        self._frame: pd.DataFrame | None = None
        # lines that were not valid UTF-8 (read with U+FFFD): said, never fatal
        self.decode = DecodeReport(self.path)

    @property
    def notes(self) -> list[str]:
        """What the reader should tell the user about how the file was read."""
        return [self.decode.message] if self.decode.message else []

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            try:
                self._frame = load_spans_file(self.path, decode=self.decode)
            except ValueError as e:  # the reader's own refusals of the file, all of them
                raise BadRequest(self.parameter, str(e)) from None
        return self._frame

    def _in_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """The spans of the traces that start in [start, end); NoData saying the file's own
        time span when no trace does."""
        spans = self.frame()
        if (start is None and end is None) or spans.empty:
            return spans
        starts = trace_starts(spans)
        keep = pd.Series(True, index=starts.index)
        if start is not None:
            keep &= starts >= _ns(start)
        if end is not None:
            keep &= starts < _ns(end)
        if not keep.any():
            first, last = (iso(pd.Timestamp(int(v), tz="UTC").to_pydatetime(),
                               timespec="seconds") for v in (starts.min(), starts.max()))
            s = iso(start, timespec="seconds") if start else "its start"
            e = iso(end, timespec="seconds") if end else "its end"
            raise NoData(
                f"no traces in {self.path} start between {s} ({{{self.window_parameter}.start}})"
                f" and {e} ({{{self.window_parameter}.end}}); its {len(starts)} traces start "
                f"from {first} to {last}", parameters=(self.window_parameter,))
        return spans[spans["trace_id"].isin(set(starts.index[keep.to_numpy()]))]

    def spans(self, start: datetime | None, end: datetime | None, *,
              service: str | None = None, operation: str | None = None) -> pd.DataFrame:
        spans = self._in_window(start, end)
        if service is None and operation is None:
            return spans
        is_root = spans["parent_id"].isna() | (spans["parent_id"] == "")
        roots = roots_of = spans[is_root]
        if service is not None:
            roots = roots[roots["service"] == service]
        if operation is not None:
            roots = roots[roots["name"] == operation]
        spans = spans[spans["trace_id"].isin(set(roots["trace_id"]))]
        if len(spans) == 0:
            asked = " and ".join(
                p for p in (f"service {service!r}" if service is not None else "",
                            f"operation {operation!r}" if operation is not None else "") if p)
            seen = sorted({f"{s} {n}" for s, n in zip(roots_of["service"], roots_of["name"],
                                                     strict=True)})
            raise NoData(f"no traces in {self.path} with a root span of {asked}; entry points "
                         f"seen: {seen[:20]}", parameters=("service", "operation"))
        return spans

    def version_spans(self, start: datetime | None, end: datetime | None, *, service: str,
                      versions: Sequence[str]) -> pd.DataFrame:
        return self._in_window(start, end)

    def operation_stats(self, start: datetime, end: datetime) -> pd.DataFrame | None:
        return None

    def explain_empty(self, start: datetime | None, end: datetime | None, *,
                      service: str | None = None, operation: str | None = None) -> str | None:
        return None if len(self.spans(start, end, service=service, operation=operation)) \
            else f"no spans in {self.path}"

    def describe(self, start: datetime | None, end: datetime | None) -> str:
        return str(self.path)
