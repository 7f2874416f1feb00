# Sourced by bench/gateway/run.sh and profile.sh: a work directory removed at exit with every
# process in PIDS, and a throw-away PostgreSQL (fsync=off, synchronous_commit=off, as the test
# fixture) with databases gw and base, and the benchmark's tools config.
#   bench_pg_start PREFIX [postgres -c options...]  -> WORK, PGPORT, PG (URL), POSTMASTER (pid)
#   bench_tools_yaml                                -> $WORK/tools.yaml (one tool, no consumer)
#   bench_gateway_start PREFIX                      -> GWPORT, GWPID (database gw, sqlite queues;
#                                                      IO_THREADS sets ASYA_GATEWAY_IO_THREADS)
WORK="" PIDS=()
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # PIDS holds runuser's pid, not the postmaster's; SIGINT is PostgreSQL's fast shutdown.
  [ -z "${POSTMASTER:-}" ] || kill -INT "$POSTMASTER" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -z "$WORK" ] || rm -rf "$WORK"
}
trap bench_cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bench_pg_start() {
  local prefix=$1
  shift
  PGBIN=${ASYA_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [ -x "$PGBIN/postgres" ] || { echo "$prefix: no PostgreSQL server binaries (tools/install-deps.sh)"; exit 1; }
  WORK=$(mktemp -d "/tmp/asya-$prefix-XXXXXX")
  chmod 755 "$WORK"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
  as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
  PGPORT=$(free_port)
  as_pg "$PGBIN/postgres" -D "$WORK/pg/data" -c listen_addresses=127.0.0.1 -c port="$PGPORT" \
    -c unix_socket_directories="$WORK/pg" -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=200 "$@" >"$WORK/pg.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.05; done
  PG=postgresql://postgres@127.0.0.1:$PGPORT
  POSTMASTER=$(head -1 "$WORK/pg/data/postmaster.pid")  # the last PID may be runuser's
  psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE gw" -c "CREATE DATABASE base" >/dev/null
}
bench_tools_yaml() {
  cat >"$WORK/tools.yaml" <<'YAML'
tools:
  - name: bench_echo
    description: benchmark tool; its queue has no consumer
    route: [bench-sink]
    timeout: 3600
    progress: true
    task_support: optional
    parameters:
      x: {type: integer}
YAML
}
bench_gateway_start() {
  GWPORT=$(free_port)
  if [ -n "${IO_THREADS:-}" ]; then export ASYA_GATEWAY_IO_THREADS=$IO_THREADS; fi
  ASYA_DATABASE_URL=$PG/gw ASYA_CONFIG_PATH=$WORK/tools.yaml ASYA_TRANSPORT=sqlite \
    ASYA_SQLITE_PATH=$WORK/gw-queues.db ASYA_GATEWAY_PORT=$GWPORT ASYA_GATEWAY_TOKEN=bench-callback \
    ASYA_LOG_LEVEL=warn setsid "$BIN/asya-gateway" >"$WORK/gateway.log" 2>&1 </dev/null &
  GWPID=$!
  PIDS+=($GWPID)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$GWPORT/health" >/dev/null && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$GWPORT/health" >/dev/null || { echo "$1: gateway did not start"; cat "$WORK/gateway.log"; exit 1; }
}
