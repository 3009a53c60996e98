"""logsight.timeutil: the one ISO/UTC formatting and parsing every layer uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logsight.timeutil import EPOCH, age_seconds, as_utc, iso, parse_iso, parse_time

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_iso_known_values() -> None:
    assert iso(datetime(2024, 5, 1, 10, 0, tzinfo=UTC)) == "2024-05-01T10:00:00Z"
    # naive is UTC, never the machine's zone; other offsets become their UTC instant
    assert iso(datetime(2024, 5, 1, 10, 0)) == "2024-05-01T10:00:00Z"
    plus2 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso(plus2) == "2024-05-01T10:00:00Z"
    assert iso(datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
               timespec="milliseconds") == "2024-05-01T10:00:00.123Z"
    assert iso("2024-05-01T10:00:00+02:00") == "2024-05-01T10:00:00+02:00"
    assert iso(None) is None


def test_parse_known_values() -> None:
    assert parse_iso("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_iso("2024-05-01T10:00:00").tzinfo is UTC
    assert parse_iso("2024-05-01T12:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert age_seconds("15m") == 900.0
    assert age_seconds("now - 1.5h") == 5400.0
    assert age_seconds("now") is None and age_seconds("yesterday") is None
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("now-2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_time(" 2024-05-01T10:00:00Z ", now=NOW) == datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [
    ("yesterday", "is neither an ISO-8601 time"),
    ("", "is neither an ISO-8601 time"),
    ("99999999999d", "reaches before 1970"),
])
def test_parse_time_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text, now=NOW)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)),
                                               timezone(timedelta(hours=5, minutes=30))])))
def test_iso_round_trips_to_the_same_instant(ts: datetime) -> None:
    text = iso(ts)
    assert text.endswith("Z")
    back = parse_iso(text)
    assert back == ts and back.tzinfo == UTC
    assert as_utc(back) == as_utc(ts) and as_utc(ts) >= EPOCH
