"""The errors a caller of logsight can act on: one root, a few kinds.

Every face (CLI, API, scheduler, demo) maps these kinds to its own answer in one place: the
API to a status code (``service/errors.py``), the CLI to an exit code and a message naming its
option (``cli/common.py``). A bare ``ValueError`` from deep inside an analysis is a bug, not a
client's mistake, and is never turned into a 4xx.

========================  =====================================================  =========
kind                      means                                                  API
========================  =====================================================  =========
:class:`BadRequest`       a parameter is wrong (``parameter`` names it)          400
:class:`NoData`           the request is fine, the data it names is empty        400
:class:`NotFound`         a name (service, model, version, namespace) is unknown 404
:class:`Busy`             every slot is taken; retry later                       503
:class:`EngineUnavailable`the cluster cannot be reached; retry later             503
========================  =====================================================  =========

``BadRequest`` and ``NoData`` are also ``ValueError`` s: code (and tests) written before this
module caught the analyses' ``ValueError`` and keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# ``{window.start}`` in a message names a request parameter; each face renders it in its own
# words (``--from``, ``from``). Only this shape is a placeholder: a dict repr never matches.
_PARAMETER = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)\}")


class LogsightError(Exception):
    """The root of the errors a caller can act on; ``kind`` names which. Its message may name
    request parameters as ``{name}`` placeholders: :meth:`render` puts a face's names in
    (``str()`` shows the jobs' own names)."""

    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.template = message
        self.message = self.render()

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each ``{parameter}`` as ``names`` calls it (else as is)."""
        given = names or {}
        return _PARAMETER.sub(lambda m: given.get(m.group(1), m.group(1)), self.template)

    def __str__(self) -> str:
        return self.message


class BadRequest(LogsightError, ValueError):
    """A request parameter is wrong. ``parameter`` is the request field (``window.start``,
    ``baseline``, ``top``, ``input`` ...) in the jobs' words; each face names it its own way
    (``--from``, ``from``). The message itself names no CLI option or API field."""

    kind = "bad_request"

    def __init__(self, parameter: str | None, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class NoData(LogsightError, ValueError):
    """Nothing to analyse where the request points: ``reason`` says what was searched and, where
    known, what there is instead. ``parameters`` are the request fields that chose the empty
    place (a face may suggest changing them)."""

    kind = "no_data"

    def __init__(self, reason: str, *, parameters: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parameters = tuple(parameters)


class NotFound(LogsightError, LookupError):
    """A name the request gives (service, model, version, namespace) has never sent data."""

    kind = "not_found"

    def __init__(self, what: str, value: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.value = value


class Busy(LogsightError):
    """Every slot that could run this is taken; try again after ``retry_after`` seconds."""

    kind = "busy"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(LogsightError):
    """The search cluster cannot be reached (or answers 429/502/503/504): try again later.
    :class:`logsight.engine.EngineUnavailable` is this kind."""

    kind = "engine_unavailable"


__all__ = ["BadRequest", "Busy", "EngineUnavailable", "LogsightError", "NoData", "NotFound"]
