#!/usr/bin/env bash
# Create the virtualenv (Python 3.11) and install the dependencies pyproject.toml lists, once per
# change of pyproject.toml. The project itself runs from its checkout and is not installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "Citewise needs Python 3.11 ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$VENV/.citewise-deps" 2>/dev/null)" != "$want" ]; then
  echo "[venv] installing dependencies into $VENV (torch is large; pip's cache makes reruns fast)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" - <<'PY' > "$VENV/.citewise-requirements.txt"
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
  "$VENV/bin/python" -m pip install --quiet --progress-bar off -r "$VENV/.citewise-requirements.txt"
  echo "$want" > "$VENV/.citewise-deps"
fi
