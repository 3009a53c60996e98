"""Does the ingest pipeline's template key equal the Python masking? Checked on real lines.

(It lives with the assets, not in ``analysis/``: it runs the pipeline on an engine.)

The logs pipeline computes ``logsight.template`` / ``logsight.template_id`` in Painless
(``ingest-pipelines/scripts/logs_template.painless``); :func:`ingest_template` is the Python
side. :func:`simulate_ingest_templates` runs the pipeline as it is in this checkout through the
engine's ``_ingest/pipeline/_simulate`` (nothing is installed or indexed), so a test or a
benchmark can compare both on any sample of lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from logsight import names
from logsight.analysis.templates.masking import ingest_template
from logsight.assets.install import load_pipeline
from logsight.engine import Engine


def simulate_ingest_templates(
    engine: Engine, messages: Sequence[str], *, batch: int = 500
) -> list[tuple[str, str]]:
    """``(logsight.template, logsight.template_id)`` for each message, as the logs pipeline of
    this checkout computes them (``("", "")`` for a line the pipeline set none for)."""
    pipeline = load_pipeline(names.LOGS)
    out: list[tuple[str, str]] = []
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        docs = [
            {"_index": names.stream(names.LOGS),
             "_source": {"@timestamp": "2024-05-01T10:00:00Z", "message": m}}
            for m in chunk
        ]
        resp = engine.request(
            "POST", "/_ingest/pipeline/_simulate", body={"pipeline": pipeline, "docs": docs}
        )
        for doc in resp["docs"]:
            src = doc.get("doc", {}).get("_source", {})
            ls = src.get("logsight") or {}
            out.append((str(ls.get("template", "")), str(ls.get("template_id", ""))))
    return out


@dataclass
class Agreement:
    """How many lines got the same template key at ingest and in Python."""

    lines: int = 0
    same: int = 0
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # line, ingest, python

    @property
    def share(self) -> float:
        return self.same / self.lines if self.lines else 1.0


def agreement(engine: Engine, messages: Sequence[str], *, keep: int = 5) -> Agreement:
    """Compare the pipeline's key with :func:`ingest_template` on every message (the template
    text and its id must both match)."""
    result = Agreement()
    for message, got in zip(messages, simulate_ingest_templates(engine, messages), strict=True):
        want = ingest_template(message) if message else ("", "")
        result.lines += 1
        if got == want:
            result.same += 1
        elif len(result.examples) < keep:
            result.examples.append((message, got[0], want[0]))
    return result
