#!/usr/bin/env bash
# Install the system-level dependencies Citewise's tests need, idempotently.
#
#   * checks that Java >= 17 is available (Elasticsearch runs on it)
#   * apt-installs (only what is missing): redis-server, postgresql (Debian's
#     server package; scripts/services.sh runs a cluster of its own, not the
#     package's), chromium, chromium-driver, fonts-liberation, unzip, curl,
#     acl, docker-compose (the compose CLI used by scripts/check-compose.sh)
#   * fetches the Elasticsearch integ-test-zip with Maven and unpacks it into
#     ${CITEWISE_CACHE:-<repo>/.cache}/elasticsearch-${ES_VERSION}
#   * npm-installs axe-core ${AXE_VERSION} into ${CITEWISE_CACHE}/axe-core for
#     the browser tests' accessibility checks (needs node and npm)
#   * creates the non-root system users that run Elasticsearch and
#     PostgreSQL (both refuse to run as root) and gives them their directories
#
# Meant to run as root (CI). When everything is already present it only
# performs cheap checks and finishes in about a second.
#
# Environment:
#   ES_VERSION         Elasticsearch version (default 8.19.3)
#   CITEWISE_CACHE     cache dir (default <repo>/.cache, git-ignored)
#   CITEWISE_ES_USER   user that runs ES (default citewise-es)
#   CITEWISE_PG_USER   user that runs the test PostgreSQL (default citewise-pg)
#   CITEWISE_SKIP_APT  set to 1 to skip the apt step entirely
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ES_ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ES_VERSION}:zip"

APT_PACKAGES=(redis-server postgresql chromium chromium-driver fonts-liberation unzip curl acl docker-compose)

log() { printf '[install-system] %s\n' "$*"; }
die() { printf '[install-system] ERROR: %s\n' "$*" >&2; exit 1; }

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# --------------------------------------------------------------------------
# 1. Java >= 17
# --------------------------------------------------------------------------
find_java() {
    if [ -n "${ES_JAVA_HOME:-}" ] && [ -x "$ES_JAVA_HOME/bin/java" ]; then
        echo "$ES_JAVA_HOME/bin/java"
    elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        return 1
    fi
}

JAVA_BIN="$(find_java)" || die "no Java found (looked at \$ES_JAVA_HOME, \$JAVA_HOME, PATH). Elasticsearch ${ES_VERSION} needs Java >= 17: apt-get install openjdk-17-jre-headless"
JAVA_VERSION_LINE="$("$JAVA_BIN" -version 2>&1 | head -n1)"
JAVA_MAJOR="$(printf '%s\n' "$JAVA_VERSION_LINE" | sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/' )"
# Java 1.8 style ("1.8.0_x") -> major 8
if [ "${JAVA_MAJOR%% *}" = "1" ]; then JAVA_MAJOR="${JAVA_MAJOR##* }"; else JAVA_MAJOR="${JAVA_MAJOR%% *}"; fi
case "$JAVA_MAJOR" in
    ''|*[!0-9]*) die "could not parse the Java version from: $JAVA_VERSION_LINE ($JAVA_BIN)" ;;
esac
[ "$JAVA_MAJOR" -ge 17 ] || die "Java >= 17 is required, found $JAVA_MAJOR ($JAVA_BIN: $JAVA_VERSION_LINE)"
log "java $JAVA_MAJOR ok ($JAVA_BIN)"

# --------------------------------------------------------------------------
# 2. apt packages (only the missing ones)
# --------------------------------------------------------------------------
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if [ "${CITEWISE_SKIP_APT:-0}" != "1" ]; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "$IS_ROOT" -eq 1 ] || die "missing apt packages (${missing[*]}); re-run as root"
        log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "apt packages ok (${APT_PACKAGES[*]})"
    fi
fi

# --------------------------------------------------------------------------
# 3. Elasticsearch integ-test-zip
# --------------------------------------------------------------------------
mkdir -p "$CACHE"
if [ -x "$ES_HOME/bin/elasticsearch" ] && [ -d "$ES_HOME/lib" ]; then
    log "elasticsearch $ES_VERSION present ($ES_HOME)"
