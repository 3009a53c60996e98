"""Trace correlation: the active OpenTelemetry span's ids, for log and ML-event documents."""

from __future__ import annotations

from typing import Any

try:  # opentelemetry-api is a dependency, but correlation must never break logging
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - exercised only without the dependency
    _otel_trace = None  # type: ignore[assignment]  # correlation is simply off


def current_trace() -> dict[str, str] | None:
    """``trace.id`` / ``span.id`` of the active span, plus ``transaction.id`` when the span is
    the service's entry span (no parent, or a remote parent: Elastic APM's "transaction").
    None when no valid span is active."""
    if _otel_trace is None:
        return None
    span: Any = _otel_trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    span_id = format(ctx.span_id, "016x")
    out = {"trace.id": format(ctx.trace_id, "032x"), "span.id": span_id}
    parent = getattr(span, "parent", None)
    if parent is None or getattr(parent, "is_remote", False):
        out["transaction.id"] = span_id
    return out
