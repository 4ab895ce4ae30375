#!/usr/bin/env bash
# The suite's two passes (`make test`), run side by side: most of either is waiting on Elasticsearch, PostgreSQL,
# worker processes and stand-ins, so two processes share two cores well.
#   1. SQLite (the embedded default's database): every test but the production stack's.
#   2. PostgreSQL (TEST_POSTGRES_URL): the production stack (real Celery workers on Redis, outages, traces) and the
#      tests that depend on the database engine's own behaviour (tests/conftest.py lists both).
# The PostgreSQL pass's output follows the SQLite pass's. Exit status: non-zero if either pass failed or ran no
# test (pytest's 5).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://citewise@127.0.0.1:${POSTGRES_PORT:-5433}/citewise}"
postgres_log="$(mktemp -t citewise-test-postgres.XXXXXX)"
trap 'rm -f "$postgres_log"' EXIT

DATABASE_URL="$TEST_POSTGRES_URL" "$PY" -m pytest -p no:cacheprovider -m "production or database" "$@" \
    >"$postgres_log" 2>&1 &
postgres_pid=$!
echo "[test] pass 1/2 on SQLite (the PostgreSQL pass runs beside it, its output follows)"
"$PY" -m pytest -p no:cacheprovider -m "not production" "$@"
sqlite_status=$?
wait "$postgres_pid"
postgres_status=$?
echo "[test] pass 2/2 on PostgreSQL ($TEST_POSTGRES_URL)"
cat "$postgres_log"
echo "[test] SQLite pass: exit $sqlite_status; PostgreSQL pass: exit $postgres_status"
[ "$sqlite_status" -eq 0 ] && [ "$postgres_status" -eq 0 ]
