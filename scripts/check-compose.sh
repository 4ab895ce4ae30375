#!/usr/bin/env bash
# Validate docker-compose.yml without a Docker engine (`config` never talks
# to the daemon). Exits non-zero if any available validator rejects it.
#
# Validators, all that are available are run:
#   * Compose v2 (`docker compose config`): the docker CLI plugin if
#     installed; otherwise a plugin built from the Go module
#     github.com/docker/compose/v2 (Go module proxy) into
#     ${CITEWISE_CACHE:-<repo>/.cache}/docker/cli-plugins on first use
#     (about 2 minutes, then cached). Set CITEWISE_COMPOSE_V2_BUILD=0 to
#     skip building it.
#   * Compose v1 (`docker-compose config`, Debian package docker-compose,
#     installed by scripts/install-system.sh).
#
# Required variables (${VAR:?...}) get dummy values unless already set, and
# the script also checks that compose refuses the file when they are missing.
#
# Usage: scripts/check-compose.sh [compose-file]
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPOSE_FILE_PATH="${1:-$REPO/docker-compose.yml}"
COMPOSE_V2_VERSION="${COMPOSE_V2_VERSION:-v2.40.3}"
PLUGIN_DIR="$CACHE/docker/cli-plugins"
PLUGIN="$PLUGIN_DIR/docker-compose"

log() { printf '[check-compose] %s\n' "$*"; }
die() { printf '[check-compose] ERROR: %s\n' "$*" >&2; exit 1; }

[ -f "$COMPOSE_FILE_PATH" ] || die "no such file: $COMPOSE_FILE_PATH"
cd "$(dirname "$COMPOSE_FILE_PATH")"
FILE="$(basename "$COMPOSE_FILE_PATH")"

REQUIRED_VARS=(DJANGO_SECRET_KEY CITEWISE_ENCRYPTION_KEY POSTGRES_PASSWORD)
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-dummy-secret-key-for-compose-check}"
export CITEWISE_ENCRYPTION_KEY="${CITEWISE_ENCRYPTION_KEY:-MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=}"
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-dummy-password}"

build_v2_plugin() {
    command -v go >/dev/null 2>&1 || { log "go not found: cannot build compose v2"; return 1; }
    local mod="github.com/docker/compose/v2@$COMPOSE_V2_VERSION" dir tmp
    log "building compose $COMPOSE_V2_VERSION from the Go module $mod (first use only)"
    tmp="$(mktemp -d)"
    # `go install pkg@version` refuses this module (its go.mod has exclude
    # directives), so download the module and build it as the main module.
    dir="$(cd "$tmp" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -n "$dir" ] && [ -d "$dir" ] || { rm -rf "$tmp"; log "go mod download $mod failed"; return 1; }
    cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
    mkdir -p "$PLUGIN_DIR"
    if (cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath \
            -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_V2_VERSION" \
            -o "$PLUGIN.tmp" ./cmd); then
        mv "$PLUGIN.tmp" "$PLUGIN"
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp" "$PLUGIN.tmp"
    return 1
}

# Print the command (as words, one per line) that runs compose v2, if any.
find_v2() {
    if docker compose version >/dev/null 2>&1; then
        echo docker; echo compose; return 0
    fi
    if [ ! -x "$PLUGIN" ] && [ "${CITEWISE_COMPOSE_V2_BUILD:-1}" != "0" ]; then
        build_v2_plugin >&2 || true
    fi
    if [ -x "$PLUGIN" ]; then
        if command -v docker >/dev/null 2>&1 && DOCKER_CONFIG="$CACHE/docker" docker compose version >/dev/null 2>&1; then
            echo env; echo "DOCKER_CONFIG=$CACHE/docker"; echo docker; echo compose; return 0
        fi
        echo "$PLUGIN"; return 0  # the plugin binary also works standalone
    fi
    return 1
}

validators=()
v2_cmd=()
if mapfile -t v2_cmd < <(find_v2) && [ "${#v2_cmd[@]}" -gt 0 ]; then
    validators+=(v2)
else
    log "compose v2 not available; skipping it"
fi
if command -v docker-compose >/dev/null 2>&1; then
    case "$(docker-compose version 2>/dev/null || true)" in
        *"version 1."*) validators+=(v1) ;;
    esac
fi
[ "${#validators[@]}" -gt 0 ] || die "no compose CLI found: run scripts/install-system.sh (installs docker-compose) or install the docker compose plugin"

run_validator() { # name args...
    case "$1" in
        v2) shift; "${v2_cmd[@]}" -f "$FILE" "$@" ;;
        v1) shift; docker-compose -f "$FILE" "$@" ;;
    esac
}

run_cmd_words() {
    case "$1" in
        v2) printf '%s' "${v2_cmd[*]}" ;;
        v1) printf 'docker-compose' ;;
    esac
}

fail=0
for v in "${validators[@]}"; do
    ver="$(run_validator "$v" version 2>/dev/null | sed -n 1p)" || true
    out="$(mktemp)"
    if run_validator "$v" config --quiet >"$out" 2>&1 && run_validator "$v" config >/dev/null 2>>"$out"; then
        services="$(run_validator "$v" config --services 2>/dev/null | sort | tr '\n' ' ')" || true
        log "OK   $ver [$(run_cmd_words "$v")]: $FILE is valid (services: $services)"
    else
        log "FAIL $ver: $FILE is invalid:"
        sed 's/^/    /' "$out" >&2
        fail=1
    fi
    # Each required variable must make compose refuse the file when unset.
    for var in "${REQUIRED_VARS[@]}"; do
        # (--env-file /dev/null: ignore a developer's real .env for this check)
        if (unset "$var"; run_validator "$v" --env-file /dev/null config --quiet) >/dev/null 2>&1; then
            log "FAIL $ver: config accepted the file without $var (expected a \${$var:?...} error)"
            fail=1
        fi
    done
    rm -f "$out"
done

exit "$fail"
