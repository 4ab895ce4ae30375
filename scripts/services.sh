#!/usr/bin/env bash
# Start/stop the local services Citewise's tests use:
#   * Elasticsearch (integ-test-zip unpacked by scripts/install-system.sh),
#     single node, security off, on 127.0.0.1:${ES_PORT:-9200}
#   * Redis on 127.0.0.1:${REDIS_PORT:-6379}
#   * PostgreSQL on 127.0.0.1:${POSTGRES_PORT:-5433}: a cluster of our own
#     (initdb into ${CITEWISE_CACHE}/postgres/data, trust auth on loopback,
#     superuser and database `citewise`), for the tests that need real
#     PostgreSQL semantics (row locks, READ COMMITTED). Not the Debian
#     package's cluster, which stays as it is.
#
# Usage: scripts/services.sh start|stop|restart|status
#
# `start` is idempotent: a service that already answers is left alone.
# `stop` stops the instances that `start` launched (found via pidfiles).
# As root, Elasticsearch runs as ${CITEWISE_ES_USER:-citewise-es} and
# PostgreSQL as ${CITEWISE_PG_USER:-citewise-pg} (both refuse to run as root).
#
# Environment:
#   ES_VERSION          (default 8.19.3)      ES_PORT     (default 9200)
#   REDIS_PORT          (default 6379)        CITEWISE_CACHE (default <repo>/.cache)
#   POSTGRES_PORT       (default 5433, beside a system cluster's 5432)
#   POSTGRES_BIN_DIR    where initdb/pg_ctl live (default: the newest
#                       /usr/lib/postgresql/*/bin, else PATH)
#   CITEWISE_ES_HEAP    heap size, used as -Xms/-Xmx (default 1g)
#   ES_START_TIMEOUT    seconds to wait for ES health (default 120)
#   CITEWISE_ES_EXTRA_SETTINGS  extra "key=value ..." ES settings; one the
#                       distribution rejects as unknown is dropped with a note
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ES_PORT="${ES_PORT:-9200}"
ES_HEAP="${CITEWISE_ES_HEAP:-1g}"
ES_START_TIMEOUT="${ES_START_TIMEOUT:-120}"
ES_CLUSTER_NAME="citewise-test"
ES_RUN="$CACHE/es-run"
ES_DATA="$ES_RUN/data"
ES_LOGS="$ES_RUN/logs"
ES_TMP="$ES_RUN/tmp"
ES_PIDFILE="$ES_RUN/elasticsearch.pid"
ES_URL="http://127.0.0.1:$ES_PORT"

REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_DIR="$CACHE/redis"
REDIS_PIDFILE="$REDIS_DIR/redis-$REDIS_PORT.pid"
REDIS_LOG="$REDIS_DIR/redis-$REDIS_PORT.log"

PG_PORT="${POSTGRES_PORT:-5433}"
PG_DATA="$PG_DIR/data"
PG_SOCKETS="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_DB="citewise"
PG_SUPERUSER="citewise"

log() { printf '[services] %s\n' "$*"; }
err() { printf '[services] ERROR: %s\n' "$*" >&2; }

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# ---------------------------------------------------------------- helpers --
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { # pidfile -> pid on stdout if the process is alive
    local f="$1" p
    [ -s "$f" ] || return 1
    p="$(tr -dc '0-9' <"$f")"
    pid_alive "$p" && { echo "$p"; return 0; }
    return 1
}

wait_pid_exit() { # pid seconds
    local pid="$1" n=$(( $2 * 5 ))
    while pid_alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.2; n=$((n - 1)); done
    ! pid_alive "$pid"
}

# ---------------------------------------------------------- elasticsearch --
es_healthy() {
    # 200 only when the cluster reached yellow (or green) within 2 s.
    curl -sf -o /dev/null --max-time 5 \
        "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=2s"
}

es_java_home() {
    if [ -n "${ES_JAVA_HOME:-}" ]; then echo "$ES_JAVA_HOME"; return; fi
    if [ -n "${JAVA_HOME:-}" ]; then echo "$JAVA_HOME"; return; fi
    local j
    j="$(command -v java)" || return 1
    j="$(readlink -f "$j")"
    dirname "$(dirname "$j")"
}

