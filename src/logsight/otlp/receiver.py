"""The OTLP/HTTP receiver's core (no web framework): one export request in, one answer out.

Nothing acknowledged is lost. An export is answered 200 only once every record in it is
durable: indexed by the cluster (a ``_bulk`` ``create`` is in the translog when it is
acknowledged), answered 409 (stored before: an SDK retry), dead-lettered with the reason, or
appended to the disk spool of the receiver's own :class:`logsight.shipper.Shipper` while the
cluster is down (its senders replay the spool when the cluster is back, as for any
application's events). Anything short of that is a 429/503 with ``Retry-After``, and the SDK
sends the export again; the stable ``event.id`` of every document (see
:mod:`logsight.otlp.decode`) makes that retry store nothing twice.

Backpressure: at most ``max_concurrent`` exports are stored at once (more: 429); a spool
fuller than ``high_water`` of its size, or full, answers 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logsight import names
from logsight.ecs import dumps, format_timestamp
from logsight.otlp import decode as otlp
from logsight.shipper.core import Shipper
from logsight.shipper.transport import BulkTransport, ItemFailure, TooLarge, Unavailable

if TYPE_CHECKING:
    from logsight.engine import Engine

SIGNAL_PATHS = {f"/v1/{s}": s for s in otlp.SIGNALS}


@dataclass(frozen=True)
class ReceiverSettings:
    namespace: str = names.DEFAULT_NAMESPACE
    max_body_bytes: int = 16 * 1024 * 1024  # compressed and inflated, each
    max_concurrent: int = 8
    retry_after: float = 2.0  # seconds, the Retry-After of 429/503
    spool_dir: Path | None = None  # default: the shipper's spool dir "otlp-receiver"
    spool_max_bytes: int = 1024 * 1024 * 1024
    high_water: float = 0.9
    # after a failed send, exports go straight to the spool for this long (no request waits
    # for a connect timeout); the shipper's senders probe the cluster meanwhile
    down_for: float = 1.0
    request_timeout: float = 10.0


@dataclass
class ReceiverCounters:
    requests: int = 0
    records: int = 0
    indexed: int = 0
    duplicates: int = 0
    spooled: int = 0
    dead_lettered: int = 0
    bad_requests: int = 0
    throttled: int = 0  # 429 and 503 answers

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class Backpressure(Exception):
    """The records cannot be made durable now: 503, retry later."""


@dataclass
class Stored:
    indexed: int = 0
    duplicates: int = 0
    spooled: int = 0
    dead_lettered: int = 0


class OtlpReceiver:
    """Decodes exports and stores them durably in ``settings.namespace``'s streams."""

    def __init__(
        self,
        url: str | None = None,
        settings: ReceiverSettings | None = None,
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = cfg = settings or ReceiverSettings()
        self._clock = clock
        self._mono = monotonic
        self.transport = BulkTransport(url, namespace=cfg.namespace, engine=engine,
                                       connect_timeout=min(5.0, cfg.request_timeout),
                                       request_timeout=cfg.request_timeout)
        self.shipper = Shipper(self.transport, spool_dir=cfg.spool_dir, name="otlp-receiver",
                               spool_max_bytes=cfg.spool_max_bytes, stats_interval=None,
                               clock=clock, monotonic=monotonic, senders=1)
        self._slots = threading.BoundedSemaphore(cfg.max_concurrent)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self.counters = ReceiverCounters()

    # -- the request --------------------------------------------------------------------------
    def handle(self, signal: str, body: bytes, *, content_type: str | None,
               content_encoding: str | None = None) -> Answer:
        """The answer to ``POST /v1/<signal>``."""
        ctype = otlp.JSON if (content_type or "").split(";")[0].strip().lower() == otlp.JSON \
            else otlp.PROTOBUF
        self._count(requests=1)
        if signal not in otlp.SIGNALS:
            return self.error_answer(404, f"no OTLP signal {signal!r} (traces, logs, metrics)", ctype)
        try:
            raw = otlp.decompress(body, content_encoding, max_bytes=self.settings.max_body_bytes)
            msg = otlp.parse(signal, raw, content_type)
            decoded = otlp.decode(signal, msg, now_ns=lambda: int(self._clock() * 1e9))
        except otlp.TooLarge as e:
            self._count(bad_requests=1)
            return self.error_answer(413, str(e), ctype)
        except otlp.BadPayload as e:
            self._count(bad_requests=1)
            return self.error_answer(415 if isinstance(e, otlp.UnsupportedMedia) else 400, str(e),
                               ctype)
        records = [self.transport.encode(decoded.kind, d) for d in decoded.documents]
        stream = names.stream(decoded.kind, self.settings.namespace)
        records += [self._rejected_record(r, stream) for r in decoded.rejected]
        if not self._slots.acquire(blocking=False):
            self._count(throttled=1)
            return self.error_answer(429, "too many exports at once; retry later", ctype,
                               retry=True)
        try:
            stored = self.store(records)
        except Backpressure as e:
            self._count(throttled=1)
            return self.error_answer(503, str(e), ctype, retry=True)
        finally:
            self._slots.release()
        self._count(records=len(records), indexed=stored.indexed,
                    duplicates=stored.duplicates, spooled=stored.spooled,
                    dead_lettered=stored.dead_lettered)
        rejected = len(decoded.rejected)
        message = ""
        if rejected:
            message = (f"{rejected} record(s) dead-lettered to {names.DEADLETTER_INDEX}; first: "
                       f"{decoded.rejected[0].reason}")
        resp = otlp.response(signal, rejected, message)
        return Answer(200, otlp.encode_response(resp, ctype), ctype)

    def error_answer(self, status: int, message: str, ctype: str, *,
                     retry: bool = False) -> Answer:
        """An error answer: OTLP's ``google.rpc.Status`` in the request's encoding."""
        from google.rpc import status_pb2

        st = status_pb2.Status(code=_GRPC_CODE.get(status, 2), message=message)
        headers = {"Retry-After": f"{max(1, round(self.settings.retry_after))}"} if retry else {}
        return Answer(status, otlp.encode_response(st, ctype), ctype, headers)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self.counters, k, getattr(self.counters, k) + v)

    def _rejected_record(self, rejected: otlp.Rejected, stream: str) -> bytes:
        eid = otlp.digest(stream.encode(), dumps(rejected.original))
        doc = {
            "@timestamp": format_timestamp(self._clock()),
            "event": {"id": eid},
            "failure": {"stage": "otlp", "stream": stream, "message": rejected.reason},
            "original": rejected.original,
            "original_text": dumps(rejected.original).decode(),
        }
        action = {"create": {"_index": names.DEADLETTER_INDEX, "_id": eid}}
        return dumps(action) + b"\n" + dumps(doc) + b"\n"

    # -- durability -----------------------------------------------------------------------------
    def store(self, records: Sequence[bytes]) -> Stored:
        """Make every record durable (indexed, already there, dead-lettered or spooled), or
        raise :class:`Backpressure`."""
        out = Stored()
        if not records:
            return out
        if self._mono() < self._down_until:
            self._spool(records, out)
            return out
        try:
            retry, failed = self._send(list(records), out)
        except Unavailable:
            with self._lock:
                self._down_until = self._mono() + self.settings.down_for
            self._spool(records, out)  # what was indexed already is answered 409 on replay
            return out
        dead: list[bytes] = []
        for f in failed:
            rec = self.transport.deadletter(f, self._clock)
            if rec is not None:
                dead.append(rec)
        if dead:
            try:
                more_retry, more_failed = self._send(dead, Stored())
            except Unavailable:
                more_retry, more_failed = dead, []
            if more_failed:  # a refused dead letter: nothing else can keep it
                raise Backpressure(f"{len(more_failed)} record(s) could not be dead-lettered: "
                                   f"{more_failed[0].reason}")
            out.dead_lettered += len(dead) - len(more_retry)
            retry += more_retry
        if retry:  # per-item 429/5xx: the cluster pushes back; the spool keeps them
            self._spool(retry, out)
        return out

    def _send(self, records: list[bytes], out: Stored) -> tuple[list[bytes], list[ItemFailure]]:
        chunks = [records]
        retry: list[bytes] = []
        failed: list[ItemFailure] = []
        while chunks:
            chunk = chunks.pop(0)
            try:
                result = self.transport.send(chunk)
            except TooLarge:
                if len(chunk) == 1:
                    failed.append(ItemFailure(chunk[0], 413, "too_large", "record too large"))
                else:
                    half = len(chunk) // 2
                    chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            out.indexed += result.ok
            out.duplicates += result.duplicates
            retry += result.retry
            failed += result.failed
        return retry, failed

    def _spool(self, records: Sequence[bytes], out: Stored) -> None:
        spool = self.shipper.spool
        if spool is None:
            raise Backpressure("the cluster is unavailable and the receiver has no disk spool")
        if spool.pending_bytes > self.settings.high_water * self.settings.spool_max_bytes:
            raise Backpressure("the cluster is unavailable and the disk spool is nearly full")
        try:
            taken = self.shipper.persist(records)
        except OSError as e:
            raise Backpressure(f"the cluster is unavailable and the spool write failed: {e}") \
                from e
        out.spooled += taken
        if taken < len(records):
            # the part taken is durable; the retry of the whole export is answered 409 for it
            raise Backpressure("the cluster is unavailable and the disk spool is full")

    # -- lifecycle ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        c = self.shipper.counters
        return {"receiver": self.counters.as_dict(), "spool_records": c.spool_records,
                "spool_bytes": c.spool_bytes, "replayed": c.sent + c.duplicates}

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the spool is replayed (True) or ``timeout`` passes."""
        return self.shipper.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        return self.shipper.close(timeout)


# HTTP status -> the google.rpc.Code OTLP puts in an error body
_GRPC_CODE = {400: 3, 415: 3, 401: 16, 404: 12, 413: 3, 429: 8, 503: 14}
