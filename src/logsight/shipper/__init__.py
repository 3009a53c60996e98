"""The shipper: the only part of logsight that does I/O on an application's behalf.

:class:`Shipper` takes ECS documents from the adapters (``submit(kind, doc)``: enqueue only),
batches them on a background thread, sends them with ``_bulk`` (:class:`BulkTransport`, through
the engine seam) or writes NDJSON (:class:`FileTransport`), spills to a disk :class:`Spool`
while the destination is down and replays it in order when it is back. Its threads run
:func:`internal`: nothing logged on them is ever shipped (see :mod:`logsight.shipper.guard`).
"""

from logsight.shipper.core import Counters, Shipper, default_spool_dir
from logsight.shipper.guard import internal, internal_thread, is_internal
from logsight.shipper.spool import Spool, SpoolLocked
from logsight.shipper.transport import (
    BulkTransport,
    FileTransport,
    ItemFailure,
    SendResult,
    TooLarge,
    Transport,
    Unavailable,
)

__all__ = [
    "BulkTransport",
    "Counters",
    "FileTransport",
    "ItemFailure",
    "SendResult",
    "Shipper",
    "Spool",
    "SpoolLocked",
    "TooLarge",
    "Transport",
    "Unavailable",
    "default_spool_dir",
    "internal",
    "internal_thread",
    "is_internal",
]
