# Sourced by scripts/run.sh and scripts/test.sh: makes sure Postgres and Redis answer at
# AGORA__DATABASE__URL and AGORA__REDIS__URL. Where one does not, it starts a project-local one
# (data under $AGORA_LOCAL_DIR, default .agora-local/, which git ignores) on the URL's port, or
# on a free port (rewriting the URL) when that port is taken; it installs the server from
# Debian's packages when the binary is missing and it runs as root. `stop_local_services` stops
# exactly what this file started.

AGORA_LOCAL_DIR="${AGORA_LOCAL_DIR:-$PWD/.agora-local}"
export AGORA__DATABASE__URL="${AGORA__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/agora}"
export AGORA__REDIS__URL="${AGORA__REDIS__URL:-redis://127.0.0.1:6379}"
STARTED_POSTGRES_DIR=""
STARTED_REDIS_PID=""

say() { printf 'agora: %s\n' "$*" >&2; }

# url_part URL host|port|db: the part of a postgres:// or redis:// URL.
url_part() {
    local url=$1 part=$2
    [[ $url =~ ^[a-z]+://(([^@/]*)@)?([^:/?]+)(:([0-9]+))?(/([^?]*))? ]] || return 1
    case $part in
        host) echo "${BASH_REMATCH[3]}" ;;
        port) echo "${BASH_REMATCH[5]}" ;;
        db) echo "${BASH_REMATCH[7]}" ;;
    esac
}

# with_port URL PORT: URL with its port replaced.
with_port() {
    local url=$1 port=$2
    [[ $url =~ ^([a-z]+://([^@/]*@)?[^:/?]+)(:[0-9]+)?(.*)$ ]]
    echo "${BASH_REMATCH[1]}:${port}${BASH_REMATCH[4]}"
}

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        answers 127.0.0.1 "$port" || { echo "$port"; return 0; }
    done
    return 1
}

is_local_host() { [[ $1 == 127.* || $1 == localhost || $1 == "::1" ]]; }

install_debian_package() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        say "$2 is not installed; install the Debian package '$1' (or point the URL at a running server)"
        return 1
    fi
    say "installing $1 from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

postgres_bin_dir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb ]] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

# as_postgres_user CMD...: Postgres refuses to run as root, so root runs it as `postgres`.
as_postgres_user() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_local_postgres() {
    local host port bin data
    host=$(url_part "$AGORA__DATABASE__URL" host)
    port=$(url_part "$AGORA__DATABASE__URL" port)
    port=${port:-5432}
    if answers "$host" "$port"; then
        return 0
    fi
    if ! is_local_host "$host"; then
        say "Postgres at $host:$port does not answer, and it is not on this machine"
        return 1
    fi
    bin=$(postgres_bin_dir) || { install_debian_package postgresql postgres && bin=$(postgres_bin_dir); } || return 1
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi
    data="$AGORA_LOCAL_DIR/postgres"
    mkdir -p "$AGORA_LOCAL_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        mkdir -p "$data"
        chown postgres "$data"
        chmod 700 "$data"
        if ! runuser -u postgres -- test -w "$data"; then
            # The checkout's parents are closed to the postgres user: keep the data beside it.
            local outside="/var/tmp/agora-local-$(echo "$AGORA_LOCAL_DIR" | sha1sum | cut -c1-12)/postgres"
            mkdir -p "$outside" && chown postgres "$outside" && chmod 700 "$outside"
            chmod 755 "$(dirname "$outside")"
            rmdir "$data" 2>/dev/null || true
            ln -sfn "$outside" "$data"
            data="$outside"
        fi
    else
        mkdir -p "$data"
    fi
    if answers 127.0.0.1 "$port"; then
        port=$(free_port)
        export AGORA__DATABASE__URL
        AGORA__DATABASE__URL=$(with_port "$AGORA__DATABASE__URL" "$port")
    fi
    if [[ ! -f $data/PG_VERSION ]]; then
        say "initialising a project-local Postgres in $data"
        as_postgres_user "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    say "starting project-local Postgres on 127.0.0.1:$port"
    as_postgres_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null
    STARTED_POSTGRES_DIR="$data"
    POSTGRES_BIN_DIR="$bin"
}

start_local_redis() {
    local host port
    host=$(url_part "$AGORA__REDIS__URL" host)
    port=$(url_part "$AGORA__REDIS__URL" port)
    port=${port:-6379}
    if answers "$host" "$port"; then
        return 0
    fi
    if ! is_local_host "$host"; then
        say "Redis at $host:$port does not answer, and it is not on this machine"
        return 1
    fi
    command -v redis-server >/dev/null || install_debian_package redis-server redis-server || return 1
    if answers 127.0.0.1 "$port"; then
        port=$(free_port)
        export AGORA__REDIS__URL
        AGORA__REDIS__URL=$(with_port "$AGORA__REDIS__URL" "$port")
    fi
    mkdir -p "$AGORA_LOCAL_DIR/redis"
    say "starting project-local Redis on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$AGORA_LOCAL_DIR/redis" --logfile "$AGORA_LOCAL_DIR/redis/redis.log" &
    STARTED_REDIS_PID=$!
    for _ in $(seq 1 100); do
        answers 127.0.0.1 "$port" && return 0
        sleep 0.1
    done
    say "project-local Redis did not start; see $AGORA_LOCAL_DIR/redis/redis.log"
    return 1
}

# ensure_database: creates the database named in AGORA__DATABASE__URL when it is missing.
ensure_database() {
    local db maintenance
    db=$(url_part "$AGORA__DATABASE__URL" db)
    db=${db:-agora}
    command -v psql >/dev/null || install_debian_package postgresql-client psql || return 1
    maintenance=$(sed -E 's#^([a-z]+://[^/]+)/[^?]*#\1/postgres#' <<<"$AGORA__DATABASE__URL")
    if [[ -z $(psql "$maintenance" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
        say "creating database $db"
        psql "$maintenance" -qc "CREATE DATABASE \"$db\"" >/dev/null
    fi
}

start_local_services() {
    start_local_postgres && start_local_redis && ensure_database
}

stop_local_services() {
    if [[ -n $STARTED_REDIS_PID ]]; then
        say "stopping project-local Redis"
        kill "$STARTED_REDIS_PID" 2>/dev/null && wait "$STARTED_REDIS_PID" 2>/dev/null
        STARTED_REDIS_PID=""
    fi
    if [[ -n $STARTED_POSTGRES_DIR ]]; then
        say "stopping project-local Postgres"
        as_postgres_user "$POSTGRES_BIN_DIR/pg_ctl" -D "$STARTED_POSTGRES_DIR" -m fast -w stop >/dev/null 2>&1 || true
        STARTED_POSTGRES_DIR=""
    fi
}
