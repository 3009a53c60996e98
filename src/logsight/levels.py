"""THE log level vocabulary: every spelling logsight reads, what it stores, what it analyses.

* :data:`ALIASES` maps every level word (lower case) to the spelling the logs pipeline stores
  in ``log.level`` (:data:`STORED_LEVELS`); the pipeline's ``levels`` parameter is generated
  from it (:func:`pipeline_params`; a test holds ``ingest-pipelines/logsight-logs.json`` to it).
* :func:`normalize_level` maps any level to one of the five the log analysis counts
  (:data:`LEVELS`): ``trace`` is counted as ``debug``, ``critical`` as ``fatal``.
* :data:`RAW_LINE_WORDS` are the upper-case words that mark a level in a plain-text line.
"""

from __future__ import annotations

from typing import Any

STORED_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")
LEVELS = ("debug", "info", "warn", "error", "fatal")

ALIASES: dict[str, str] = {
    "trace": "trace",
    "debug": "debug",
    "fine": "debug",
    "finer": "debug",
    "finest": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "severe": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "emerg": "critical",
    "emergency": "critical",
    "alert": "critical",
    "panic": "critical",
}

# stored spelling -> the analysis's level, where they differ
_ANALYSED = {"trace": "debug", "critical": "fatal"}

RAW_LINE_WORDS: dict[str, str] = {
    **{w.upper(): ALIASES[w] for w in (
        "trace", "debug", "info", "notice", "warn", "warning", "error", "err", "severe",
        "fatal", "critical", "crit", "alert", "emerg", "panic")},
    "FAILURE": "error",  # a plain-text line's "FAILURE" reads as an error
}


def stored_level(level: Any) -> str | None:
    """The spelling the pipeline stores for ``level``; None when it is no known level."""
    if not isinstance(level, str):
        return None
    return ALIASES.get(level.strip().lower())


def normalize_level(level: Any) -> str:
    """The analysis's level of ``level`` (``warning`` -> ``warn``, ``critical`` -> ``fatal``,
    ``trace`` -> ``debug``); ``info`` when unknown or missing."""
    stored = stored_level(level) if level else None
    if stored is None:
        return "info"
    return _ANALYSED.get(stored, stored)


def pipeline_params() -> dict[str, str]:
    """The ``levels`` parameter of the logs pipeline's normalize script."""
    return dict(ALIASES)