es_log_tail() {
    local f main="$ES_LOGS/$ES_CLUSTER_NAME.log" out="$ES_LOGS/startup.out"
    # The root cause tends to drown in stack traces: show the error lines first.
    for f in "$out" "$main"; do
        if [ -s "$f" ] && grep -qE '\]\[(ERROR|FATAL) *\]|^ERROR:|^Caused by|unknown setting' "$f"; then
            printf -- '----- errors in %s -----\n' "$f" >&2
            grep -E '\]\[(ERROR|FATAL) *\]|^ERROR:|^Caused by|unknown setting' "$f" | cut -c1-400 | tail -n 15 >&2
            break
        fi
    done
    for f in "$main" "$out"; do
        if [ -s "$f" ]; then
            printf -- '----- tail of %s -----\n' "$f" >&2
            tail -n 30 "$f" | cut -c1-400 >&2
            break
        fi
    done
}

# Settings every distribution accepts (all core Elasticsearch settings).
# destructive_requires_name=true as in production (it is the default): deleting or closing indices by
# wildcard is refused, so a test fails wherever our code would.
es_core_settings() {
    printf '%s\n' \
        "cluster.name=$ES_CLUSTER_NAME" \
        "discovery.type=single-node" \
        "network.host=127.0.0.1" \
        "http.port=$ES_PORT" \
        "path.data=$ES_DATA" \
        "path.logs=$ES_LOGS" \
        "cluster.routing.allocation.disk.threshold_enabled=false" \
        "action.destructive_requires_name=true"
}

# Settings that belong to optional modules: only passed when the module is
# in the distribution, else ES rejects them as "unknown setting".
es_optional_settings() {
    local m="$ES_HOME/modules"
    if [ -d "$m/x-pack-security" ] || [ -d "$m/x-pack-core" ]; then
        echo "xpack.security.enabled=false"
    fi
    [ -d "$m/x-pack-ml" ] && echo "xpack.ml.enabled=false"
    [ -d "$m/ingest-geoip" ] && echo "ingest.geoip.downloader.enabled=false"
    # Extra settings, space-separated key=value (dropped if ES rejects them).
    local s
    for s in ${CITEWISE_ES_EXTRA_SETTINGS:-}; do echo "$s"; done
    return 0
}

run_as_es() {
    if [ "$IS_ROOT" -eq 1 ]; then
        runuser -u "$ES_USER" -- "$@"
    else
        "$@"
    fi
}

es_launch() { # settings... ; returns the exit code of `elasticsearch -d`
    local java_home args=() s
    java_home="$(es_java_home)" || { err "no Java found for Elasticsearch"; return 1; }
    for s in "$@"; do args+=("-E$s"); done
    : >"$ES_LOGS/startup.out" 2>/dev/null || true
    # cwd = logs dir: jvm.options writes gc.log / hs_err files relative to it.
    (
        cd "$ES_LOGS"
        ulimit -n 65535 2>/dev/null || true
        # -d: the launcher returns once the node started (or failed).
        run_as_es timeout "$((ES_START_TIMEOUT + 30))" env \
            ES_JAVA_HOME="$java_home" \
            ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP ${ES_JAVA_OPTS:-}" \
            ES_TMPDIR="$ES_TMP" \
            "$ES_HOME/bin/elasticsearch" -d -p "$ES_PIDFILE" "${args[@]}" \
            </dev/null >>"$ES_LOGS/startup.out" 2>&1
    )
}

