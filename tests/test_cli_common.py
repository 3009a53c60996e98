"""Options every CLI command shares behave the same way everywhere."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from logsight.cli import main


@pytest.mark.parametrize("command", [
    ["logs", "anomalies"],
    ["traces", "bottlenecks"],
    ["traces", "regressions"],
    ["drift"],
    ["performance", "--model", "m"],
    ["ingest", "README.md"],
])
def test_a_bad_namespace_is_a_usage_error_everywhere(command: list[str]) -> None:
    # checked before anything reads a file or contacts a cluster (the URL is never used)
    res = CliRunner().invoke(main, [*command, "--namespace", "Bad-NS",
                                    "--url", "http://127.0.0.1:1"])
    assert res.exit_code == 2, res.output
    assert "invalid namespace 'Bad-NS'" in res.output and "--namespace" in res.output