else
    command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found; it is needed to fetch $ES_ARTIFACT"
    command -v unzip >/dev/null 2>&1 || die "unzip not found"
    dl="$CACHE/downloads"
    mkdir -p "$dl"
    zip="$dl/elasticsearch-$ES_VERSION.zip"
    if [ ! -s "$zip" ]; then
        log "fetching $ES_ARTIFACT with Maven"
        # No pom needed: dependency:copy runs without a project.
        # Output is kept quiet unless Maven fails.
        if ! (cd "$dl" && mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$ES_ARTIFACT" \
                -DoutputDirectory="$dl" -Dmdep.overWriteReleases=true) >"$dl/mvn.log" 2>&1; then
            sed 's/\x1b\[[0-9;]*m//g' "$dl/mvn.log" | tail -n 40 >&2
            die "mvn dependency:copy of $ES_ARTIFACT failed (see above)"
        fi
        rm -f "$dl/mvn.log"
    fi
    [ -s "$zip" ] || die "Maven did not produce $zip"
    tmp="$(mktemp -d "$CACHE/.es-unpack.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    log "unpacking $zip"
    unzip -q "$zip" -d "$tmp" || die "unzip of $zip failed"
    [ -x "$tmp/elasticsearch-$ES_VERSION/bin/elasticsearch" ] || die "unexpected zip layout in $zip (no elasticsearch-$ES_VERSION/bin/elasticsearch)"
    rm -rf "$ES_HOME"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
    rm -rf "$tmp"
    trap - EXIT
    rm -f "$zip"   # the copy in ~/.m2 stays; no need to keep a second one
    log "elasticsearch $ES_VERSION unpacked into $ES_HOME"
fi
log "elasticsearch modules: $(ls "$ES_HOME/modules" | tr '\n' ' ')"

# --------------------------------------------------------------------------
# 3b. axe-core for the browser tests' accessibility checks
# --------------------------------------------------------------------------
axe_installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$AXE_DIR/node_modules/axe-core/package.json" 2>/dev/null | head -n1 || true)"
if [ "$axe_installed" = "$AXE_VERSION" ] && [ -s "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
    log "axe-core $AXE_VERSION present ($AXE_DIR)"
else
    command -v npm >/dev/null 2>&1 || die "npm not found; it is needed to fetch axe-core $AXE_VERSION (apt-get install nodejs npm)"
    log "npm install axe-core@$AXE_VERSION into $AXE_DIR"
    mkdir -p "$AXE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >/dev/null \
        || die "npm install axe-core@$AXE_VERSION failed"
    [ -s "$AXE_DIR/node_modules/axe-core/axe.min.js" ] || die "npm did not produce $AXE_DIR/node_modules/axe-core/axe.min.js"
fi

# --------------------------------------------------------------------------
# 4. Non-root users owning the ES and PostgreSQL directories (root only)
# --------------------------------------------------------------------------
ensure_system_user() { # user
    if ! id -u "$1" >/dev/null 2>&1; then
        log "creating system user $1"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$1"
    fi
}

# The user must be able to reach $2: every ancestor directory needs search (x)
# permission for it. A checkout under /root (mode 700) is the usual trap;
# grant just that user traverse rights via an ACL.
ensure_traverse() { # user path
    local user="$1" target="$2" d ancestors=()
    runuser -u "$user" -- test -x "$target" && return 0
    command -v setfacl >/dev/null 2>&1 || die "$user cannot reach $target and setfacl (package acl) is missing; set CITEWISE_CACHE to a world-traversable directory such as /var/cache/citewise"
    # Walk the ancestors top-down, so only the blocking ones get an ACL.
    d="$(cd "$CACHE" && pwd -P)"
    while [ "$d" != "/" ]; do ancestors=("$d" "${ancestors[@]}"); d="$(dirname "$d")"; done
    for d in "${ancestors[@]}"; do
        if ! runuser -u "$user" -- test -x "$d" 2>/dev/null; then
            log "granting $user traverse permission on $d (ACL u:$user:x)"
            setfacl -m "u:$user:x" "$d" || true
        fi
    done
    runuser -u "$user" -- test -x "$target" \
        || die "$user still cannot reach $target; set CITEWISE_CACHE to a world-traversable directory such as /var/cache/citewise"
}

if [ "$IS_ROOT" -eq 1 ]; then
    ensure_system_user "$ES_USER"
    # Runtime dirs (data/logs/tmp/pid) live next to the distribution.
    mkdir -p "$CACHE/es-run/data" "$CACHE/es-run/logs" "$CACHE/es-run/tmp"
    for d in "$ES_HOME" "$CACHE/es-run"; do
        if [ -n "$(find "$d" ! -user "$ES_USER" -print -quit)" ]; then
            chown -R "$ES_USER:$ES_USER" "$d"
        fi
    done
    ensure_traverse "$ES_USER" "$ES_HOME/bin/elasticsearch"
    log "user $ES_USER ok, owns $ES_HOME"

    ensure_system_user "$PG_USER"
    mkdir -p "$PG_DIR"
    if [ -n "$(find "$PG_DIR" ! -user "$PG_USER" -print -quit)" ]; then
        chown -R "$PG_USER:$PG_USER" "$PG_DIR"
    fi
    ensure_traverse "$PG_USER" "$PG_DIR"
    log "user $PG_USER ok, owns $PG_DIR"
else
    mkdir -p "$CACHE/es-run/data" "$CACHE/es-run/logs" "$CACHE/es-run/tmp" "$PG_DIR"
    log "not root: ES and PostgreSQL will run as $(id -un); skipping user creation"
fi

log "done"
