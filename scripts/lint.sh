#!/usr/bin/env bash
# The static checks `make test` runs before the suite: the lock against pyproject.toml, ruff (style and likely bugs), mypy (types, with the Django,
# DRF and pydantic plugins) and import-linter (the apps' layering, docs/architecture.md). Configured in pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
echo "[lint] requirements.lock"
"$VENV/bin/python" scripts/check_lock.py
echo "[lint] ruff"
"$VENV/bin/ruff" check --quiet .
echo "[lint] import-linter"
"$VENV/bin/lint-imports" --no-cache
echo "[lint] mypy"
"$VENV/bin/mypy" --no-error-summary answers api audit bot connectors console core identity retrieval search
echo "[lint] clean"
