#!/usr/bin/env bash
# smoke-mesh.sh — a two-actor mesh from the images build-local.sh made, on a throw-away local
# RabbitMQ, laid out as the operator lays out a pod: per actor, the asya-sidecar image and the
# runtime image (each its own root filesystem, its own USER 65532) share only the socket directory
# /var/run/asya (bind-mounted into both, as the emptyDir `socket-dir` is).
#
#   text-processor: asya-sidecar:dev + asya-example-handler:dev (python3 /opt/asya/asya_runtime.py)
#   happy-end:      asya-sidecar:dev + asya-crew:dev            (asya-crew /opt/asya/asya_runtime.py)
#
# One envelope with route [text-processor] is published to asya-text-processor; the test passes
# when happy-end's crew has stored it with the handler's result ("words": 3).
# Needs root, buildah, rabbitmq-server (Debian), build/release/bin/asya (to publish), and the images
# (deploy/images/build-local.sh [--prebuilt] sidecar crew python).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${ASYA_IMAGES_WORK:-/var/tmp/asya-images}/mesh
read -r -a BH <<< "${BUILDAH_FLAGS:---storage-driver vfs}"
bh() { buildah "${BH[@]}" "$@"; }
asya=${ASYA_BIN:-build/release/bin/asya}
[ -x "$asya" ] || { echo "smoke-mesh: $asya missing (make build)" >&2; exit 1; }
command -v rabbitmq-server >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(free_port); M=$(free_port)
rm -rf "$work"; mkdir -p "$work"/{rmq/mnesia,rmq/log,rmq/home,sock}

# --- a throw-away broker on loopback (guest/guest) ---
cat > "$work/rmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$P
management.tcp.ip = 127.0.0.1
management.tcp.port = $M
log.console = true
log.console.level = warning
log.file = false
EOF
echo "[rabbitmq_management]." > "$work/rmq/enabled_plugins"
: > "$work/rmq/rabbitmq-env.conf"
rmq_env=(HOME="$work/rmq/home" RABBITMQ_NODENAME="rmq$P@localhost" RABBITMQ_CONF_ENV_FILE="$work/rmq/rabbitmq-env.conf"
  RABBITMQ_CONFIG_FILE="$work/rmq/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$work/rmq/enabled_plugins"
  RABBITMQ_MNESIA_BASE="$work/rmq/mnesia" RABBITMQ_LOG_BASE="$work/rmq/log" RABBITMQ_PID_FILE="$work/rmq/rabbit.pid"
  RABBITMQ_DIST_PORT="$(free_port)" ERL_EPMD_ADDRESS=127.0.0.1 ERL_CRASH_DUMP="$work/rmq/erl_crash.dump")
pids=(); ctrs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for c in "${ctrs[@]}"; do bh umount "$c" >/dev/null 2>&1 || true; bh rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
# The real server script (the /usr/sbin wrapper switches to the rabbitmq user); under
# RUNNING_UNDER_SYSTEMD it execs the VM, so $! is the broker itself.
env "${rmq_env[@]}" RUNNING_UNDER_SYSTEMD=true /usr/lib/rabbitmq/bin/rabbitmq-server \
  > "$work/rmq/console.log" 2>&1 < /dev/null &
pids+=($!)
mgmt() { curl -sf -u guest:guest "http://127.0.0.1:$M/api/$1"; }
for _ in $(seq 600); do mgmt overview >/dev/null && break; sleep 0.2; done
mgmt overview >/dev/null || { echo "FAIL: broker did not start" >&2; tail -n 30 "$work/rmq/console.log" >&2; exit 1; }
echo "smoke-mesh: RabbitMQ on 127.0.0.1:$P"

mesh_env=(ASYA_TRANSPORT=rabbitmq ASYA_RABBITMQ_HOST=127.0.0.1 ASYA_RABBITMQ_PORT="$P"
  ASYA_RABBITMQ_USERNAME=guest ASYA_RABBITMQ_PASSWORD=guest)

