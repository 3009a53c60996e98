"""Plain-text log lines: which timestamp format a file uses, and which lines continue the event
before them (stack traces, wrapped messages).

A file's format is decided once, from its first lines (the format most of them start with),
then every line is read with it, so one odd line cannot switch the parser. Recognised:

* ``iso8601``: ``2026-12-04T13:02:11.250Z``, ``2026-12-04 13:02:11,250``, ``2026/12/04 13:02:11``
  (optionally in brackets; a missing offset means UTC);
* ``syslog``: ``Dec  4 13:02:11`` (RFC 3164; no year: the year that puts the time not after
  ``now``, i.e. last year for a December line read in January);
* ``clf``: ``[04/Dec/2026:13:02:11 +0000]`` anywhere in the first 120 characters (Apache and
  nginx access logs start with the client address);
* ``epoch``: 10-digit seconds or 13-digit milliseconds (optionally with a fraction) at the line
  start, between 2000 and 2100, followed by a separator.

With a format, a line that does not start with a timestamp belongs to the event before it, as
Filebeat's multiline handling groups them: its text is appended to that event's message after a
newline (lines before the first timestamped one stay events of their own). Without a format,
every line is its own event and analyses window by line counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    start=1)}

_ISO_RE = re.compile(
    r"^\[?(\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})([.,]\d+)?"
    r"(Z|[+-]\d{2}:?\d{2})?\]?(?=\s|$)\s*"
)
_SYSLOG_RE = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d{2}):(\d{2}):(\d{2})"
    r"(?=\s|$)\s*"
)
_CLF_RE = re.compile(
    r"\[(\d{2})/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/(\d{4}):(\d{2}):(\d{2}):(\d{2})"
    r" ([+-]\d{4})\]"
)
_EPOCH_RE = re.compile(r"^(\d{10}|\d{13})(\.\d+)?(?=[\s,;|]|$)[\s,;|]*")
_EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01 in seconds

# the order formats are tried in when first lines match several equally often
FORMATS = ("iso8601", "syslog", "clf", "epoch")
DETECT_LINES = 50


@dataclass(frozen=True)
class Stamp:
    """A timestamp found in a line: the instant (UTC) and the line without it."""

    time: datetime
    rest: str


def _tz(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def _iso(line: str, now: datetime) -> Stamp | None:
    m = _ISO_RE.match(line)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=_tz(off))
    except ValueError:  # 2026-13-45: digits in the shape of a date, not a date
        return None
    return Stamp(t.astimezone(UTC), line[m.end():])


def _syslog(line: str, now: datetime) -> Stamp | None:
    m = _SYSLOG_RE.match(line)
    if not m:
        return None
    mon, day, h, mi, s = m.groups()
    try:
        t = datetime(now.year, _MONTHS[mon], int(day), int(h), int(mi), int(s), tzinfo=UTC)
    except ValueError:  # Feb 29 in a year without it, Feb 30
        try:
            t = datetime(now.year - 1, _MONTHS[mon], int(day), int(h), int(mi), int(s),
                         tzinfo=UTC)
        except ValueError:
            return None
    if t > now + timedelta(days=1):  # "Dec 31" read on Jan 2: last year's line
        t = t.replace(year=t.year - 1)
    return Stamp(t, line[m.end():])


def _clf(line: str, now: datetime) -> Stamp | None:
    m = _CLF_RE.search(line, 0, 120)
    if not m:
        return None
    d, mon, y, h, mi, s, off = m.groups()
    try:
        t = datetime(int(y), _MONTHS[mon], int(d), int(h), int(mi), int(s), tzinfo=_tz(off))
    except ValueError:
        return None
    # the stamp sits inside the line (after the client address): the line stays whole
    return Stamp(t.astimezone(UTC), line)


def _epoch(line: str, now: datetime) -> Stamp | None:
    m = _EPOCH_RE.match(line)
    if not m:
        return None
    whole, frac = m.groups()
    seconds = int(whole) / (1000 if len(whole) == 13 else 1) + (float(frac) if frac else 0.0)
    if not _EPOCH_RANGE[0] <= seconds < _EPOCH_RANGE[1]:
        return None
    return Stamp(datetime.fromtimestamp(seconds, UTC), line[m.end():])


_PARSERS: dict[str, Callable[[str, datetime], Stamp | None]] = {
    "iso8601": _iso, "syslog": _syslog, "clf": _clf, "epoch": _epoch,
}


def parse_stamp(line: str, fmt: str, *, now: datetime | None = None) -> Stamp | None:
    """The timestamp ``line`` starts with in format ``fmt`` (see :data:`FORMATS`), or None."""
    return _PARSERS[fmt](line, now or datetime.now(UTC))


def detect_format(lines: Iterable[str], *, now: datetime | None = None,
                  max_lines: int = DETECT_LINES) -> str | None:
    """The format most of the first ``max_lines`` non-empty lines start with (ties: the order
    of :data:`FORMATS`); None when no line has a recognised timestamp."""
    now = now or datetime.now(UTC)
    counts = dict.fromkeys(FORMATS, 0)
    seen = 0
    for line in lines:
        if not line.strip():
            continue
        for fmt in FORMATS:
            if _PARSERS[fmt](line, now) is not None:
                counts[fmt] += 1
        seen += 1
        if seen >= max_lines:
            break
    rank = {f: i for i, f in enumerate(FORMATS)}
    best = max(FORMATS, key=lambda f: (counts[f], -rank[f]))
    return best if counts[best] else None


@dataclass
class RawEvent:
    """One event of a raw log file: its first line's number, its time (None when the file has
    no timestamp format or the event came before the first stamped line) and its text, with
    continuation lines appended after newlines."""

    line: int
    time: datetime | None
    text: str
    continuation_lines: int = 0


def group_events(numbered: Iterable[tuple[int, str]], fmt: str | None, *,
                 now: datetime | None = None) -> list[RawEvent]:
    """Lines (number, text without the line end; empty ones already left out) as events:
    with ``fmt``, a line without a timestamp continues the event before it."""
    now = now or datetime.now(UTC)
    events: list[RawEvent] = []
    for n, line in numbered:
        if fmt is None:
            events.append(RawEvent(n, None, line))
            continue
        st = _PARSERS[fmt](line, now)
        if st is not None:
            events.append(RawEvent(n, st.time, st.rest))
        elif events and events[-1].time is not None:
            ev = events[-1]
            ev.text += "\n" + line
            ev.continuation_lines += 1
        else:  # before the first stamped line: an event of its own, without a time
            events.append(RawEvent(n, None, line))
    return events


FORMAT_EXAMPLES = {
    "iso8601": "2026-12-04T13:02:11Z",
    "syslog": "Dec  4 13:02:11",
    "clf": "[04/Dec/2026:13:02:11 +0000]",
    "epoch": "1796389331",
}

__all__ = ["FORMATS", "FORMAT_EXAMPLES", "RawEvent", "Stamp", "detect_format", "group_events",
           "parse_stamp"]
