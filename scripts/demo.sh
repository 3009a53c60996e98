#!/usr/bin/env bash
# The main job in one command: install logsight, start the local engine (unless LOGSIGHT_URL
# points at a cluster), install the assets and run the end-to-end demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e .
exec logsight demo "$@"
