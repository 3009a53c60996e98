#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs into the project's
# virtual environment (.venv, created on first use and reused), then lints, type-checks and
# runs pytest with it. The tests start a real local OpenSearch once (or use LOGSIGHT_URL).
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
python -m pip install -q -e ".[test]"
# Headless Chromium checks the demo's HTML report in a real browser.
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped" >&2
  fi
fi
python -m ruff check .
python -m mypy
python -m pytest "$@"
