# Sourced by scripts/test.sh and scripts/demo.sh: create the project's virtual environment
# (.venv at the repository root) on first use, reuse it afterwards, and put it first on PATH.
# A stock Debian/Ubuntu python3 refuses `pip install` outside a venv (PEP 668,
# "externally-managed-environment"), so nothing is ever installed into the system Python.
# LOGSIGHT_VENV names another location.
venv="${LOGSIGHT_VENV:-$PWD/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating the virtual environment $venv" >&2
  if ! python3 -m venv "$venv"; then
    # Debian/Ubuntu ship venv's pip bootstrap separately (python3-venv); as root with apt
    # (CI), install it and retry
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv" || {
      echo "error: python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
      exit 1
    }
  fi
fi
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
unset PYTHONHOME