es_start() {
    if es_healthy; then
        log "elasticsearch already running on $ES_URL"
        return 0
    fi
    if [ ! -x "$ES_HOME/bin/elasticsearch" ]; then
        err "Elasticsearch $ES_VERSION not found in $ES_HOME; run scripts/install-system.sh first"
        return 1
    fi
    if [ "$IS_ROOT" -eq 1 ] && ! id -u "$ES_USER" >/dev/null 2>&1; then
        err "user $ES_USER does not exist (Elasticsearch refuses to run as root); run scripts/install-system.sh first"
        return 1
    fi

    local pid
    if pid="$(read_pid "$ES_PIDFILE")"; then
        log "elasticsearch (pid $pid) is starting; waiting for it"
    else
        rm -f "$ES_PIDFILE" 2>/dev/null || true
        if [ "$IS_ROOT" -eq 1 ]; then
            install -d -o "$ES_USER" -g "$(id -gn "$ES_USER")" "$ES_RUN" "$ES_DATA" "$ES_LOGS" "$ES_TMP"
        else
            mkdir -p "$ES_DATA" "$ES_LOGS" "$ES_TMP"
        fi

        local settings=() optional=() s rc=1 unknown try
        mapfile -t settings < <(es_core_settings)
        mapfile -t optional < <(es_optional_settings)
        for try in 1 2 3 4 5; do
            log "starting elasticsearch $ES_VERSION on $ES_URL (heap $ES_HEAP)"
            rc=0
            es_launch "${settings[@]}" "${optional[@]}" || rc=$?
            [ "$rc" -eq 0 ] && break
            # Drop an optional setting this distribution does not know, retry.
            unknown="$(grep -ohE "unknown setting \[[^]]+\]" "$ES_LOGS/startup.out" 2>/dev/null \
                       | head -n1 | sed -E 's/unknown setting \[([^]]+)\]/\1/')" || true
            local kept=() dropped=0
            for s in "${optional[@]}"; do
                if [ -n "$unknown" ] && [ "${s%%=*}" = "$unknown" ]; then dropped=1; else kept+=("$s"); fi
            done
            if [ "$dropped" -eq 1 ]; then
                log "this distribution rejects [$unknown] (attempt $try); retrying without it"
                optional=("${kept[@]}")
                continue
            fi
            break
        done
        if [ "$rc" -ne 0 ]; then
            err "elasticsearch failed to start (launcher exit code $rc)"
            es_log_tail
            return 1
        fi
    fi

    local deadline=$(( $(date +%s) + ES_START_TIMEOUT ))
    until es_healthy; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            err "elasticsearch did not reach yellow/green on $ES_URL within ${ES_START_TIMEOUT}s"
            es_log_tail
            return 1
        fi
        if [ -s "$ES_PIDFILE" ] && ! read_pid "$ES_PIDFILE" >/dev/null; then
            err "elasticsearch process exited during startup"
            es_log_tail
            return 1
        fi
        sleep 1
    done
    log "elasticsearch ready on $ES_URL (pid $(read_pid "$ES_PIDFILE" || echo '?'))"
}

es_stop() {
    local pid
    if ! pid="$(read_pid "$ES_PIDFILE")"; then
        # ES removes its pidfile on clean shutdown; fall back to the JVM
        # started from our ES_HOME (never any other java process).
        pid="$(pgrep -f -- "-Des.path.home=$ES_HOME " | head -n1)" || true
    fi
    if [ -z "$pid" ]; then
        if es_healthy; then
            log "elasticsearch on $ES_URL was not started by services.sh (no pidfile); leaving it"
        else
            log "elasticsearch not running"
        fi
        rm -f "$ES_PIDFILE" 2>/dev/null || true
        return 0
    fi
    log "stopping elasticsearch (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 60; then
        log "elasticsearch did not stop in 60s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || true
    fi
    rm -f "$ES_PIDFILE" 2>/dev/null || true
    log "elasticsearch stopped"
}

es_status() {
    local h
    if h="$(curl -sf --max-time 5 "$ES_URL/_cluster/health")"; then
        log "elasticsearch: up on $ES_URL, pid $(read_pid "$ES_PIDFILE" || echo '?'), $(printf '%s' "$h" | grep -oE '"status":"[a-z]+"')"
        return 0
    fi
    log "elasticsearch: down ($ES_URL)"
    return 1
}

# ------------------------------------------------------------------ redis --
redis_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

redis_start() {
    if redis_ping; then
        log "redis already running on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    command -v redis-server >/dev/null 2>&1 || { err "redis-server not found; run scripts/install-system.sh first"; return 1; }
    mkdir -p "$REDIS_DIR"
    rm -f "$REDIS_PIDFILE"
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" \
        --save "" --appendonly no </dev/null || true
    local n=100
    until redis_ping; do
        n=$((n - 1))
        if [ "$n" -le 0 ]; then
            err "redis did not answer PING on 127.0.0.1:$REDIS_PORT within 10s"
            [ -s "$REDIS_LOG" ] && { printf -- '----- tail of %s -----\n' "$REDIS_LOG" >&2; tail -n 20 "$REDIS_LOG" >&2; }
            return 1
        fi
        sleep 0.1
    done
    log "redis ready on 127.0.0.1:$REDIS_PORT (pid $(read_pid "$REDIS_PIDFILE" || echo '?'))"
}

redis_stop() {
    local pid
    if ! pid="$(read_pid "$REDIS_PIDFILE")"; then
        if redis_ping; then
            log "redis on 127.0.0.1:$REDIS_PORT was not started by services.sh (no pidfile); leaving it"
        else
            log "redis not running"
        fi
        rm -f "$REDIS_PIDFILE"
        return 0
    fi
    log "stopping redis (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 15; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 5 || true
    fi
    rm -f "$REDIS_PIDFILE"
    log "redis stopped"
}

redis_status() {
    if redis_ping; then
        log "redis: up on 127.0.0.1:$REDIS_PORT, pid $(read_pid "$REDIS_PIDFILE" || echo '?')"
        return 0
    fi
    log "redis: down (127.0.0.1:$REDIS_PORT)"
    return 1
}

