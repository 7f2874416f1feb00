#!/usr/bin/env bash
# Throw-away RabbitMQ broker for tests and benchmarks: loopback only, its own directory, ports and
# node name, no systemd, works as root. Used by tests/support/rabbitmq_fixture.cc (C++ tests),
# tests/fault/rabbitmq (Python) and bench/rabbitmq/run.sh.
#
#   rabbitmq-test-broker.sh init  DIR PORT [MGMT_PORT]  wipe DIR, write the config (MGMT_PORT 0 = no
#                                                        management plugin)
#   rabbitmq-test-broker.sh run   DIR                   exec the broker in the foreground (the
#                                                        caller's child PID becomes beam.smp)
#   rabbitmq-test-broker.sh start DIR PORT [MGMT_PORT]  init + run in the background + wait;
#                                                        prints the PID (also in DIR/server.pid)
#   rabbitmq-test-broker.sh wait  DIR [TIMEOUT_S]       wait until the AMQP port accepts
#   rabbitmq-test-broker.sh stop  DIR [term|kill]       stop the broker started by `start`
#   rabbitmq-test-broker.sh free-port                   print a free loopback port P in 10000-14999
#                                                        such that P+1, P+2 (management, TLS) and
#                                                        P+20000 (Erlang dist) are free too
#
# Optional TLS: RMQ_TLS_PORT=<port> before init adds an amqps listener there with a throw-away CA
# and server certificate (DNS:localhost, IP:127.0.0.1) generated into DIR/tls (ca.pem for clients).
# `run` keeps DIR (mnesia), so a broker restarted on the same DIR keeps its durable queues.
set -euo pipefail

die() { echo "rabbitmq-test-broker: $*" >&2; exit 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd=${1:-}; shift || true
case "$cmd" in
  init)
    [ $# -ge 2 ] || die "usage: init DIR PORT [MGMT_PORT]"
    D=$1; P=$2; M=${3:-0}
    [ "$P" -lt 15000 ] || die "AMQP port must be < 15000 (PORT+20000 is the Erlang dist port)"
    rm -rf "$D"; mkdir -p "$D"/{mnesia,log,home}
    {
      echo "listeners.tcp.default = 127.0.0.1:$P"
      echo "log.console = true"
      echo "log.console.level = ${RMQ_LOG_LEVEL:-warning}"
      echo "log.file = false"
      echo "collect_statistics_interval = 500"
      if [ "$M" != 0 ]; then
        echo "management.tcp.ip = 127.0.0.1"
        echo "management.tcp.port = $M"
      fi
      if [ -n "${RMQ_TLS_PORT:-}" ]; then
        echo "listeners.ssl.default = 127.0.0.1:$RMQ_TLS_PORT"
        echo "ssl_options.cacertfile = $D/tls/ca.pem"
        echo "ssl_options.certfile = $D/tls/server.pem"
        echo "ssl_options.keyfile = $D/tls/server.key"
        echo "ssl_options.verify = verify_none"
        echo "ssl_options.fail_if_no_peer_cert = false"
      fi
    } > "$D/rabbitmq.conf"
    if [ -n "${RMQ_TLS_PORT:-}" ]; then
      T=$D/tls; mkdir -p "$T"
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=asya-test-ca \
        -keyout "$T/ca.key" -out "$T/ca.pem" >/dev/null 2>&1
      openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
        -keyout "$T/server.key" -out "$T/server.csr" >/dev/null 2>&1
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$T/san.ext"
      openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
        -days 2 -extfile "$T/san.ext" -out "$T/server.pem" >/dev/null 2>&1
      echo "$RMQ_TLS_PORT" > "$D/tls_port"
    fi
    if [ "$M" != 0 ]; then echo '[rabbitmq_management].' > "$D/enabled_plugins"
    else echo '[].' > "$D/enabled_plugins"; fi
    : > "$D/rabbitmq-env.conf"  # shadows /etc/rabbitmq/rabbitmq-env.conf
    cat > "$D/env" <<ENV
export HOME=$D/home
export RABBITMQ_NODENAME=asyatest$P@localhost
export RABBITMQ_CONF_ENV_FILE=$D/rabbitmq-env.conf
export RABBITMQ_CONFIG_FILE=$D/rabbitmq.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$D/enabled_plugins
export RABBITMQ_MNESIA_BASE=$D/mnesia
export RABBITMQ_LOG_BASE=$D/log
export RABBITMQ_PID_FILE=$D/rabbit.pid
export RABBITMQ_DIST_PORT=$((P + 20000))
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_CRASH_DUMP=$D/erl_crash.dump
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
ENV
    echo "$P" > "$D/port"
    ;;
  run)
    [ $# -ge 1 ] || die "usage: run DIR"
    D=$1; [ -f "$D/env" ] || die "$D is not initialised (run init first)"
    # shellcheck disable=SC1091
    . "$D/env"
    cd "$D"
    # /usr/sbin/rabbitmq-server would `su rabbitmq`; the real script runs fine as root and, with
    # RUNNING_UNDER_SYSTEMD=true, execs erl so this PID ends up being beam.smp.
    RUNNING_UNDER_SYSTEMD=true exec /usr/lib/rabbitmq/bin/rabbitmq-server
    ;;
  wait)
    [ $# -ge 1 ] || die "usage: wait DIR [TIMEOUT_S]"
    D=$1; T=${2:-60}; P=$(cat "$D/port"); end=$((SECONDS + T))
    until ! port_free "$P"; do
      [ $SECONDS -lt $end ] || { tail -30 "$D/log/console.log" >&2 || true; die "broker on $P not up after ${T}s"; }
      sleep 0.1
    done
    ;;
  start)
    [ $# -ge 2 ] || die "usage: start DIR PORT [MGMT_PORT]"
    "$0" init "$@"
    D=$1
    setsid "$0" run "$D" > "$D/log/console.log" 2>&1 < /dev/null &
    echo $! > "$D/server.pid"
    "$0" wait "$D" 60
    cat "$D/server.pid"
    ;;
  stop)
    [ $# -ge 1 ] || die "usage: stop DIR [term|kill]"
    D=$1; MODE=${2:-kill}
    PID=$(cat "$D/server.pid" 2>/dev/null) || exit 0
    alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
    if [ "$MODE" = term ]; then kill -TERM "$PID" 2>/dev/null || true; else kill -KILL "$PID" 2>/dev/null || true; fi
    for _ in $(seq 150); do alive "$PID" || exit 0; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    ;;
  free-port)
    for _ in $(seq 200); do
      P=$((10000 + RANDOM % 5000))
      if port_free "$P" && port_free $((P + 20000)) && port_free $((P + 1)) && port_free $((P + 2)); then
        echo "$P"; exit 0
      fi
    done
    die "no free port found"
    ;;
  *)
    sed -n '2,17p' "$0"; exit 2 ;;
esac
