#!/usr/bin/env bash
# Idle WebSockets across several `agora serve` processes (one store: same Postgres and Redis):
# PROCESSES servers on ports 18080.., one `ws-bench` client per server from its own loopback
# address, SOCKETS each, all held open together; prints the sockets established at once and
# each server's memory per connection. Needs release builds (cargo build --release --workspace).
set -euo pipefail
PROCESSES=${PROCESSES:-6}
SOCKETS=${SOCKETS:-16700}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/agora_ws}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
OUT=${OUT:-$(mktemp -d)}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"

servers=()
clients=()
cleanup() { kill "${clients[@]}" "${servers[@]}" 2>/dev/null || true; }
trap cleanup EXIT
for ((i = 0; i < PROCESSES; i++)); do
  AGORA__DATABASE__URL=$DATABASE_URL AGORA__HTTP__ADDR=127.0.0.1:$((18080 + i)) \
  AGORA__HTTP__MAX_CONNECTIONS_PER_WORKER=200000 AGORA__DATABASE__MAX_CONNECTIONS=4 \
  AGORA__LOG__LEVEL=warn "$BIN/agora" serve >"$OUT/server-$i.log" 2>&1 &
  servers+=($!)
done
sleep 6
for ((i = 0; i < PROCESSES; i++)); do
  "$BIN/agora-load-tests" ws-bench --target "http://127.0.0.1:$((18080 + i))" --sockets "$SOCKETS" \
    --subscribers 0 --changes 0 --hold-secs 60 --sources "127.0.0.$((i + 2))" \
    --server-pid "${servers[$i]}" --report "$OUT/client-$i.json" >/dev/null 2>"$OUT/client-$i.log" &
  clients+=($!)
done
peak=0
while kill -0 "${clients[@]}" 2>/dev/null; do
  sleep 5
  now=$(ss -tn state established "( sport >= :18080 and sport < :$((18080 + PROCESSES)) )" | tail -n +2 | wc -l)
  ((now > peak)) && peak=$now
done
wait "${clients[@]}" || true
echo "established at once (peak): $peak"
for ((i = 0; i < PROCESSES; i++)); do
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"server {sys.argv[2]}: {r['sockets_open']} open, {r['connect_failures']} failed ({r['connect_retries']} retried connects), {r['server_kib_per_connection']:.2f} KiB per connection\")" "$OUT/client-$i.json" "$i"
done