# ------------------------------------------------------------- postgresql --
pg_bin() { # program -> its path on stdout
    local d
    if [ -n "${POSTGRES_BIN_DIR:-}" ]; then
        [ -x "$POSTGRES_BIN_DIR/$1" ] && { echo "$POSTGRES_BIN_DIR/$1"; return 0; }
        return 1
    fi
    # Debian keeps the server programs out of PATH, one directory per major version.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
        [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    command -v "$1"
}

pg_ready() {
    local isready
    isready="$(pg_bin pg_isready)" || return 1
    "$isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

run_as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pg_psql() { # sql -> first column of the result
    local psql
    psql="$(pg_bin psql)" || { err "psql not found"; return 1; }
    "$psql" -X -q -tA -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -c "$1"
}

pg_ensure_database() {
    if [ "$(pg_psql "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
        log "creating database $PG_DB"
        pg_psql "CREATE DATABASE $PG_DB" >/dev/null
    fi
}

pg_start() {
    if pg_ready; then
        log "postgresql already running on 127.0.0.1:$PG_PORT"
        pg_ensure_database || return 1
        return
    fi
    local initdb pg_ctl
    initdb="$(pg_bin initdb)" && pg_ctl="$(pg_bin pg_ctl)" \
        || { err "PostgreSQL server programs not found; run scripts/install-system.sh first (package postgresql)"; return 1; }
    if [ "$IS_ROOT" -eq 1 ]; then
        id -u "$PG_USER" >/dev/null 2>&1 \
            || { err "user $PG_USER does not exist (PostgreSQL refuses to run as root); run scripts/install-system.sh first"; return 1; }
        install -d -o "$PG_USER" -g "$(id -gn "$PG_USER")" "$PG_DIR" "$PG_SOCKETS"
    else
        mkdir -p "$PG_DIR" "$PG_SOCKETS"
    fi
    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
        log "initdb $PG_DATA (superuser $PG_SUPERUSER, trust auth: local connections only)"
        rm -rf "$PG_DATA"
        run_as_pg "$initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
            >"$PG_DIR/initdb.log" 2>&1 \
            || { err "initdb failed"; tail -n 20 "$PG_DIR/initdb.log" >&2; return 1; }
    fi
    log "starting postgresql on 127.0.0.1:$PG_PORT"
    # Loopback only; a throwaway test cluster, so durability is traded for speed.
    if ! run_as_pg "$pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start -o \
            "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_SOCKETS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"; then
        err "postgresql failed to start"
        [ -s "$PG_LOG" ] && { printf -- '----- tail of %s -----\n' "$PG_LOG" >&2; tail -n 20 "$PG_LOG" >&2; }
        return 1
    fi
    pg_ready || { err "postgresql started but does not accept connections on 127.0.0.1:$PG_PORT"; return 1; }
    pg_ensure_database || return 1
    log "postgresql ready on 127.0.0.1:$PG_PORT (database $PG_DB, user $PG_SUPERUSER)"
}

pg_stop() {
    local pg_ctl
    if [ ! -s "$PG_DATA/postmaster.pid" ]; then
        if pg_ready; then
            log "postgresql on 127.0.0.1:$PG_PORT was not started by services.sh; leaving it"
        else
            log "postgresql not running"
        fi
        return 0
    fi
    pg_ctl="$(pg_bin pg_ctl)" || { err "pg_ctl not found"; return 1; }
    log "stopping postgresql"
    run_as_pg "$pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop || { err "pg_ctl stop failed"; return 1; }
    log "postgresql stopped"
}

pg_status() {
    if pg_ready; then
        log "postgresql: up on 127.0.0.1:$PG_PORT (data $PG_DATA)"
        return 0
    fi
    log "postgresql: down (127.0.0.1:$PG_PORT)"
    return 1
}

# ------------------------------------------------------------------- main --
cmd="${1:-}"
case "$cmd" in
    start)
        rc=0
        redis_start || rc=1
        pg_start || rc=1
        es_start || rc=1
        exit "$rc"
        ;;
    stop)
        es_stop
        pg_stop
        redis_stop
        ;;
    restart)
        "$0" stop
        exec "$0" start
        ;;
    status)
        rc=0
        es_status || rc=1
        redis_status || rc=1
        pg_status || rc=1
        exit "$rc"
        ;;
    *)
        echo "usage: $0 start|stop|restart|status" >&2
        exit 2
        ;;
esac
