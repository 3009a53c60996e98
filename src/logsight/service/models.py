"""Typed request/response bodies of the API (pydantic), and the parsing of times and cursors
that turns a client's mistake into a clear 400."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from logsight.timeutil import EPOCH, age_seconds, as_utc, iso
from logsight.timeutil import parse_time as parse_time_text

Severity = Literal["low", "medium", "high", "critical"]

# the engine's date range: years outside it make the cluster answer 400 (our 502)
_MIN_TS = EPOCH
_MAX_TS = datetime(9999, 1, 1, tzinfo=UTC)


class TimeError(ValueError):
    """A time or window the client sent is not usable."""


def parse_time(value: str | None, *, now: datetime, name: str) -> datetime | None:
    """ISO-8601 (naive = UTC), ``now``, or an age: ``15m``, ``now-2h``, ``7d``."""
    if value is None or value == "":
        return None
    try:
        ts = as_utc(parse_time_text(value, now=now))
    except ValueError as e:
        raise TimeError(f"{name}={value!r} {e}") from None
    if not _MIN_TS <= ts < _MAX_TS:
        raise TimeError(f"{name}={value!r} is outside 1970..9999")
    return ts


def is_relative(value: str | None) -> bool:
    """Whether a time parameter moves with the clock (``now``, ``15m``, ``now-2h``); absent
    counts as relative (an absent ``to`` is now)."""
    if value is None or not value.strip():
        return True
    v = value.strip()
    return v == "now" or age_seconds(v) is not None


def window(
    start: str | None,
    end: str | None,
    *,
    now: datetime,
    default: timedelta,
    max_window: timedelta | None,
    names: tuple[str, str] = ("from", "to"),
) -> tuple[datetime, datetime]:
    """A ``[start, end)`` window: ``end`` defaults to now, ``start`` to ``end - default``."""
    e = parse_time(end, now=now, name=names[1]) or now
    s = parse_time(start, now=now, name=names[0]) or e - default
    check_window(s, e, max_window=max_window, names=names)
    return s, e


def floor_minute(t: datetime) -> datetime:
    """``t`` floored to the whole minute."""
    return t.replace(second=0, microsecond=0)


def check_window(s: datetime, e: datetime, *, max_window: timedelta | None,
                 names: tuple[str, str] = ("from", "to")) -> None:
    """TimeError for an inverted or too large ``[s, e)``."""
    if e <= s:
        raise TimeError(f"inverted time range: {names[0]} ({iso(s)}) must be before "
                        f"{names[1]} ({iso(e)})")
    if max_window is not None and e - s > max_window:
        raise TimeError(
            f"window too large: {names[0]}..{names[1]} spans {duration_text(e - s)}, the limit "
            f"is {duration_text(max_window)}"
        )


def duration_text(td: timedelta) -> str:
    """``7d``, ``1h30m``, ``45s``: how a person writes a duration."""
    seconds = int(td.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or f"{td.total_seconds():g}s"


def encode_cursor(sort_values: list[Any]) -> str:
    raw = json.dumps(sort_values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The findings sort values ``[epoch_millis, id]`` a previous page handed out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one this API handed out") from None
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not isinstance(values[0], int)
        or isinstance(values[0], bool)
        or not isinstance(values[1], str)
        or not -(2**62) < values[0] < 2**62
    ):
        raise ValueError("cursor is not one this API handed out")
    return values


# -- bodies ----------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. bad_request, unauthorized")
    message: str = Field(description="What is wrong, for a person")
    details: Any = None


class EngineHealth(BaseModel):
    reachable: bool
    flavor: str | None = None
    version: str | None = None
    cluster_status: str | None = None
    error: str | None = None


class SchedulerHealth(BaseModel):
    enabled: bool
    running: bool = False
    tasks: list[str] = Field(default_factory=list)
    last_pass: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    engine: EngineHealth
    scheduler: SchedulerHealth
    analyses: dict[str, bool] = Field(description="analysis kind -> available in this build")


class FindingOut(BaseModel):
    """A finding as stored in ``logsight-findings`` (see logsight.findings.Finding)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    kind: str
    title: str
    summary: str
    severity: str
    score: float | None = None
    confidence: float | None = None
    service: str | None = None
    subject: str | None = None
    operation: str | None = None
    feature: str | None = None
    model: str | None = None
    model_version: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    detected_at: str | None = None
    namespace: str | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    sample_ids: list[str] = Field(default_factory=list)


