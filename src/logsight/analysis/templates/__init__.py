"""Log template mining: the masking shared with the ingest pipeline, the online miner, and
the accuracy measures used to check both (see the submodules' docstrings)."""

from logsight.analysis.templates.masking import (
    INGEST_MAX_CHARS,
    WILDCARD,
    Masker,
    fnv1a64,
    ingest_template,
    mask,
    mask_many,
    mask_token,
    mask_tokens,
    template_id,
)
from logsight.analysis.templates.miner import (
    FORMAT_VERSION,
    LogCluster,
    MatchResult,
    TemplateMiner,
)

__all__ = [
    "FORMAT_VERSION",
    "INGEST_MAX_CHARS",
    "WILDCARD",
    "LogCluster",
    "Masker",
    "MatchResult",
    "TemplateMiner",
    "fnv1a64",
    "ingest_template",
    "mask",
    "mask_many",
    "mask_token",
    "mask_tokens",
    "template_id",
]
