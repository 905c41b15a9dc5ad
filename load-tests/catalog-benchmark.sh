#!/usr/bin/env bash
# Catalog benchmark: a million variants, then listing and search latency for filtered pages
# of 50, measured against a release build of `agora serve`.
#
#   load-tests/catalog-benchmark.sh            # seeds agora_bench once, then measures
#   VARIANTS=200000 CONNECTIONS=4 load-tests/catalog-benchmark.sh
#   PAGES=1 CONNECTIONS=2 load-tests/catalog-benchmark.sh   # the storefront's HTML pages
#
# The database (AGORA_BENCH_DB, default agora_bench) is kept between runs so re-measuring
# skips the minute of seeding; drop it to start over. Postgres and Redis are the ones at
# AGORA__DATABASE__URL / AGORA__REDIS__URL, started project-local where absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh

variants=${VARIANTS:-1000000}
requests=${REQUESTS:-4000}
connections=${CONNECTIONS:-1}
pages=${PAGES:+--pages}
db=${AGORA_BENCH_DB:-agora_bench}
export AGORA__DATABASE__URL
AGORA__DATABASE__URL=$(sed -E "s#^([a-z]+://[^/]+)/[^?]*#\1/$db#" <<<"$AGORA__DATABASE__URL")
trap 'stop_local_services; [[ -n ${server:-} ]] && kill "$server" 2>/dev/null; true' EXIT

cargo build --release --locked --workspace
bin="${CARGO_TARGET_DIR:-target}/release"
start_local_services
"$bin/agora" migrate
seeded=$(psql "$AGORA__DATABASE__URL" -Atc "SELECT count(*) FROM variants")
if [[ $seeded -lt $variants ]]; then
    "$bin/agora-load-tests" seed-catalog --database-url "$AGORA__DATABASE__URL" --variants "$variants" --force
fi

port=$(free_port)
say "starting agora serve on port $port (it rebuilds listing prices after a seed: about a minute)"
AGORA__HTTP__ADDR="127.0.0.1:$port" AGORA__LOG__LEVEL=warn "$bin/agora" serve &
server=$!
for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break
    kill -0 "$server" || { say "agora serve exited"; exit 1; }
    sleep 0.5
done
mkdir -p load-tests/results
report="load-tests/results/catalog${pages:+-pages}-$(date -u +%Y%m%dT%H%M%SZ)-c$connections.json"
# Warm Postgres's and the OS's caches first; only the second run is reported.
"$bin/agora-load-tests" browse --target "http://127.0.0.1:$port" --database-url "$AGORA__DATABASE__URL" \
    --requests 500 --connections "$connections" $pages >/dev/null 2>&1
"$bin/agora-load-tests" browse --target "http://127.0.0.1:$port" --database-url "$AGORA__DATABASE__URL" \
    --requests "$requests" --connections "$connections" $pages --report "$report" >/dev/null
say "report: $report"