class FindingsPage(BaseModel):
    findings: list[FindingOut]
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next page; null on the last page"
    )


class BottleneckRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    rank: int
    service: str
    operation: str
    critical_path_share: float | None = None
    critical_path_ms: float | None = None
    on_critical_path_ratio: float | None = None
    self_time_p50_ms: float | None = None
    self_time_p95_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    error_rate: float | None = None
    count: int | None = None


class Window(BaseModel):
    start: str
    end: str
    aligned: str | None = Field(
        default=None, description="set (\"1m\") when the window's relative times (ages, now) were "
        "floored to the whole minute: POST analysis runs do this so a re-run within the same "
        "minute has the same window and overwrites its findings")

    @model_serializer(mode="wrap")
    def _drop_unaligned(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # absent rather than null: a window that was not aligned keeps its {start, end} shape
        out: dict[str, Any] = handler(self)
        if out.get("aligned") is None:
            out.pop("aligned", None)
        return out


class BottlenecksResponse(BaseModel):
    window: Window
    service: str | None = None
    operation: str | None = None
    bottlenecks: list[BottleneckRow]
    findings: list[FindingOut]
    answered_from: str = Field(
        "spans", description="critical_path_index: aggregated from the trace-completion job's "
        "stored documents; spans: recomputed from raw spans (the job has not covered the "
        "window: `notes` says why)")
    notes: list[str] = Field(default_factory=list)
    stats: dict[str, int] = Field(
        default_factory=dict, description="what was counted: traces, spans, repaired spans "
        "(orphans, clipped)")


class AnalysisResponse(BaseModel):
    """The result of one analysis run: its rows (shape per kind) and the findings it made."""

    kind: str
    window: Window
    baseline: Window | None = Field(None, description="reference/baseline window, if any")
    written: bool = Field(description="whether the findings were stored")
    results: list[dict[str, Any]]
    findings: list[FindingOut]


class AnalysisRequest(BaseModel):
    """Parameters of ``POST /v1/analyses/{kind}``; each kind uses the ones it needs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str | None = Field(None, alias="from", description="ISO-8601 or age (default 1h)")
    end: str | None = Field(None, alias="to", description="ISO-8601 or age (default now)")
    baseline_start: str | None = Field(
        None, alias="baseline_from",
        description="baseline/reference window start (default: the window before)",
    )
    baseline_end: str | None = Field(
        None, alias="baseline_to", description="baseline/reference window end"
    )
    namespace: str | None = Field(
        None, max_length=100,
        description="data-stream namespace to analyse (and whose findings are written); "
        "default: the service's --namespace / LOGSIGHT_NAMESPACE, all namespaces when unset",
    )
    service: str | None = Field(
        None, max_length=256,
        description="only this service (bottlenecks: entry-point service; trace_regressions, "
        "log_anomalies); drift and performance select by model",
    )
    operation: str | None = Field(None, max_length=512)
    model: str | None = Field(None, max_length=256)
    version: str | None = Field(None, max_length=256,
                                description="model version (performance); must have sent data")
    top: int = Field(10, ge=1, le=1000)
    write: bool = Field(True, description="store the findings (stable ids: never duplicated)")
    estimate: bool = Field(
        False, description="performance: estimate each version's accuracy from its calibrated "
        "probabilities (CBPE) before the labels land; the baseline window is the labelled "
        "calibration check; estimated_performance_drop findings")
