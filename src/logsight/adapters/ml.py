"""ML events: predictions, ground-truth feedback and KPIs, as documents of the ML-events stream.

Shapes (flat field paths; see docs/DEVELOPING.md): ``ml.event_type`` prediction | feedback |
kpi, ``ml.model.name`` / ``ml.model.version``, ``ml.request_id`` (joins a prediction with the
feedback that arrives later), ``ml.features.<name>`` (float for numbers and booleans, keyword
for strings), ``ml.prediction`` (keyword) + ``ml.prediction_value`` (numeric predictions),
``ml.score``, ``ml.probabilities.<class>``, ``ml.latency_ms``, ``ml.label`` +
``ml.label_value``, ``ml.kpi.name`` / ``ml.kpi.value``.

Nothing here raises into the application for odd values: non-finite numbers and ``None`` are
left out, unknown types become strings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from logsight.adapters.tracing import current_trace
from logsight.ecs import Clock, EventIds, Service, format_timestamp, sanitize_label_key

Emit = Callable[[str, Mapping[str, Any]], bool]
Timestamp = float | int | datetime | str | None
log = logging.getLogger("logsight.shipper.ml")


def _epoch(ts: Timestamp, clock: Clock) -> float:
    if ts is None:
        return clock()
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    if isinstance(ts, str):
        return _epoch(datetime.fromisoformat(ts.replace("Z", "+00:00")), clock)
    return float(ts)


def _number(v: Any) -> float | None:
    """A finite float for numbers and booleans (numpy scalars too), else None."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return _number(v.item())
        except Exception:
            return None
    return None


def _key(name: Any) -> str:
    # dots would nest ("a.b" under "a"): one feature is one field
    return sanitize_label_key(str(name))


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    try:
        return str(v)
    except Exception:
        return f"<unprintable {type(v).__name__}>"


class MlEvents:
    """Builds and emits ML event documents for one service."""

    def __init__(
        self,
        emit: Emit,
        service: Service,
        *,
        clock: Clock = time.time,
        ids: Callable[[], str] | None = None,
        trace: bool = True,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._ids = ids or EventIds()
        self._trace = trace
        base = service.base_fields()
        self._base: dict[str, Any] = {k: base[k] for k in ("service.name", "service.version",
                                           "service.environment", "host.hostname") if k in base}

    def _doc(self, event_type: str, timestamp: Timestamp) -> dict[str, Any]:
        doc: dict[str, Any] = {"@timestamp": format_timestamp(_epoch(timestamp, self._clock))}
        doc.update(self._base)
        doc["ml.event_type"] = event_type
        return doc

    def _finish(self, doc: dict[str, Any]) -> None:
        if self._trace:
            tr = current_trace()
            if tr:
                doc["trace.id"] = tr["trace.id"]
                doc["span.id"] = tr["span.id"]
        doc["event.id"] = self._ids()
        self._emit("mlevents", doc)

    @staticmethod
    def _model(doc: dict[str, Any], model: Any, version: Any) -> None:
        if model is not None:
            doc["ml.model.name"] = _text(model)
        if version is not None:
            doc["ml.model.version"] = _text(version)

    def log_prediction(
        self,
        model: str,
        version: str | None,
        features: Mapping[str, Any] | None,
        prediction: Any,
        score: float | None = None,
        probabilities: Mapping[Any, float] | Sequence[float] | None = None,
        latency_ms: float | None = None,
        request_id: str | None = None,
        *,
        timestamp: Timestamp = None,
    ) -> str:
        """Record one prediction; returns its request id (generated when not given) to pass
        to :meth:`log_feedback` when the ground truth arrives."""
        rid = _text(request_id) if request_id is not None else self._ids()
        try:
            doc = self._doc("prediction", timestamp)
            self._model(doc, model, version)
            doc["ml.request_id"] = rid
            for name, value in (features or {}).items():
                num = _number(value)
                if num is not None:
                    doc["ml.features." + _key(name)] = num
                elif value is not None and not isinstance(value, float):
                    doc["ml.features." + _key(name)] = _text(value)
            if prediction is not None:
                doc["ml.prediction"] = _text(prediction)
                num = None if isinstance(prediction, bool) else _number(prediction)
                if num is not None:
                    doc["ml.prediction_value"] = num
            if (s := _number(score)) is not None:
                doc["ml.score"] = s
            if probabilities is not None:
                items = (probabilities.items() if isinstance(probabilities, Mapping)
                         else enumerate(probabilities))
                for cls, p in items:
                    if (pv := _number(p)) is not None:
                        doc["ml.probabilities." + _key(cls)] = pv
            if (lat := _number(latency_ms)) is not None:
                doc["ml.latency_ms"] = lat
            self._finish(doc)
        except Exception:  # odd input is logged, never raised into the model server
            log.warning("logsight: could not record prediction of %r", model, exc_info=True)
        return rid

    def log_feedback(
        self,
        request_id: str,
        label: Any,
        *,
        model: str | None = None,
        version: str | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Record the ground truth for an earlier prediction (joined on ``request_id``)."""
        try:
            doc = self._doc("feedback", timestamp)
            self._model(doc, model, version)
            doc["ml.request_id"] = _text(request_id)
            if label is not None:
                doc["ml.label"] = _text(label)
                num = None if isinstance(label, bool) else _number(label)
                if num is not None:
                    doc["ml.label_value"] = num
            self._finish(doc)
        except Exception:
            log.warning("logsight: could not record feedback %r", request_id, exc_info=True)

    def log_kpi(
        self,
        name: str,
        value: float,
        *,
        model: str | None = None,
        version: str | None = None,
        labels: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Record a business / model KPI value (e.g. conversion rate, accuracy)."""
        try:
            doc = self._doc("kpi", timestamp)
            self._model(doc, model, version)
            doc["ml.kpi.name"] = _text(name)
            if (v := _number(value)) is not None:
                doc["ml.kpi.value"] = v
            for k, lv in (labels or {}).items():
                doc["labels." + _key(k)] = _text(lv)
            self._finish(doc)
        except Exception:
            log.warning("logsight: could not record KPI %r", name, exc_info=True)
