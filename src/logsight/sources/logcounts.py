"""Log counts from the cluster: per (service, window, template key, level, version) line
counts from composite aggregations paged by ``after_key``, one representative message per
template key (``top_hits``), and bounded reads of examples and sample ids for the windows a
run flags. Nothing here pages out every line: the cost grows with services x keys x windows.

The template key is ``logsight.template_id``, which the logs pipeline sets on every document
(a keyword, so it has doc values). :meth:`ClusterLogCounts.key_problem` says when a range
cannot be counted by it (an index mapped before the key existed, documents without it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from logsight import names
from logsight.analysis.logs.counts import (
    COUNT_COLUMNS,
    FlaggedWindow,
    LogCounts,
    WindowSamples,
    empty_count_frame,
    prepare_counts,
)
from logsight.names import F
from logsight.sources.logs import _get, logs_query
from logsight.timeutil import parse_window

if TYPE_CHECKING:
    from logsight.engine import Engine

KEY = F.TEMPLATE_ID
_MISSING = "\x00none"  # a bucket without the field (composite ``missing_bucket``)
_IGNORE = {"ignore_unavailable": "true", "allow_no_indices": "true"}


def _message(doc: Mapping[str, Any]) -> str:
    message = _get(doc, F.MESSAGE)
    if message is None:
        message = _get(doc, F.ERROR_MESSAGE) or ""
    return str(message)


class ClusterLogCounts:
    """Counts of the logs streams of ``namespace`` (None: every namespace), or ``index``."""

    def __init__(self, engine: Engine, namespace: str | None = None, *,
                 index: str | None = None, page_size: int = 5000) -> None:
        self.engine = engine
        self.namespace = namespace
        self.index = index
        self.page_size = page_size

    @property
    def target(self) -> str:
        return self.index or names.read_target(names.LOGS, self.namespace)

    def _composite(self, query: Mapping[str, Any], sources: list[dict[str, Any]],
                   aggs: Mapping[str, Any] | None = None, *, size: int | None = None,
                   extra: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every bucket of a composite aggregation, page by page (``after_key``); ``extra``
        top-level aggregations ride on the first page and come back as a bucket
        ``{"_extra": ...}`` first."""
        after: dict[str, Any] | None = None
        first = True
        while True:
            comp: dict[str, Any] = {"size": size or self.page_size, "sources": sources}
            if after is not None:
                comp["after"] = after
            body: dict[str, Any] = {"size": 0, "query": dict(query),
                                    "aggs": {"c": {"composite": comp}}}
            if aggs:
                body["aggs"]["c"]["aggs"] = dict(aggs)
            if first and extra:
                body["aggs"].update(extra)
            resp = self.engine.search(self.target, body, **_IGNORE)
            got = resp.get("aggregations") or {}
            if first and extra:
                yield {"_extra": got}
            first = False
            c = got.get("c") or {}
            buckets = c.get("buckets") or []
            yield from buckets
            after = c.get("after_key")
            if not buckets or after is None:
                return

    def key_problem(self, start: datetime | None, end: datetime | None, *,
                    service: str | None = None) -> str | None:
        """Why the range cannot be counted by template key (None: it can)."""
        caps = self.engine.request("GET", f"/{self.target}/_field_caps",
                                   params={"fields": KEY, **_IGNORE})
        field = (caps or {}).get("fields", {}).get(KEY)
        if not field:
            if not (caps or {}).get("indices"):
                return None  # nothing there: the empty read says so
            return f"the logs indices {self.target} do not map {KEY}"
        bad = [t for t, info in field.items() if t != "unmapped" and not info.get("aggregatable")]
        if bad or "unmapped" in field:
            where = field.get("unmapped", {}).get("indices") or field.get(bad[0] if bad else "",
                                                                           {}).get("indices")
            return (f"{KEY} is not an aggregatable keyword in every logs index"
                    + (f" (e.g. {list(where)[:3]})" if where else ""))
        # a line without a message gets no key from the pipeline (it is counted under one
        # key of its own); a line with a message but no key was indexed without the pipeline
        q = logs_query(start=start, end=end, service=service)
        q["bool"]["filter"].append({"exists": {"field": F.MESSAGE}})
        q["bool"]["must_not"] = [{"exists": {"field": KEY}}]
        missing = self.engine.count(self.target, q)
        if missing:
            return f"{missing} log line(s) in the range have a message but no {KEY}"
        return None

    def counts(self, start: datetime | None, end: datetime | None, *,
               service: str | None = None, window: str = "1min") -> LogCounts:
        """The count frame of [start, end), its keys' earliest messages and line times."""
        ms = int(parse_window(window).total_seconds() * 1000)
        query = logs_query(start=start, end=end, service=service)
        sources: list[dict[str, Any]] = [
            {"service": {"terms": {"field": F.SERVICE, "missing_bucket": True}}},
            {"window": {"date_histogram": {"field": F.TIMESTAMP, "fixed_interval": f"{ms}ms"}}},
            {"key": {"terms": {"field": KEY, "missing_bucket": True}}},
            {"level": {"terms": {"field": F.LEVEL, "missing_bucket": True}}},
            {"version": {"terms": {"field": F.SERVICE_VERSION, "missing_bucket": True}}},
        ]
        extra = {"first": {"min": {"field": F.TIMESTAMP}},
                 "last": {"max": {"field": F.TIMESTAMP}}}
        cols: dict[str, list[Any]] = {c: [] for c in COUNT_COLUMNS}
        first_ms: list[Any] = []
        first = last = None
        # the earliest line of each bucket: when each (service, version) started
        sub = {"first": {"min": {"field": F.TIMESTAMP}}}
        for b in self._composite(query, sources, sub, extra=extra):
            if "_extra" in b:
                lo = b["_extra"].get("first", {}).get("value")
                hi = b["_extra"].get("last", {}).get("value")
                first = pd.Timestamp(lo, unit="ms", tz="UTC") if lo is not None else None
                last = pd.Timestamp(hi, unit="ms", tz="UTC") if hi is not None else None
                continue
            k = b["key"]
            cols["service"].append(k["service"])
            cols["window"].append(k["window"])
            cols["key"].append(k["key"] if k["key"] is not None else _MISSING)
            cols["raw_level"].append(k["level"])
            cols["version"].append(k["version"])
            cols["count"].append(b["doc_count"])
            first_ms.append(b["first"].get("value"))
        if not cols["count"]:
            return LogCounts(prepare_counts(empty_count_frame()), {}, None, None)
        raw = pd.DataFrame(cols).assign(_first=first_ms)
        versions = raw[raw["version"].notna() & (raw["version"] != "") & raw["service"].notna()]
        version_first = {
            (str(s), str(v)): pd.Timestamp(t, unit="ms", tz="UTC")
            for (s, v), t in versions.groupby(["service", "version"])["_first"].min().items()}
        frame = raw.drop(columns="_first")
        frame["window"] = pd.to_datetime(frame["window"], unit="ms", utc=True)
        frame = prepare_counts(frame)
        return LogCounts(frame, self._messages(query, frame, ms), first, last, version_first)

    def _messages(self, query: Mapping[str, Any], frame: pd.DataFrame,
                  window_ms: int) -> dict[str, str]:
        """The earliest line's message of every key: asked of each key's first window only
        (one request per distinct first window, most keys share the first), so the engine
        reads a few windows' lines, not the range's."""
        firsts = frame.groupby("key")["window"].min()
        out: dict[str, str] = {}
        for wstart, keys in firsts.groupby(firsts).groups.items():
            ws = pd.Timestamp(wstart)
            wanted = [str(k) for k in keys]
            real = [k for k in wanted if k != _MISSING]
            window_q = logs_query(start=ws.to_pydatetime(),
                                  end=(ws + pd.Timedelta(milliseconds=window_ms)).to_pydatetime())
            q = _with(query, filter=window_q["bool"]["filter"])
            if _MISSING in wanted:  # lines without a key: their own bucket
                q = _with(q, filter=[{"bool": {"should": [
                    {"terms": {KEY: real}},
                    {"bool": {"must_not": [{"exists": {"field": KEY}}]}}]}}])
            else:
                q = _with(q, filter=[{"terms": {KEY: real}}])
            sub = {"m": {"top_hits": {"size": 1, "sort": [{F.TIMESTAMP: "asc"}],
                                      "_source": [F.MESSAGE, F.ERROR_MESSAGE]}}}
            sources = [{"key": {"terms": {"field": KEY, "missing_bucket": True}}}]
            for b in self._composite(q, sources, sub, size=1000):
                hits = b["m"]["hits"]["hits"]
                key = b["key"]["key"] if b["key"]["key"] is not None else _MISSING
                out[str(key)] = _message(hits[0].get("_source", {})) if hits else ""
        return out

    def samples(self, flagged: Sequence[FlaggedWindow], *,
                max_samples: int = 10) -> dict[tuple[str, pd.Timestamp], WindowSamples]:
        """Examples and sample ids of each flagged window: a few bounded searches each."""
        return {(fw.service, fw.start): self._window_samples(fw, max_samples) for fw in flagged}

    def _window_samples(self, fw: FlaggedWindow, max_samples: int) -> WindowSamples:
        base = logs_query(start=fw.start.to_pydatetime(), end=fw.end.to_pydatetime(),
                          service=fw.service)
        new = [k for k in fw.new_keys if k != _MISSING]
        examples: dict[str, tuple[str, str]] = {}
        if new:
            q = _with(base, filter=[{"terms": {KEY: new}}])
            body = {"size": 0, "query": q, "aggs": {"k": {
                "terms": {"field": KEY, "size": len(new)},
                "aggs": {"m": {"top_hits": {"size": 1, "sort": [{F.TIMESTAMP: "asc"}],
                                            "_source": [F.MESSAGE, F.ERROR_MESSAGE]}}}}}}
            resp = self.engine.search(self.target, body, **_IGNORE)
            for b in (resp.get("aggregations") or {}).get("k", {}).get("buckets", []):
                hits = b["m"]["hits"]["hits"]
                if hits:
                    examples[str(b["key"])] = (str(hits[0]["_id"]),
                                               _message(hits[0].get("_source", {})))
        errors = [{"terms": {F.LEVEL: list(fw.error_levels)}}] if fw.error_levels else []
        not_new = [{"terms": {KEY: new}}] if new else []
        # lines of never-seen templates first, then error lines, then the rest (as on lines)
        groups = []
        if new:
            groups.append(_with(base, filter=not_new))
        if errors:
            groups.append(_with(base, filter=errors, must_not=not_new))
        groups.append(_with(base, must_not=not_new + errors))
        ids: list[str] = []
        for q in groups:
            if len(ids) >= max_samples:
                break
            body = {"size": max_samples - len(ids), "query": q, "_source": False,
                    "sort": [{F.TIMESTAMP: "asc"}]}
            resp = self.engine.search(self.target, body, **_IGNORE)
            ids.extend(str(h["_id"]) for h in resp.get("hits", {}).get("hits", []))
        return WindowSamples(examples, ids[:max_samples])


def _with(query: Mapping[str, Any], *, filter: list[dict[str, Any]] | None = None,
          must_not: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``query`` (a bool of filters) with more filters / exclusions; never changes it."""
    b = dict(query["bool"])
    b["filter"] = list(b.get("filter", [])) + list(filter or [])
    if must_not:
        b["must_not"] = list(b.get("must_not", [])) + list(must_not)
    return {"bool": b}
