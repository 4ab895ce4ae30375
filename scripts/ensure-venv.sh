#!/usr/bin/env bash
# Create the virtualenv (Python 3.11) and install the locked dependencies (requirements.lock), once per
# change of pyproject.toml or the lock. The project itself runs from its checkout and is not installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "Citewise needs Python 3.11 ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.citewise-deps" 2>/dev/null)" != "$want" ]; then
  echo "[venv] installing the locked dependencies into $VENV (torch is large; pip's cache makes reruns fast)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # requirements.lock pins every package pyproject.toml's dependencies, test and dev extras resolve to (`make lock`
  # regenerates it), so every machine installs the same versions.
  "$VENV/bin/python" -m pip install --quiet --progress-bar off -r requirements.lock
  echo "$want" > "$VENV/.citewise-deps"
fi
