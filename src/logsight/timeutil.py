"""UTC times as logsight writes and reads them: ISO-8601 with a ``Z`` suffix, naive = UTC.

Every layer - ``analysis/`` included - may import it: it imports no engine, and pandas only
inside :func:`parse_window` (the CLI starts without it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    import pandas as pd

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]

# an age back from now: ``15m``, ``now-2h``, ``now - 1.5d``
# (the grammar of every time and age logsight reads; durations add ``ms`` and bare seconds)
_AGE = re.compile(r"^(?:now\s*-\s*)?(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def as_utc(ts: datetime) -> datetime:
    """``ts`` in UTC; a naive time is taken to be UTC already (never the machine's zone)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


@overload
def iso(ts: None, *, timespec: Timespec = ...) -> None: ...
@overload
def iso(ts: datetime | str, *, timespec: Timespec = ...) -> str: ...
def iso(ts: datetime | str | None, *, timespec: Timespec = "auto") -> str | None:
    """``2024-05-01T10:00:00Z``: the UTC instant of ``ts`` (naive = UTC). A string is taken
    to be an ISO time already and passes through unchanged, as does None."""
    if ts is None or isinstance(ts, str):
        return ts
    return as_utc(ts).isoformat(timespec=timespec).replace("+00:00", "Z")


def short_time(ts: datetime | str | None) -> str:
    """``2024-05-01 10:00:00``: a time for a table or a message (UTC, seconds); text passes
    through, None is empty."""
    if ts is None:
        return ""
    if isinstance(ts, str):
        return ts
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_iso(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; naive = UTC) as an aware datetime in the offset
    it was given in. Raises ValueError when ``text`` is not one."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def age_seconds(text: str) -> float | None:
    """Seconds of an age back from now (``15m``, ``now-2h``, ``7d``, ``1w``); None when
    ``text`` is not an age (``now`` alone is not one: it is zero seconds by name)."""
    m = _AGE.match(text.strip())
    if m is None:
        return None
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_time(text: str, *, now: datetime) -> datetime:
    """``now``, an age back from ``now`` (``15m``, ``now-2h``, ``7d``) or an ISO-8601 time
    (naive = UTC, see :func:`parse_iso`). Raises ValueError with a message that reads after
    the quoted input (``'x' is neither ...``)."""
    v = text.strip()
    if v == "now":
        return now
    seconds = age_seconds(v)
    if seconds is not None:
        # checked before subtracting: a huge age would overflow datetime instead
        if seconds > (as_utc(now) - EPOCH).total_seconds():
            raise ValueError("reaches before 1970")
        return now - timedelta(seconds=seconds)
    try:
        return parse_iso(v)
    except ValueError:
        raise ValueError("is neither an ISO-8601 time nor an age like 15m, now-2h, 7d") from None


def parse_window(window: str | pd.Timedelta) -> pd.Timedelta:
    """A window length (``"1min"``, ``"30s"``, ``"5m"`` ...) as a positive Timedelta;
    ValueError otherwise."""
    import pandas as pd

    try:
        text = window.strip() if isinstance(window, str) else window
        if isinstance(text, str) and re.fullmatch(r"\d+m", text):
            text = text + "in"  # "5m" means minutes here, as in Kibana/ES intervals
        delta = pd.Timedelta(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid window {window!r}: use e.g. '1min', '30s', '5min'") from e
    if pd.isna(delta) or delta <= pd.Timedelta(0):
        raise ValueError(f"window must be positive, got {window!r}")
    return delta


def parse_when(text: str, *, now: datetime) -> datetime:
    """:func:`parse_time` (``now``, an age, ISO-8601), plus the other ISO spellings a command
    line may carry (``2024/05/01 10:00``, basic ``20240501T100000``, nanoseconds); those must
    start with a four-digit year, so an age like ``6h`` never becomes year 1. UTC-aware.
    Raises ValueError as :func:`parse_time` does."""
    try:
        return as_utc(parse_time(text, now=now))
    except ValueError as e:
        reason = e
    value = text.strip()
    if value[:4].isdigit():
        import pandas as pd

        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            ts = None
        if ts is not None and not pd.isna(ts) and ts.year >= 1970:
            return as_utc(ts.to_pydatetime())
    raise reason


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_SECONDS = {"ms": 0.001, **_UNIT_SECONDS}


def parse_duration(value: str | float | int | timedelta, *, what: str = "duration") -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds; ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{what} {value!r} is not a duration such as 30s, 5m, 1h or 7d")
        seconds = float(m.group(1)) * _DURATION_SECONDS[m.group(2) or "s"]
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return timedelta(seconds=seconds)
