"""Where shipped records go: the cluster's ``_bulk`` (through the engine seam) or an NDJSON file.

A *record* is always two lines, ``meta\\n`` + ``document\\n``, so the spool frames every
transport's records the same way. For ``_bulk`` the meta line is the ``create`` action with the
event's stable id; the NDJSON sink writes only the document line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from logsight import names
from logsight.ecs import (
    DEPTH_MARKER,
    EventIds,
    dumps,
    dumps_line,
    format_timestamp,
    nest_line,
    nest_source,
)
from logsight.shipper.guard import quiet_client_loggers
from logsight.shipper.limits import MAX_DEPTH, deadletter_original, too_deep, value_depth
from logsight.shipper.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from logsight.engine import Engine


class Unavailable(Exception):
    """The destination cannot take records now (down, 429/5xx, connection error): retry."""


class TooLarge(Exception):
    """The request was too large (413): split the batch."""


@dataclass
class ItemFailure:
    record: bytes
    status: int
    error_type: str
    reason: str


_CUT = DEPTH_MARKER.split("{", 1)[0].encode()  # what the encoder leaves where it cut nesting
DEADLETTER_PREFIX = b'{"create":{"_index":' + json.dumps(names.DEADLETTER_INDEX).encode()
_log = logging.getLogger("logsight.shipper")


def is_deadletter(record: bytes) -> bool:
    """Whether ``record`` is a dead letter (bound for the dead-letter index)."""
    return record.startswith(DEADLETTER_PREFIX)


@dataclass
class SendResult:
    ok: int = 0  # stored (events; dead letters are counted apart)
    dead_lettered: int = 0  # dead-letter records stored
    duplicates: int = 0  # 409 on create: delivered before (a replay)
    retry: list[bytes] = field(default_factory=list)  # per-item 429/5xx
    failed: list[ItemFailure] = field(default_factory=list)  # cannot succeed (mapping, ...)


class Transport(Protocol):
    def encode(self, kind: str, doc: Mapping[str, Any]) -> bytes: ...

    def send(self, records: Sequence[bytes]) -> SendResult: ...

    def deadletter(self, failure: ItemFailure, clock: Callable[[], float]) -> bytes | None: ...

    def close(self) -> None: ...


def _index_of(record: bytes) -> tuple[str, str | None]:
    action = json.loads(record[: record.index(b"\n")])
    (meta,) = action.values()
    return str(meta.get("_index", "")), meta.get("_id")


class BulkTransport:
    """``_bulk`` with ``create`` actions into ``names.stream(kind, namespace)``.

    Connects lazily (the first send), so a shipper comes up while the cluster is down."""

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = names.DEFAULT_NAMESPACE,
        engine: Engine | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        max_depth: int = MAX_DEPTH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.max_depth = max_depth
        self._clock = clock
        self.connections = 10  # raised to the shipper's sender count (reserve_connections)
        self._too_deep_log = RateLimitedLog(_log, interval=10.0)
        quiet_client_loggers()
        self.namespace = names.check_namespace(namespace)
        self._engine = engine
        self._own_engine = engine is None
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        # the action line is constant per stream but for the id: encoded once per stream
        self._prefix = {
            kind: b'{"create":{"_index":' + json.dumps(names.stream(kind, namespace)).encode()
            + b',"_id":'
            for kind in names.STREAM_TYPES
        }
        self._ids = EventIds()
        self._settings: Any = None  # a forked child reconnects with the parent's settings
        self._connect_lock = threading.Lock()  # several senders may connect at once

    def encode(self, kind: str, doc: Mapping[str, Any]) -> bytes:
        """One ``_bulk`` record. The id is the document's ``event.id``; a document without one
        gets one here, once: the record (id included) is what is spooled and re-sent."""
        eid = doc.get("event.id")
        if type(eid) is not str or not eid:
            try:
                eid = str(eid) if eid is not None and eid != "" else None
            except Exception:  # an id whose __str__ raises: a fresh one rather than a drop
                eid = None
            if eid is None:
                eid = self._ids()
                doc = {**doc, "event.id": eid}  # a copy: the caller's dict is not modified
        nested = nest_source(doc)
        source = dumps(nested)
        reason = too_deep(source, self.max_depth)
        if reason is None and _CUT in source and value_depth(nested, self.max_depth) > \
                self.max_depth:
            # too deep even for the JSON encoder, which cut it (the marker): the cut text is
            # what can be kept of the original
            reason = (f"document nested deeper than {self.max_depth} levels (objects and "
                      "arrays count)")
        if reason is not None:
            # never sent as a document (the engine's parser would overflow its stack and
            # hold the whole batch); a dead letter with the original bytes instead
            self._too_deep_log.warning(
                "logsight shipper: %d event(s) dead-lettered since the last warning: %s",
                reason)
            return self._deadletter_for(names.stream(kind, self.namespace), eid, source,
                                        "too_deep", reason, 400, stage="encode")
        return b"".join((self._prefix[kind], dumps(eid), b"}}\n", source, b"\n"))

    def reserve_connections(self, n: int) -> None:
        """Keep at least ``n`` connections (one per sender) in the client's pool."""
        self.connections = max(self.connections, n)

    def _deadletter_for(self, stream: str, eid: Any, source: bytes, tag: str, reason: str,
                        status: int, *, stage: str) -> bytes:
        doc: dict[str, Any] = {
            "@timestamp": format_timestamp(self._clock()),
            "event": {"id": eid},
            "failure": {"stage": stage, "stream": stream, "tag": tag, "message": reason,
                        "status": status},
            **deadletter_original(source),
        }
        action = {"create": {"_index": names.DEADLETTER_INDEX, "_id": eid}}
        return dumps(action) + b"\n" + dumps(doc) + b"\n"

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections (their sockets are shared with
        the parent) and connect anew, with the same settings, on the next send."""
        if self._engine is not None:
            self._settings = self._engine.settings
            # not closed: closing would only close the child's copies, and the caller may
            # still hold a passed-in engine
            self._engine = None
            self._own_engine = True
        self._connect_lock = threading.Lock()  # the parent's may have been held at the fork

    def _connect(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        from logsight.engine import EngineError, connect

        with self._connect_lock:
            if self._engine is not None:  # another sender connected while this one waited
                return self._engine
            try:
                if self._settings is not None:
                    engine = connect(settings=self._settings, timeout=self.connect_timeout)
                else:
                    engine = connect(self.url, timeout=self.connect_timeout,
                                     request_timeout=self.request_timeout,
                                     connections=self.connections)
            except EngineError as e:  # EngineUnavailable included: not up yet
                raise Unavailable(str(e)) from e
            self._engine = engine
            return engine

    def send(self, records: Sequence[bytes]) -> SendResult:
        from logsight.engine import EngineError, EngineUnavailable

        engine = self._connect()
        try:
            bulk = engine.bulk_ndjson(b"".join(records))
        except EngineUnavailable as e:
            raise Unavailable(str(e)) from e
        except EngineError as e:
            if e.status == 413:
                raise TooLarge(str(e)) from e
            if e.status == 400:  # the whole body was refused: nothing in it can succeed
                return SendResult(failed=[ItemFailure(r, 400, "bulk_rejected", e.message)
                                          for r in records])
            raise Unavailable(str(e)) from e  # auth or cluster errors: retry with backoff
        except Exception as e:  # a client bug or a dropped connection must not kill the worker
            raise Unavailable(f"{type(e).__name__}: {e}") from e
        result = SendResult(ok=bulk.ok, duplicates=bulk.duplicates)
        if any(is_deadletter(r) for r in records):
            result.dead_lettered = sum(1 for p in bulk.ok_positions if is_deadletter(records[p]))
            result.ok -= result.dead_lettered
        for err in bulk.errors:
            record = records[err.position]
            if err.retryable:
                result.retry.append(record)
            else:
                result.failed.append(ItemFailure(record, err.status, err.error_type, err.reason))
        return result

    def deadletter(self, failure: ItemFailure, clock: Callable[[], float]) -> bytes | None:
        """The dead-letter record for a failed item (None for a failed dead-letter record)."""
        index, eid = _index_of(failure.record)
        if index == names.DEADLETTER_INDEX:
            return None
        source = failure.record[failure.record.index(b"\n") + 1:].rstrip(b"\n")
        text = source.decode("utf-8", "replace")
        doc: dict[str, Any] = {
            "@timestamp": format_timestamp(clock()),
            "event": {"id": eid},
            "failure": {"stage": "bulk", "stream": index, "tag": failure.error_type,
                        "message": failure.reason, "status": failure.status},
            "original_text": text,
        }
        try:
            original = json.loads(text)
            if isinstance(original, dict):
                doc["original"] = original
        except ValueError:
            pass
        action = {"create": {"_index": names.DEADLETTER_INDEX, "_id": eid}}
        return dumps(action) + b"\n" + dumps(doc) + b"\n"

    def close(self) -> None:
        with self._connect_lock:
            if self._engine is not None and self._own_engine:
                self._engine.close()
                self._engine = None


class FileTransport:
    """NDJSON lines in the ECS logging layout, for shipping with Filebeat or Elastic Agent.

    Each line carries ``data_stream.type`` / ``dataset`` / ``namespace`` so an agent can route
    it to the same data stream the ``_bulk`` path would."""

    def __init__(
        self,
        target: str | Path | IO[str] | IO[bytes] | None = None,
        *,
        namespace: str = names.DEFAULT_NAMESPACE,
    ) -> None:
        self.namespace = names.check_namespace(namespace)
        self._data_stream: dict[str, tuple[bytes, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._owned: IO[bytes] | None = None
        self._target: Any
        if target is None or target == "-" or target == "stdout":
            self._target = sys.stdout
        elif target == "stderr":
            self._target = sys.stderr
        elif isinstance(target, (str, Path)):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._owned = open(path, "ab")  # noqa: SIM115  # closed in close()
            self._target = self._owned
        else:
            self._target = target

    def encode(self, kind: str, doc: Mapping[str, Any]) -> bytes:
        ds = self._data_stream.get(kind)
        if ds is None:
            ds = self._data_stream[kind] = (
                b'{"kind":' + json.dumps(kind).encode() + b"}\n",
                {"type": kind, "dataset": names.DATASET, "namespace": self.namespace},
            )
        meta, data_stream = ds
        line = nest_line(doc)  # a fresh dict: adding to it is safe
        if "data_stream" not in line:
            line["data_stream"] = data_stream
            return b"".join((meta, dumps(line), b"\n"))
        flat = dict(doc)  # the document has data_stream fields of its own: ours win
        flat["data_stream.type"] = kind
        flat["data_stream.dataset"] = names.DATASET
        flat["data_stream.namespace"] = self.namespace
        return b"".join((meta, dumps_line(flat), b"\n"))

    def send(self, records: Sequence[bytes]) -> SendResult:
        lines = b"".join(r[r.index(b"\n") + 1:] for r in records)
        # several senders: one batch's lines stay together, written in the order sent
        with self._lock:
            return self._write(lines, len(records))

    def _write(self, lines: bytes, n: int) -> SendResult:
        try:
            t = self._target
            if hasattr(t, "buffer"):  # a text stream such as sys.stdout
                t.flush()
                t = t.buffer
            try:
                t.write(lines)
            except TypeError:  # a text stream without a binary buffer (StringIO)
                t.write(lines.decode("utf-8", "replace"))
            t.flush()
        except OSError as e:
            raise Unavailable(str(e)) from e
        return SendResult(ok=n)

    def deadletter(self, failure: ItemFailure, clock: Callable[[], float]) -> bytes | None:
        return None

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # the parent's may have been held at the fork

    def close(self) -> None:
        with self._lock:
            if self._owned is not None:
                self._owned.close()
                self._owned = None
