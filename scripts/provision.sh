#!/usr/bin/env bash
# Make PostgreSQL with PostGIS and Redis available to nearby, then print the
# environment that points at them (`export DATABASE_URL=…` lines on stdout).
#
# - When DATABASE_URL / REDIS_URL are set, they are used as they are: nothing is
#   installed or started for that service.
# - Otherwise, on Debian or Ubuntu as root (or with sudo), the missing packages
#   are installed from the distribution, the services started without systemd
#   (pg_ctlcluster, redis-server --daemonize yes), and the role, the database and
#   a PostGIS template database created.
# - Idempotent: when everything is in place it only checks, in well under 10 s.
#
# Logs go to stderr; only the export lines go to stdout.
set -euo pipefail

DB_USER=${NEARBY_DB_USER:-nearby}
DB_PASSWORD=${NEARBY_DB_PASSWORD:-nearby}
DB_NAME=${NEARBY_DB_NAME:-nearby}
REDIS_PORT=${NEARBY_REDIS_PORT:-6379}

log() { printf 'provision: %s\n' "$*" >&2; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
need_root() {
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; return; fi
    command -v sudo >/dev/null 2>&1 || die "run as root or install sudo: installing and starting services needs it"
    SUDO="sudo"
}

check_os() {
    local id="" like=""
    if [ -r /etc/os-release ]; then
        id=$(. /etc/os-release; echo "${ID:-}")
        like=$(. /etc/os-release; echo "${ID_LIKE:-}")
    fi
    case " $id $like " in
        *" debian "*|*" ubuntu "*) ;;
        *) die "this system ($id) is not Debian or Ubuntu. Install PostgreSQL 13+ with PostGIS 3 and Redis 7+,
start them, and set DATABASE_URL (a role allowed to create databases, with PostGIS available)
and REDIS_URL, e.g.
  export DATABASE_URL=postgresql://nearby:nearby@127.0.0.1:5432/nearby
  export REDIS_URL=redis://127.0.0.1:6379/0" ;;
    esac
}

APT_UPDATED=""
apt_install() {
    need_root
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_version() {
    # The newest server major version installed (pg_ctlcluster knows them all).
    ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1
}

ensure_postgres_packages() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(pg_version)" ]; then
        apt_install postgresql postgresql-contrib
    fi
    local v; v=$(pg_version)
    [ -n "$v" ] || die "PostgreSQL did not install"
    if [ ! -f "/usr/share/postgresql/$v/extension/postgis.control" ]; then
        apt_install "postgresql-$v-postgis-3"
    fi
}

# Prints "VERSION PORT" of a running cluster, starting (or creating) one if needed.
ensure_postgres_running() {
    local line v name port status
    line=$(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print; exit}')
    if [ -z "$line" ]; then
        line=$(pg_lsclusters -h 2>/dev/null | head -n 1)
        if [ -z "$line" ]; then
            need_root
            v=$(pg_version)
            log "creating cluster $v/main"
            $SUDO pg_createcluster "$v" main >&2
            line=$(pg_lsclusters -h | head -n 1)
        fi
        read -r v name port status _ <<<"$line"
        need_root
        log "starting PostgreSQL $v/$name on port $port"
        $SUDO pg_ctlcluster "$v" "$name" start >&2
    fi
    read -r v name port status _ <<<"$line"
    echo "$v $port"
}

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
    else sudo -u postgres "$@"; fi
}

psql_admin() {  # psql_admin PORT DB SQL
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$1" -d "$2" -tAc "$3"
}

ensure_postgres_objects() {
    local port=$1
    if [ "$(psql_admin "$port" postgres "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
        log "creating role $DB_USER"
        psql_admin "$port" postgres "CREATE ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
    fi
    # The template carries PostGIS, so that the role (not a superuser) can make
    # databases for the demo and for each test run by copying it.
    local db
    for db in "${DB_NAME}_template" "$DB_NAME"; do
        if [ "$(psql_admin "$port" postgres "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
            log "creating database $db"
            psql_admin "$port" postgres "CREATE DATABASE \"$db\" OWNER \"$DB_USER\""
        fi
        if [ "$(psql_admin "$port" "$db" "SELECT 1 FROM pg_extension WHERE extname = 'postgis'")" != 1 ]; then
            psql_admin "$port" "$db" "CREATE EXTENSION postgis"
        fi
    done
}

# Waits while a Redis that runs loads its data set (it answers LOADING meanwhile).
wait_redis_loaded() {
    local i
    for i in $(seq 600); do
        case "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" in
            LOADING*) sleep 0.1 ;;
            *) return 0 ;;
        esac
    done
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server redis-tools
    fi
    wait_redis_loaded
    if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
        need_root
        local dir=/var/lib/redis
        [ -d "$dir" ] || dir=$(mktemp -d)
        log "starting redis-server on port $REDIS_PORT"
        $SUDO redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 \
            --dir "$dir" --logfile "$dir/redis-nearby.log" >&2
        local i
        for i in $(seq 50); do
            wait_redis_loaded
            [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
            sleep 0.1
        done
        die "redis-server did not answer on port $REDIS_PORT"
    fi
}

main() {
    if [ -z "${DATABASE_URL:-}" ]; then
        check_os
        ensure_postgres_packages
        local v port
        read -r v port <<<"$(ensure_postgres_running)"
        local i
        for i in $(seq 600); do  # up to a minute: recovery after an unclean stop
            as_postgres pg_isready -q -p "$port" && break
            sleep 0.1
        done
        ensure_postgres_objects "$port"
        DATABASE_URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/$DB_NAME"
    else
        log "using the given DATABASE_URL"
    fi
    if [ -z "${REDIS_URL:-}" ]; then
        check_os
        ensure_redis
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    else
        log "using the given REDIS_URL"
    fi
    printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\n' "$DATABASE_URL" "$REDIS_URL"
}

main "$@"
