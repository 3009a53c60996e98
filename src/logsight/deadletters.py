"""The dead-letter index: list what was refused and why, and replay it once the cause is fixed.

Every dead letter in ``logsight-deadletter`` comes from one of three places, all with
``failure.stream`` (where the document was going) and the document itself:

* the ingest pipelines' ``on_failure`` (``failure.pipeline``; ``original`` is the document);
* the shipper (``failure.stage: bulk`` or ``encode``; ``original`` the document, or its bytes
  in ``original.base64`` when it could not be sent as a document);
* ``logsight ingest`` (``failure.stage: ingest``; the line's bytes in ``original.base64``).

Replay re-sends each original with ``create`` into its stream under the dead letter's own
``_id`` (the event's id), so replaying twice, or replaying an event that arrived meanwhile,
stores nothing twice. A replayed dead letter is deleted once its document is stored (or found
already there); one that fails again stays, with the new reason reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.shipper.limits import original_bytes, too_deep

if TYPE_CHECKING:
    from logsight.engine import Engine


@dataclass
class DeadLetter:
    id: str
    timestamp: str | None
    stream: str | None
    stage: str | None
    reason: str
    replayable: bool

    @classmethod
    def from_hit(cls, hit: Mapping[str, Any]) -> DeadLetter:
        src = hit.get("_source") or {}
        failure = src.get("failure") or {}
        stream = failure.get("stream")
        reason = str(failure.get("message") or failure.get("tag") or "unknown")
        return cls(id=str(hit["_id"]), timestamp=src.get("@timestamp"),
                   stream=stream if isinstance(stream, str) else None,
                   stage=failure.get("stage") or ("pipeline" if failure.get("pipeline")
                                                  else None),
                   reason=reason,
                   replayable=bool(stream) and _document_of(src) is not None)


@dataclass
class ReplayReport:
    considered: int = 0
    replayed: int = 0  # stored in their stream now
    already_there: int = 0  # stored before (a replay of a replay): nothing stored twice
    failed_again: int = 0  # still refused; the dead letter stays
    not_replayable: int = 0  # no original kept whole (too large), no stream, or too deep
    reasons: dict[str, int] = field(default_factory=dict)


def _query(stream: str | None, stage: str | None) -> dict[str, Any] | None:
    must: list[dict[str, Any]] = []
    if stream:
        must.append({"term": {"failure.stream": stream}})
    if stage:
        must.append({"term": {"failure.stage": stage}})
    return {"bool": {"filter": must}} if must else None


def list_deadletters(engine: Engine, *, stream: str | None = None, stage: str | None = None,
                     limit: int = 100) -> tuple[int, list[DeadLetter], dict[str, int]]:
    """(total, the newest ``limit`` dead letters, count per reason among the listed)."""
    if not engine.exists(names.DEADLETTER_INDEX):
        return 0, [], {}
    query = _query(stream, stage)
    engine.refresh(names.DEADLETTER_INDEX)
    total = engine.count(names.DEADLETTER_INDEX, query)
    body: dict[str, Any] = {"size": limit, "sort": [{"@timestamp": {"order": "desc",
                                                                   "unmapped_type": "date"}}],
                            "_source": {"excludes": ["original_text"]}}
    if query:
        body["query"] = query
    hits = engine.search(names.DEADLETTER_INDEX, body)["hits"]["hits"]
    letters = [DeadLetter.from_hit(h) for h in hits]
    reasons = Counter(d.reason.splitlines()[0][:160] for d in letters)
    return total, letters, dict(reasons.most_common())


def _document_of(src: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document a dead letter holds, ready to send, or None."""
    original = src.get("original")
    if isinstance(original, Mapping) and isinstance(original.get("document"), Mapping):
        return dict(original["document"])  # logsight ingest: the document it sent
    raw = original_bytes(src)
    if raw is None or too_deep(raw) is not None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        # a raw log line (logsight ingest --kind logs): the logs pipeline parses it
        return {"message": raw.decode("utf-8", "replace")}
    if not isinstance(doc, dict):
        return None
    return doc


