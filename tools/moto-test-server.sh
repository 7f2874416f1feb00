#!/usr/bin/env bash
# Start / stop a throw-away moto_server (SQS, STS, S3 on one port) for manual runs and benchmarks.
# The C++ tests start their own (tests/unit/sqs/moto_server.h); this script is for humans.
#
#   tools/moto-test-server.sh start [PORT]   -> prints "PORT PID"; endpoint http://127.0.0.1:PORT
#   tools/moto-test-server.sh stop PID
#
# Then e.g.: ASYA_TRANSPORT=sqs ASYA_SQS_ENDPOINT=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=test \
#            AWS_SECRET_ACCESS_KEY=test build/bin/asya queue list
set -euo pipefail

case "${1:-}" in
  start)
    port="${2:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    log="/tmp/asya-moto-${port}.log"
    setsid moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 300); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$port $pid"
        exit 0
      fi
      kill -0 "$pid" 2>/dev/null || { echo "moto_server exited; see $log" >&2; exit 1; }
      sleep 0.1
    done
    echo "moto_server did not listen on $port within 30 s; see $log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
  stop)
    pid="${2:?usage: $0 stop PID}"
    kill "$pid" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 start [PORT] | stop PID" >&2
    exit 2
    ;;
esac
