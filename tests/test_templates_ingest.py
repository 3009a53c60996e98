"""The ingest pipeline's template key (Painless) equals the Python masking: on a sample of
lines from every shared Loghub system and on generated text, against the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsight.analysis.templates import ingest_template
from logsight.analysis.templates.accuracy import load_loghub
from logsight.assets.template_agreement import agreement, simulate_ingest_templates
from logsight.engine import Engine

SAMPLE = 400  # lines per system: every template family shows up, the test stays quick


def test_ingest_key_equals_python_masking_on_every_shared_system(
    engine: Engine, datasets: Path
) -> None:
    logs = load_loghub(datasets / "loghub-2k")
    if not logs:
        pytest.skip("no Loghub-2k structured files")
    for log in logs:
        # an even spread over the file, plus the longest lines (the hardest to keep in step)
        step = max(1, len(log.messages) // SAMPLE)
        sample = log.messages[::step] + sorted(log.messages, key=len)[-20:]
        result = agreement(engine, sample)
        assert result.lines == len(sample)
        assert result.share == 1.0, (log.system, result.examples)


# characters every masking rule reacts to, a few words, digits, non-ASCII and odd whitespace
_ALPHABET = st.sampled_from(
    list("aZfx09 ./:-_=,;()[]{}<>|\"'#@?!&+~$%*\\\t") + ["\x1c", "\xa0", "é", "日", "HTTP",
    "true", "null", "//", "://", "..", "::", "0x1f", "<*>", "v2", "core.", "FF:", "ssh2",
    "eth0_", "a1b", " Jul ", " Mon, ", "May", " SEPT. ", "C:\\", "d:\\x"]
)
_TEXT = st.lists(_ALPHABET, min_size=1, max_size=40).map("".join)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_TEXT, min_size=20, max_size=40))
def test_ingest_key_equals_python_masking_on_generated_text(
    engine: Engine, messages: list[str]
) -> None:
    # a line starting with "{" is parsed as JSON by the pipeline: not a masking question
    messages = [m for m in messages if m.strip() and not m.startswith("{")]
    got = simulate_ingest_templates(engine, messages)
    assert got == [ingest_template(m) for m in messages]


def test_a_sender_template_id_is_kept(engine: Engine) -> None:
    from logsight import names

    resp = engine.request("POST", f"/_ingest/pipeline/{names.pipeline(names.LOGS)}/_simulate",
                          body={"docs": [{"_index": names.stream(names.LOGS), "_source": {
                              "@timestamp": "2024-05-01T10:00:00Z", "message": "user 7 in",
                              "logsight": {"template_id": "T1"}}}]})
    out = resp["docs"][0]["doc"]["_source"]["logsight"]
    assert out["template_id"] == "T1"
    assert "template" not in out


def test_the_pipeline_and_python_know_the_same_calendar_words() -> None:
    from logsight import names
    from logsight.analysis.templates.masking import _CALENDAR
    from logsight.assets.install import load_pipeline

    scripts = [p["script"] for p in load_pipeline(names.LOGS)["processors"] if "script" in p]
    params = next(s["params"] for s in scripts if s.get("tag") == "template")
    assert set(params["calendar"]) == _CALENDAR