def replay_deadletters(engine: Engine, *, stream: str | None = None, stage: str | None = None,
                       batch_size: int = 500, dry_run: bool = False) -> ReplayReport:
    """Re-send the dead letters (matching ``stream`` / ``stage``) to their streams."""
    report = ReplayReport()
    if not engine.exists(names.DEADLETTER_INDEX):
        return report
    engine.refresh(names.DEADLETTER_INDEX)
    hits = list(engine.scan(names.DEADLETTER_INDEX, _query(stream, stage)))
    batch: list[tuple[str, str, dict[str, Any]]] = []
    for h in hits:
        report.considered += 1
        src = h.get("_source") or {}
        target = (src.get("failure") or {}).get("stream")
        doc = _document_of(src)
        if not isinstance(target, str) or not target or target == names.DEADLETTER_INDEX \
                or doc is None:
            report.not_replayable += 1
            continue
        batch.append((str(h["_id"]), target, doc))
        if len(batch) >= batch_size:
            _replay_batch(engine, batch, report, dry_run)
            batch = []
    if batch:
        _replay_batch(engine, batch, report, dry_run)
    engine.refresh(names.DEADLETTER_INDEX)
    return report


def _replay_batch(engine: Engine, batch: list[tuple[str, str, dict[str, Any]]],
                  report: ReplayReport, dry_run: bool) -> None:
    if dry_run:
        report.replayed += len(batch)
        return
    resp = engine.request(
        "POST", "/_bulk", ndjson=True, params={"refresh": "wait_for"},
        body="".join(json.dumps({"create": {"_index": t, "_id": i}}) + "\n"
                     + json.dumps(d, default=str) + "\n" for i, t, d in batch))
    done: list[str] = []
    for (dl_id, target, _), item in zip(batch, resp["items"], strict=True):
        op = item.get("create") or next(iter(item.values()))
        status = int(op.get("status", 500))
        index = str(op.get("_index", ""))
        if index == names.DEADLETTER_INDEX or index.startswith(names.DEADLETTER_INDEX):
            # the pipeline refused it again and re-routed it here (onto its own dead letter)
            report.failed_again += 1
            key = "refused by the pipeline again"
            report.reasons[key] = report.reasons.get(key, 0) + 1
        elif status < 300:
            report.replayed += 1
            done.append(dl_id)
        elif status == 409:
            report.already_there += 1
            done.append(dl_id)
        else:
            report.failed_again += 1
            err = op.get("error") or {}
            key = f"{err.get('type')}: {err.get('reason')}"[:160]
            report.reasons[key] = report.reasons.get(key, 0) + 1
        del target
    if done:
        engine.bulk([({"delete": {"_index": names.DEADLETTER_INDEX, "_id": i}}, None)
                     for i in done])


def ignored_fields(engine: Engine, *, namespace: str | None = None,
                   sample: int = 200) -> dict[str, dict[str, Any]]:
    """Documents stored with fields the engine did not index (``_ignored``, the streams'
    ``ignore_malformed``: a value of another type than the field's mapping). Not dead
    letters - the document is kept, whole in ``_source`` - but the field is not searchable
    in it. Per stream pattern: ``documents`` (how many) and ``fields`` (field -> count among
    the newest ``sample`` of them)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in names.STREAM_TYPES:
        pattern = names.stream(kind, namespace) if namespace else names.stream_pattern(kind)
        query = {"exists": {"field": "_ignored"}}
        n = engine.count(pattern, query)
        if not n:
            continue
        hits = engine.search(pattern, {"size": sample, "query": query, "_source": False,
                                       "sort": [{"@timestamp": {"order": "desc",
                                                                "unmapped_type": "date"}}]},
                             ignore_unavailable="true")["hits"]["hits"]
        fields = Counter(f for h in hits for f in h.get("_ignored", []))
        out[pattern] = {"documents": n, "fields": dict(fields.most_common())}
    return out
