"""NDJSON sink for users who ship with Filebeat or Elastic Agent: the same documents, written
as ECS logging lines to a file or stdout by the shipper's thread (see
:class:`logsight.shipper.FileTransport`)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from logsight import names
from logsight.shipper import FileTransport


def ndjson_sink(
    target: str | Path | IO[str] | IO[bytes] | None = None,
    *,
    namespace: str = names.DEFAULT_NAMESPACE,
) -> FileTransport:
    """A transport writing ECS NDJSON lines to ``target``: a path, ``"stdout"`` / ``"-"``
    (the default), ``"stderr"``, or an open stream. Pass it as ``configure(sink=...)``."""
    return FileTransport(target, namespace=namespace)
