# Sourced by the scripts beside it: where things live and which Elasticsearch CI runs.
# shellcheck shell=bash
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CITEWISE_CACHE:-$REPO/.cache}"
# Keep in step with docker-compose.yml's image and the elasticsearch client's major version.
ES_VERSION="${ES_VERSION:-8.19.3}"
ES_USER="${CITEWISE_ES_USER:-citewise-es}"
ES_HOME="$CACHE/elasticsearch-$ES_VERSION"
# The tests' PostgreSQL cluster (scripts/services.sh): its own data directory, run by a non-root user.
PG_USER="${CITEWISE_PG_USER:-citewise-pg}"
PG_DIR="$CACHE/postgres"
# axe-core, the accessibility engine the browser tests inject into each page they check (npm, not the site's code).
AXE_VERSION="${AXE_VERSION:-4.14.1}"
AXE_DIR="$CACHE/axe-core"
