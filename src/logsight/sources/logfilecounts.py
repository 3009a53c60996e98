"""Log counts from a file in one pass: the count frame the cluster's aggregations give
(:mod:`logsight.sources.logcounts`), built line by line with memory bounded by services x
template keys x windows x levels, not by lines. Examples and sample ids of the flagged windows
come from a second, bounded pass that keeps at most a few lines per flagged window.

A line's template key is :func:`fingerprint` (tokens holding a digit become ``<*>``, 64-bit
FNV-1a of the result): the rule of ``logs_template.painless`` (the same key for the same line,
checked against the pipeline), though a file needs its keys consistent only within itself.
The miner merges the keys that are one template, as it does for the cluster's keys.

Only time-stamped files are counted: a file whose lines mostly carry no timestamp is cut into
windows of consecutive lines, with a baseline that is a share of the lines, which the line
path does (:meth:`LogFileCounts.counts` returns None and the job reads lines).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from logsight.analysis.logs.counts import (
    ERROR_LEVELS,
    FlaggedWindow,
    LogCounts,
    WindowSamples,
    empty_count_frame,
    prepare_counts,
)
from logsight.levels import normalize_level
from logsight.sources.logs import LogFileError, _ndjson_row, _ndjson_timestamp, _raw_row
from logsight.timeutil import as_utc, parse_window

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


def fingerprint(message: str, *, max_chars: int = 2000, max_tokens: int = 64) -> str:
    """The template key of a message: space-separated tokens holding a digit become ``<*>``
    (after ``max_tokens`` tokens: `` ...``), hashed with 64-bit FNV-1a (hex)."""
    out: list[str] = []
    for tok in message[:max_chars].split(" "):
        if not tok:
            continue
        if len(out) >= max_tokens:
            out.append("...")
            break
        out.append("<*>" if any(c.isdigit() for c in tok) else tok)
    h = _FNV_OFFSET
    # over UTF-16 code units, as Painless' String.charAt sees the text
    for unit in memoryview(" ".join(out).encode("utf-16-le")).cast("H"):
        h = ((h ^ unit) * _FNV_PRIME) & _MASK64
    return format(h, "x")


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime(warn=False)
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:  # the common ISO forms, fast; pandas reads the rest as the line path does
            t = datetime.fromisoformat(value.strip())
            return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        except ValueError:
            pass
    ts = _ndjson_timestamp(value)
    return None if ts is None else ts.to_pydatetime(warn=False)


class LogFileCounts:
    """Counts of a log file (raw lines or NDJSON, read as :class:`LogFileSource` reads it)."""

    def __init__(self, path: str | Path, *, service: str | None = None,
                 skip_bad_lines: bool = False) -> None:
        self.path = Path(path)
        self.service = service
        self.skip_bad_lines = skip_bad_lines
        self.skipped: list[tuple[int, str]] = []
        self._window_s = 60.0
        self._bounds: tuple[datetime | None, datetime | None, str | None] = (None, None, None)

    def _rows(self) -> Iterator[dict[str, Any]]:
        """Every readable line's row, in file order (bad NDJSON lines as the line path
        treats them: an error, or skipped into :attr:`skipped`)."""
        fmt: str | None = None
        self.skipped = []
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for n, raw in enumerate(fh, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                if fmt is None:
                    fmt = "ndjson" if line.lstrip().startswith("{") else "raw"
                if fmt == "raw":
                    row = _raw_row(n, line, self.service or self.path.stem)
                    row["timestamp"] = _when(row["timestamp"])
                    row["level"] = normalize_level(row["level"])
                    yield row
                    continue
                try:
                    row = _ndjson_row(n, line, self.path.stem)
                except LogFileError as e:
                    if not self.skip_bad_lines:
                        raise LogFileError(f"{self.path}: {e}") from None
                    self.skipped.append((n, str(e)))
                    continue
                row["timestamp"] = _when(row["timestamp"])
                yield row

    def _kept(self) -> Iterator[tuple[dict[str, Any], datetime]]:
        """Rows in the bounds with the time their window is taken from: a line without a
        timestamp takes the last one before it (the first ones: the first after them), as
        the line path fills them; with a bound such lines are dropped, as it drops them."""
        start, end, service = self._bounds
        pending: list[dict[str, Any]] = []
        last: datetime | None = None
        self.untimed = self.timed = 0
        for row in self._rows():
            if service is not None and row["service"] != service:
                continue
            ts = row["timestamp"]
            if ts is None:
                if start is not None or end is not None:
                    continue
                self.untimed += 1
                if last is None:
                    pending.append(row)
                    continue
                yield row, last
                continue
            if (start is not None and ts < start) or (end is not None and ts >= end):
                continue
            self.timed += 1
            for p in pending:
                yield p, ts
            pending = []
            last = ts
            yield row, ts

    def _window(self, ts: datetime) -> int:
        return int(ts.timestamp() // self._window_s)

    def counts(self, start: datetime | None, end: datetime | None, *,
               service: str | None = None, window: str = "1min") -> LogCounts | None:
        """The count frame of the file's lines in [start, end) (of ``service``), or None when
        most lines have no timestamp (or none is left: the line path says why)."""
        self._window_s = parse_window(window).total_seconds()
        self._bounds = (as_utc(start) if start else None, as_utc(end) if end else None, service)
        counter: Counter[tuple[Any, ...]] = Counter()
        messages: dict[str, str] = {}
        version_first: dict[tuple[str, str], datetime] = {}
        first: datetime | None = None
        last: datetime | None = None
        for row, ts in self._kept():
            key = fingerprint(row["message"])
            messages.setdefault(key, row["message"])
            counter[(row["service"], self._window(ts), key, row["level"], row["version"])] += 1
            if row["timestamp"] is not None:
                first = ts if first is None or ts < first else first
                last = ts if last is None or ts > last else last
                if row["version"] not in (None, ""):
                    vk = (str(row["service"]), str(row["version"]))
                    if vk not in version_first or ts < version_first[vk]:
                        version_first[vk] = ts
        if not counter or self.untimed >= self.timed:
            return None
        frame = pd.DataFrame([(*k, n) for k, n in counter.items()],
                             columns=["service", "window", "key", "raw_level", "version",
                                      "count"]) if counter else empty_count_frame()
        frame["window"] = pd.to_datetime(frame["window"] * self._window_s, unit="s", utc=True)
        return LogCounts(prepare_counts(frame), messages, pd.Timestamp(first),
                         pd.Timestamp(last),
                         {k: pd.Timestamp(v) for k, v in version_first.items()})

    def samples(self, flagged: Sequence[FlaggedWindow], *,
                max_samples: int = 10) -> dict[tuple[str, pd.Timestamp], WindowSamples]:
        """A second pass keeping, per flagged window, the first line of each never-seen key
        and up to ``max_samples`` ids per priority (never-seen, error, other)."""
        want: dict[tuple[str, int], FlaggedWindow] = {
            (fw.service, self._window(fw.start.to_pydatetime().astimezone(UTC))): fw
            for fw in flagged}
        examples: dict[tuple[str, int], dict[str, tuple[str, str]]] = {k: {} for k in want}
        ids: dict[tuple[str, int], list[list[str]]] = {k: [[], [], []] for k in want}
        if want:
            for row, ts in self._kept():
                wk = (row["service"], self._window(ts))
                fw = want.get(wk)
                if fw is None:
                    continue
                key = fingerprint(row["message"])
                new = key in fw.new_keys
                if new and key not in examples[wk]:
                    examples[wk][key] = (str(row["id"]), str(row["message"]))
                rank = 0 if new else 1 if normalize_level(row["level"]) in ERROR_LEVELS else 2
                if len(ids[wk][rank]) < max_samples:
                    ids[wk][rank].append(str(row["id"]))
        return {(fw.service, fw.start): WindowSamples(
                    examples[k], [i for group in ids[k] for i in group][:max_samples])
                for k, fw in want.items()}

