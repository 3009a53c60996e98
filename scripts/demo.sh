#!/usr/bin/env bash
# The main job in one command: install logsight into the project's virtual environment
# (.venv, created on first use and reused), start the local engine (unless LOGSIGHT_URL
# points at a cluster), install the assets and run the end-to-end demo. Arguments go to
# `logsight demo` (e.g. --short, --stop-engine).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
python -m pip install -q -e .
exec logsight demo "$@"
