"""What the cluster holds, by name: which services, models, versions and namespaces have sent
data. The API checks names with these before it runs a job (a 404 that lists what does exist
instead of an empty answer); the scheduler finds the models to analyse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.names import F
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine


class KnownNames:
    """Whether a service or model has ever sent data; positive answers are cached for
    ``ttl`` seconds (a hot endpoint should not ask the cluster every time)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._seen: dict[tuple[Any, ...], float] = {}

    def exists(self, engine: Engine, indices: Sequence[str], fields: Sequence[str],
               value: str, *, within: Mapping[str, str] | None = None) -> bool:
        """Whether any document of ``indices`` has ``value`` in one of ``fields`` (and the
        ``within`` field values, e.g. a version of one model)."""
        key = (",".join(indices), ",".join(fields), value,
               tuple(sorted((within or {}).items())))
        now = self._clock()
        if self._seen.get(key, 0.0) > now:
            return True
        query = {"bool": {"should": [{"term": {f: value}} for f in fields],
                          "minimum_should_match": 1,
                          "filter": [{"term": {f: v}} for f, v in (within or {}).items()]}}
        return self._remember(key, now, engine.count(",".join(indices), query) > 0)

    def has_data(self, engine: Engine, indices: Sequence[str]) -> bool:
        """Whether ``indices`` hold any document (a namespace that has sent data)."""
        key = (",".join(indices),)
        now = self._clock()
        if self._seen.get(key, 0.0) > now:
            return True
        return self._remember(key, now, engine.count(",".join(indices)) > 0)

    def _remember(self, key: tuple[Any, ...], now: float, found: bool) -> bool:
        if found:
            if len(self._seen) > 10_000:  # bounded: names come from clients
                self._seen.clear()
            self._seen[key] = now + self.ttl
        return found


def values_seen(engine: Engine, indices: Sequence[str], field: str, *,
                within: Mapping[str, str] | None = None, limit: int = 20) -> list[str]:
    """Up to ``limit`` values of ``field`` in ``indices`` (most documents first), for a 404
    that says what does exist."""
    body: dict[str, Any] = {
        "size": 0,
        "query": {"bool": {"filter": [{"term": {f: v}} for f, v in (within or {}).items()]}},
        "aggs": {"seen": {"terms": {"field": field, "size": limit}}},
    }
    resp = engine.search(",".join(indices), body, ignore_unavailable="true",
                         allow_no_indices="true")
    buckets = resp.get("aggregations", {}).get("seen", {}).get("buckets", [])
    return sorted(str(b["key"]) for b in buckets)


def namespaces_seen(engine: Engine, kinds: Sequence[str]) -> list[str]:
    """The namespaces that have a data stream of one of ``kinds`` (for a 404 that says what
    does exist)."""
    found: set[str] = set()
    for kind in kinds:
        resp = engine.request("GET", f"/_data_stream/{names.stream_pattern(kind)}")
        prefix = names.stream_pattern(kind)[:-1]
        for ds in resp.get("data_streams", []) if isinstance(resp, Mapping) else []:
            name = str(ds.get("name", ""))
            if name.startswith(prefix):
                found.add(name[len(prefix):])
    return sorted(found)


def models_in_window(
    engine: Engine, start: datetime, end: datetime, namespace: str | None = None,
    *, limit: int = 100,
) -> list[str]:
    """Model names that sent ML events in ``[start, end)``."""
    body = {
        "size": 0,
        "query": {"range": {F.TIMESTAMP: {"gte": iso(start), "lt": iso(end)}}},
        "aggs": {"models": {"terms": {"field": F.ML_MODEL, "size": limit}}},
    }
    resp = engine.search(names.read_target(names.MLEVENTS, namespace), body, ignore_unavailable="true",
                         allow_no_indices="true")
    buckets = resp.get("aggregations", {}).get("models", {}).get("buckets", [])
    return [str(b["key"]) for b in buckets]
