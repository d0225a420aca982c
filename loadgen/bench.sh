#!/usr/bin/env bash
# One benchmark, start to finish: build (release), create a fresh Postgres
# database, start the server pinned to core 0 (with Postgres), run the load
# generator pinned to core 1, stop the server and drop the database.
#
#   loadgen/bench.sh chat --chats 500 --messages 20 --think-ms 0
#   loadgen/bench.sh chat --chats 500 --messages 30 --think-ms 1000
#   loadgen/bench.sh idle --connections 10000 --hold-secs 10
#   loadgen/bench.sh burst --customers 1000 --agents 500
#   loadgen/bench.sh resume --missed 10,100,1000 --repeats 5
#
# Environment: PG (postgres://postgres@127.0.0.1:5432), SERVER_CORE (0),
# LOADGEN_CORE (1), PIN_POSTGRES (1: pin Postgres to SERVER_CORE for the
# run, restored after), ROUTING_MODE (auto), DB_POOL_SIZE (16),
# CARGO_TARGET_DIR (target), SERVER_BIN (the server binary to run instead of
# the one just built: A/B comparisons in one sitting), WEBHOOK_EVENTS (e.g.
# MESSAGE_CREATED: one webhook endpoint subscribed to these, comma-separated,
# delivering to loadgen/webhook_sink.py on WEBHOOK_SINK_PORT, 18090). Any
# other server setting may be exported too.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:?usage: loadgen/bench.sh chat|idle|burst|resume|baseline [loadgen options]}
shift

PG=${PG:-postgres://postgres@127.0.0.1:5432}
SERVER_CORE=${SERVER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
PIN_POSTGRES=${PIN_POSTGRES:-1}
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p switchboard -p switchboard-loadgen
server_bin=${SERVER_BIN:-$target_dir/release/switchboard}
loadgen_bin="$target_dir/release/switchboard-loadgen"

# 10,000 idle connections need as many file descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

db="sbbench_$(date +%s)_$$"
psql "$PG/postgres" -qAtc "CREATE DATABASE $db"
data_dir=$(mktemp -d)
server_pid=""
pg_pids=""

sink_pid=""
cleanup() {
  if [ -n "$sink_pid" ]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_pids" ]; then
    # Give Postgres every core back.
    for p in $pg_pids; do taskset -a -cp "0-$(($(nproc) - 1))" "$p" >/dev/null 2>&1 || true; done
  fi
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

if [ "$PIN_POSTGRES" = 1 ]; then
  # The postmaster and its running children; new backends fork from the
  # postmaster and inherit its affinity.
  pg_data=$(psql "$PG/postgres" -qAtc "SHOW data_directory")
  postmaster=$(head -1 "$pg_data/postmaster.pid" 2>/dev/null || true)
  if [ -n "$postmaster" ]; then
    pg_pids="$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
    for p in $pg_pids; do taskset -a -cp "$SERVER_CORE" "$p" >/dev/null 2>&1 || true; done
  else
    echo "bench: cannot read $pg_data/postmaster.pid; Postgres is not pinned" >&2
  fi
fi

secret="bench-secret-$(date +%s)-0123456789"
port=${PORT:-18080}
export DATABASE_URL="$PG/$db"
export LISTEN_ADDR="127.0.0.1:$port"
export JWT_SECRET="$secret"
export DATA_DIR="$data_dir"
# Load settings: one client address plays thousands of users.
export ROUTING_MODE=${ROUTING_MODE:-auto}
export DB_POOL_SIZE=${DB_POOL_SIZE:-16}
export MESSAGE_RATE_PER_SEC=${MESSAGE_RATE_PER_SEC:-100000}
export MESSAGE_BURST=${MESSAGE_BURST:-100000}
export IP_SESSION_RATE_PER_MIN=${IP_SESSION_RATE_PER_MIN:-10000000}
export IP_SESSION_BURST=${IP_SESSION_BURST:-10000000}
export IP_MAX_CONNECTIONS=${IP_MAX_CONNECTIONS:-100000}
export RUST_LOG=${RUST_LOG:-warn}
# The benchmark's webhook sink listens on 127.0.0.1.
[ -n "${WEBHOOK_EVENTS:-}" ] && export WEBHOOK_ALLOW_PRIVATE=true

taskset -c "$SERVER_CORE" "$server_bin" serve >"$data_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || {
  echo "bench: server did not start" >&2
  cat "$data_dir/server.log" >&2
  exit 1
}

if [ -n "${WEBHOOK_EVENTS:-}" ]; then
  sink_port=${WEBHOOK_SINK_PORT:-18090}
  taskset -c "$LOADGEN_CORE" python3 loadgen/webhook_sink.py "$sink_port" &
  sink_pid=$!
  admin=$("$server_bin" token --role admin --sub bench-admin)
  events=$(printf '%s' "$WEBHOOK_EVENTS" | sed 's/,/, /g')
  curl -sf "http://127.0.0.1:$port/graphql" -H "authorization: Bearer $admin" \
    -H 'content-type: application/json' \
    -d "{\"query\":\"mutation { createWebhookEndpoint(input: {url: \\\"http://127.0.0.1:$sink_port/hook\\\", events: [$events]}) { endpoint { id } } }\"}" |
    grep -q '"id"' || { echo "bench: could not create the webhook endpoint" >&2; exit 1; }
  echo "# one webhook endpoint subscribed to $WEBHOOK_EVENTS"
fi

echo "# $(date -u +%FT%TZ) $(uptime)"
echo "# server pid $server_pid on core $SERVER_CORE (Postgres pinned: $PIN_POSTGRES); loadgen on core $LOADGEN_CORE"
echo "# ROUTING_MODE=$ROUTING_MODE DB_POOL_SIZE=$DB_POOL_SIZE"
status=0
taskset -c "$LOADGEN_CORE" "$loadgen_bin" "$scenario" \
  --url "http://127.0.0.1:$port" --jwt-secret "$secret" --server-pid "$server_pid" \
  --database-url "$PG/$db" --db-connections "$DB_POOL_SIZE" "$@" || status=$?
echo "# after: $(uptime)"
if grep -qiE "error|panic" "$data_dir/server.log"; then
  echo "# server log (errors):" >&2
  grep -iE "error|panic" "$data_dir/server.log" | head -20 >&2
fi
exit "$status"
