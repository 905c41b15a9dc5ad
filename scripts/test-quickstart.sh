#!/usr/bin/env bash
# Tests the quick start's bring-your-own path: scripts/run.sh pointed at free ports must start
# its own Postgres and Redis, serve, and on Ctrl-C (SIGINT to its process group) stop Agora
# and everything it started, exiting 0.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh

pg_port=$(free_port)
redis_port=$(free_port)
http_port=$(free_port)
local_dir=$(mktemp -d /tmp/agora-quickstart.XXXXXX)
# Like a checkout, readable by the postgres user that root runs Postgres as.
chmod 755 "$local_dir"
log="$local_dir/run.log"
fail() {
    echo "quickstart: FAILED: $*" >&2
    echo "--- run.sh output ---" >&2
    cat "$log" >&2 || true
    exit 1
}
cleanup() {
    [[ -n ${run_pid:-} ]] && kill -KILL -- "-$run_pid" 2>/dev/null || true
    [[ -n ${KEEP:-} ]] && cp "$log" /tmp/quickstart-last.log; rm -rf "$local_dir" "/var/tmp/agora-local-$(echo "$local_dir" | sha1sum | cut -c1-12)"
}
trap cleanup EXIT

# The release build can take minutes on a cold machine; do it before the clock starts.
cargo build --release --locked --bin agora

AGORA_LOCAL_DIR="$local_dir" \
AGORA__DATABASE__URL="postgres://postgres@127.0.0.1:$pg_port/agora" \
AGORA__REDIS__URL="redis://127.0.0.1:$redis_port" \
AGORA__HTTP__ADDR="127.0.0.1:$http_port" \
    setsid scripts/run.sh >"$log" 2>&1 &
run_pid=$!

ready=""
for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$http_port/ready" >/dev/null 2>&1; then ready=yes; break; fi
    kill -0 "$run_pid" 2>/dev/null || fail "run.sh exited before /ready answered 200"
    sleep 0.2
done
[[ -n $ready ]] || fail "/ready did not answer 200 within 60 s"
answers 127.0.0.1 "$pg_port" || fail "no project-local Postgres on port $pg_port"
answers 127.0.0.1 "$redis_port" || fail "no project-local Redis on port $redis_port"
[[ -f $local_dir/postgres/PG_VERSION ]] || fail "Postgres data is not under $local_dir"
seeded=$(psql "postgres://postgres@127.0.0.1:$pg_port/agora" -Atc "SELECT count(*) FROM sellers")
[[ $seeded -ge 3 ]] || fail "the demo store was not seeded ($seeded sellers)"
grep -q "storefront:       http://127.0.0.1:$http_port/" "$log" || fail "run.sh did not print the storefront's URL"
grep -q "operator console: http://127.0.0.1:$http_port/operator  (token: " "$log" || fail "run.sh did not print the operator console"
curl -fsS "http://127.0.0.1:$http_port/" | grep -q '<html lang=' || fail "the storefront page is not served"

kill -INT -- "-$run_pid"
status=0
for _ in $(seq 1 150); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.2
done
kill -0 "$run_pid" 2>/dev/null && fail "run.sh still runs 30 s after Ctrl-C"
wait "$run_pid" || status=$?
[[ $status -eq 0 ]] || fail "run.sh exited $status after Ctrl-C"
grep -q "stopped cleanly" "$log" || fail "Agora did not stop cleanly"
for port in "$pg_port" "$redis_port" "$http_port"; do
    answers 127.0.0.1 "$port" && fail "port $port still answers after Ctrl-C"
done
run_pid=""
echo "quickstart: 1 passed, 0 failed"