# start_container IMAGE ACTOR LOG ENV... -- ARGV...: the image's rootfs with the actor's socket dir
# bound at /var/run/asya, run as the image's USER with a clean environment.
start_container() {
  local image=$1 actor=$2 log=$3; shift 3
  local envs=() c m user
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  c=$(bh from -q "$image"); ctrs+=("$c")
  m=$(bh mount "$c")
  user=$(bh inspect --format '{{.OCIv1.Config.User}}' "$c")
  # /var/run is a symlink to /run in Debian-based images: resolve it inside the rootfs, as runc does.
  local sockdir="$m/var/run/asya" l
  if [ -L "$m/var/run" ]; then
    l=$(readlink "$m/var/run"); case $l in /*) sockdir="$m$l/asya" ;; *) sockdir="$m/var/$l/asya" ;; esac
  fi
  mkdir -p "$work/sock/$actor" "$sockdir" "$m/tmp/store"
  chown 65532:65532 "$m/tmp/store"
  chown 65532:65532 "$work/sock/$actor"
  if [ -f "$m/usr/local/bin/asya-crew" ] || [ -d "$m/app" ]; then   # a runtime: the ConfigMap's script
    mkdir -p "$m/opt/asya"; install -m 0755 src/runtime/python/asya_runtime.py "$m/opt/asya/asya_runtime.py"
  fi
  unshare --mount sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
    "$work/sock/$actor" "$sockdir" env -i PATH=/usr/local/bin:/usr/bin:/bin "${envs[@]}" \
    "$(command -v chroot)" --userspec="$user" "$m" "$@" > "$log" 2>&1 &
  pids+=($!)
  MNT=$m
}
wait_ready() {
  for _ in $(seq 900); do [ -e "$work/sock/$1/runtime-ready" ] && return 0; sleep 0.1; done
  echo "FAIL: runtime of $1 not ready" >&2; cat "$work/$1-runtime.log" >&2; exit 1
}
sidecar_env() {  # what the operator injects (reference-controlplane §2.4) for actor $1
  echo ASYA_ACTOR_NAME="$1" ASYA_SOCKET_DIR=/var/run/asya ASYA_METRICS_ENABLED=false ASYA_QUEUE_AUTO_CREATE=true \
    ASYA_LOG_LEVEL=info "${mesh_env[@]}"
  [ "$1" != happy-end ] || echo ASYA_IS_END_ACTOR=true
}

# happy-end: crew runtime + sidecar
start_container localhost/asya-crew:dev happy-end "$work/happy-end-runtime.log" \
  ASYA_SOCKET_DIR=/var/run/asya ASYA_HANDLER_MODE=envelope ASYA_CREW_DIR=/tmp/store ASYA_CREW_PREFIX=results/ \
  -- /usr/local/bin/asya-crew /opt/asya/asya_runtime.py
crew_root=$MNT
wait_ready happy-end
# shellcheck disable=SC2046
start_container localhost/asya-sidecar:dev happy-end "$work/happy-end-sidecar.log" $(sidecar_env happy-end) \
  -- /usr/local/bin/asya-sidecar

# text-processor: example handler image + sidecar
start_container localhost/asya-example-handler:dev text-processor "$work/text-processor-runtime.log" \
  ASYA_SOCKET_DIR=/var/run/asya ASYA_HANDLER=processor.TextProcessor.process PYTHONPATH=/app HOME=/app \
  -- python3 /opt/asya/asya_runtime.py
wait_ready text-processor
# shellcheck disable=SC2046
start_container localhost/asya-sidecar:dev text-processor "$work/text-processor-sidecar.log" $(sidecar_env text-processor) \
  -- /usr/local/bin/asya-sidecar

# Wait until both sidecars consume (their queues exist), then publish one envelope.
for q in asya-text-processor asya-happy-end; do
  for _ in $(seq 100); do
    n=$(mgmt "queues/%2F/$q" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("consumers",0))' 2>/dev/null || echo 0)
    [ "${n:-0}" -gt 0 ] && break
    sleep 0.2
  done
done
env "${mesh_env[@]}" "$asya" queue publish asya-text-processor \
  '{"id":"mesh-1","route":{"actors":["text-processor"],"current":0},"payload":{"text":"Hello Big World"}}'

stored=""
for _ in $(seq 600); do
  stored=$(find "$crew_root/tmp/store/results" -name 'mesh-1.json' 2>/dev/null | head -n 1)
  [ -n "$stored" ] && break
  sleep 0.2
done
if [ -z "$stored" ]; then
  echo "FAIL: happy-end stored nothing" >&2
  tail -n 20 "$work"/*.log >&2
  exit 1
fi
echo "smoke-mesh: happy-end stored ${stored#"$crew_root"}:"
cat "$stored"; echo
grep -q '"words": *3' "$stored" || { echo "FAIL: the handler's result is not in the stored envelope" >&2; exit 1; }
echo "smoke-mesh: OK (asya-sidecar, asya-example-handler, asya-crew images; RabbitMQ)"
