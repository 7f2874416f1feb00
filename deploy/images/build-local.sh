#!/usr/bin/env bash
# build-local.sh — build and smoke-test Asya images on a machine with no Docker engine and no
# image registry (only Debian's apt mirror), with Debian's buildah (vfs storage, chroot isolation).
#
# Usage: deploy/images/build-local.sh [--prebuilt|--no-build] [IMAGE...]   IMAGE: sidecar crew cli operator python (default: all)
#   default     runs the whole Containerfile (build stage included) with DEBIAN_IMAGE set to a
#               Debian 12 base made here with debootstrap: slow (apt + a cold compile).
#   --prebuilt  runs only the Containerfile's runtime stage on the binaries in build/release/bin
#               (make build first): the same collect-rootfs.sh, the same LABEL/USER/ENTRYPOINT
#               lines, no compile. Valid because this host is the build stage's Debian 12.
#   python      python-base.Containerfile with PYTHON_IMAGE = the local Debian 12 + Debian's
#               python3 (3.11; stands in for python:3.12-slim), then example-handler/Containerfile
#               FROM it; smoke: asya_runtime.py (placed where the operator's ConfigMap mounts it)
#               serves the example handler, answers one framed request, passes the exec probe.
#   --no-build  only the smoke tests and sizes of the images already built.
# Then every image is smoke-tested: its entrypoint runs as the image's user in a chroot of the
# image's root filesystem (see smoke_* below), and the sizes are printed.
# Env: ASYA_IMAGES_WORK (default /var/tmp/asya-images: debootstrap cache), DEBIAN_MIRROR,
#      BUILDAH_FLAGS (default "--storage-driver vfs"). Needs root (debootstrap, chroot).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${ASYA_IMAGES_WORK:-/var/tmp/asya-images}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a BH <<< "${BUILDAH_FLAGS:---storage-driver vfs}"
base=localhost/asya-base/debian:12
prebuilt=0
nobuild=0
images=()
for a in "$@"; do
  case $a in
    --prebuilt) prebuilt=1 ;;
    --no-build) nobuild=1 ;;
    sidecar|crew|cli|operator|python) images+=("$a") ;;
    *) echo "usage: $0 [--prebuilt|--no-build] [sidecar|crew|cli|operator|python]..." >&2; exit 2 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(sidecar crew cli operator python)
[ "$(id -u)" = 0 ] || { echo "build-local: needs root (debootstrap, chroot)" >&2; exit 1; }
for tool in buildah debootstrap; do
  command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q $tool
done
bh() { buildah "${BH[@]}" "$@"; }
declare -A target=([sidecar]=asya-sidecar [crew]=asya-crew [cli]=asya [operator]=asya-operator
                   [python]=asya-example-handler)
declare -A extra=([crew]="/bin/dash:/bin/sh")   # must match the Containerfile's EXTRA=

make_base() {  # a Debian 12 (minbase) image from the apt mirror: the stand-in for debian:12
  if bh inspect --type image "$base" >/dev/null 2>&1; then return; fi
  if [ ! -x "$work/rootfs/bin/sh" ]; then
    echo "build-local: debootstrap bookworm into $work/rootfs (a few minutes)"
    rm -rf "$work/rootfs"; mkdir -p "$work"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log"
  fi
  local c m
  c=$(bh from scratch)
  m=$(bh mount "$c")
  cp -a "$work/rootfs/." "$m/"
  # The same apt settings as this host (its mirror may serve Release files past Valid-Until).
  echo 'Acquire::Check-Valid-Until "false";' > "$m/etc/apt/apt.conf.d/99asya-local"
  rm -rf "$m/var/cache/apt/archives/"*.deb "$m/var/lib/apt/lists/"*
  bh umount "$c" >/dev/null
  bh config --cmd /bin/bash --label org.opencontainers.image.base.name=debootstrap-bookworm-minbase "$c"
  bh commit -q "$c" "$base" >/dev/null
  bh rm "$c" >/dev/null
}

build_full() {  # the whole Containerfile; the build stage FROM the local Debian 12 image
  bh bud --isolation chroot --layers=false --build-arg DEBIAN_IMAGE="$base" --build-arg BUILD_JOBS="${BUILD_JOBS:-2}" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -f "deploy/images/$1.Containerfile" -t "localhost/${target[$1]}:dev" .
}

pybase=localhost/asya-base/python:3.11
build_python() {  # python-base FROM a local Debian 12 + python3, then the example handler FROM that
  if ! bh inspect --type image "$pybase" >/dev/null 2>&1; then
    local c
    c=$(bh from -q "$base")
    bh run --isolation chroot "$c" -- sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends python3 python3-pip passwd \
      && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED'  # as in python:*-slim
    bh config --cmd python3 "$c"
    bh commit -q "$c" "$pybase" >/dev/null
    bh rm "$c" >/dev/null
  fi
  bh bud --isolation chroot --layers=false --build-arg PYTHON_IMAGE="$pybase" \
    -f deploy/images/python-base.Containerfile -t localhost/asya-python-base:dev deploy/images
  bh bud --isolation chroot --layers=false --build-arg ASYA_PYTHON_BASE=localhost/asya-python-base:dev \
    -f deploy/images/example-handler/Containerfile -t localhost/asya-example-handler:dev deploy/images/example-handler
}

build_prebuilt() {  # the runtime stage only: FROM scratch + collect-rootfs.sh of build/release/bin
  local bin="build/release/bin/${target[$1]}" ctx="$work/ctx-$1"
  [ -x "$bin" ] || { echo "build-local: $bin missing (make build)" >&2; exit 1; }
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$bin" "$ctx/${target[$1]}"
  strip --strip-unneeded "$ctx/${target[$1]}"
  EXTRA="${extra[$1]:-}" sh deploy/images/collect-rootfs.sh "$ctx/rootfs" "$ctx/${target[$1]}"
  if [ "$1" = operator ]; then  # as the Containerfile's build stage does
    mkdir -p "$ctx/rootfs/runtime"
    cp src/runtime/python/asya_runtime.py "$ctx/rootfs/runtime/asya_runtime.py"
  fi
  # Runtime stage of the real Containerfile, with the build stage's output taken from $ctx.
  sed -n '/^FROM scratch/,$p' "deploy/images/$1.Containerfile" \
    | sed 's|^COPY --from=build /rootfs/ /|COPY rootfs/ /|' > "$ctx/Containerfile"
  grep -q '^COPY rootfs/ /' "$ctx/Containerfile"
  bh bud --isolation chroot --layers=false \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -f "$ctx/Containerfile" -t "localhost/${target[$1]}:dev" "$ctx"
}

# --- smoke tests: run the image's own ENTRYPOINT as the image's USER in a chroot of its rootfs ---
c=""; m=""
open_image() {
  c=$(bh from -q "localhost/${target[$1]}:dev")
  m=$(bh mount "$c")
  user=$(bh inspect --format '{{.OCIv1.Config.User}}' "$c")
  entry=$(bh inspect --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$c")
  case $user in [1-9]*:[1-9]*) ;; *) echo "FAIL: $1 user '$user' is not a numeric non-root uid:gid" >&2; exit 1 ;; esac
  echo "smoke $1: user $user, entrypoint $entry"
}
close_image() { bh umount "$c" >/dev/null; bh rm "$c" >/dev/null; }
clean_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)   # callers add vars
in_image() { "${clean_env[@]}" "$@"; }
# Background runs use "${clean_env[@]}" directly, so that $! is the process itself (a backgrounded
# function would be a subshell, and killing it would leave the program running).

smoke_sidecar() {
  open_image sidecar
  set +e
  out=$(in_image chroot --userspec="$user" "$m" $entry 2>&1); rc=$?
  set -e
  echo "  no configuration -> exit $rc: $out"
  [ $rc = 2 ] && grep -q 'ASYA_ACTOR_NAME is required' <<< "$out" || { echo "FAIL: sidecar" >&2; exit 1; }
  # Configured for RabbitMQ with no broker reachable: it must start, parse its configuration, and
  # fail on the connection (TLS/curl/AMQP libraries all load).
  set +e
  out=$(in_image ASYA_ACTOR_NAME=echo ASYA_TRANSPORT=rabbitmq ASYA_RABBITMQ_HOST=127.0.0.1 \
        ASYA_RABBITMQ_PORT=1 ASYA_METRICS_ENABLED=false timeout 20 chroot --userspec="$user" "$m" $entry 2>&1); rc=$?
  set -e
  echo "  rabbitmq at 127.0.0.1:1 -> exit $rc: $(tail -n 2 <<< "$out")"
  [ $rc != 0 ] && [ $rc != 124 ] && [ $rc != 127 ] || { echo "FAIL: sidecar with rabbitmq" >&2; exit 1; }
  close_image
}

smoke_crew() {
  open_image crew
  mkdir -p "$m/tmp/sock" "$m/tmp/store"; chown 65532:65532 "$m/tmp/sock" "$m/tmp/store"
  # As the operator starts it: <pythonExecutable> /opt/asya/asya_runtime.py (the argument is ignored).
  "${clean_env[@]}" ASYA_SOCKET_DIR=/tmp/sock ASYA_CREW_DIR=/tmp/store ASYA_HANDLER_MODE=envelope \
    chroot --userspec="$user" "$m" $entry /opt/asya/asya_runtime.py > "$work/crew.log" 2>&1 &
  local pid=$! ok=0
  for _ in $(seq 100); do [ -e "$m/tmp/sock/runtime-ready" ] && { ok=1; break; }; sleep 0.1; done
  # The operator's exec probe, run inside the image as its user.
  set +e
  in_image chroot --userspec="$user" "$m" sh -c 'test -S /tmp/sock/asya-runtime.sock && test -f /tmp/sock/runtime-ready'
  probe=$?
  set -e
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  echo "  runtime-ready: $ok; probe (sh -c 'test -S ... && test -f ...') exit $probe"
  [ $ok = 1 ] && [ $probe = 0 ] || { echo "FAIL: crew"; cat "$work/crew.log"; exit 1; } >&2
  close_image
}

smoke_python() {
  open_image python
  # Where the operator mounts the ConfigMap `asya-runtime` (subPath asya_runtime.py, read-only).
  install -m 0755 src/runtime/python/asya_runtime.py "$m/opt/asya/asya_runtime.py"
  mkdir -p "$m/tmp/sock"; chown 65532:65532 "$m/tmp/sock"
  local handler cmd
  handler=$(bh inspect --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$c" | sed -n 's/^ASYA_HANDLER=//p')
  cmd=$(bh inspect --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$c")
  echo "  ASYA_HANDLER=$handler, command: $cmd"
  "${clean_env[@]}" ASYA_SOCKET_DIR=/tmp/sock ASYA_HANDLER="$handler" PYTHONPATH=/app HOME=/app \
    chroot --userspec="$user" "$m" sh -c "cd /app && exec $cmd" > "$work/python.log" 2>&1 &
  local pid=$! ok=0
  for _ in $(seq 150); do [ -e "$m/tmp/sock/runtime-ready" ] && { ok=1; break; }; sleep 0.1; done
  set +e
  in_image chroot --userspec="$user" "$m" sh -c 'test -S /tmp/sock/asya-runtime.sock && test -f /tmp/sock/runtime-ready'
  probe=$?
  # One request over the socket protocol (4-byte big-endian length + JSON), from a client inside
  # the image (as a sidecar shares the socket directory; host paths under vfs are too long for AF_UNIX).
  reply=$(in_image chroot --userspec="$user" "$m" python3 - /tmp/sock/asya-runtime.sock <<'PY'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
msg = json.dumps({"id": "e1", "route": {"actors": ["text-processor"], "current": 0},
                  "payload": {"text": "Hello Big World"}}).encode()
s.sendall(struct.pack(">I", len(msg)) + msg)
def read(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk: raise SystemExit("closed")
        b += chunk
    return b
print(read(struct.unpack(">I", read(4))[0]).decode())
PY
)
  set -e
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  echo "  runtime-ready: $ok; probe exit $probe; reply: $reply"
  [ $ok = 1 ] && [ $probe = 0 ] && grep -q '"words": *3' <<< "$reply" || { echo "FAIL: python"; cat "$work/python.log"; exit 1; } >&2
  close_image
}

smoke_operator() {
  open_image operator
  cmp "$m/runtime/asya_runtime.py" src/runtime/python/asya_runtime.py \
    || { echo "FAIL: operator image lacks /runtime/asya_runtime.py" >&2; exit 1; }
  set +e
  out=$(in_image chroot --userspec="$user" "$m" $entry 2>&1); rc=$?
  set -e
  echo "  no configuration -> exit $rc: $out"
  [ $rc = 1 ] && grep -q 'no Kubernetes configuration' <<< "$out" || { echo "FAIL: operator" >&2; exit 1; }
  # Against the fake API server (tests/k8s) on loopback: the operator in the image must become
  # ready and turn an AsyncActor into a Deployment (queue management off: no broker here).
  local fk="$work/fakeapi" hp=18981
  rm -rf "$fk"; mkdir -p "$fk" "$m/tmp"
  PYTHONPATH=tests/k8s python3 -m fakeapi --port 0 --crd deploy/crds/asya.sh_asyncactors.yaml \
    --ready-file "$fk/port" --kubeconfig "$fk/kubeconfig" > "$fk/log" 2>&1 &
  local fpid=$!
  for _ in $(seq 100); do [ -s "$fk/port" ] && break; sleep 0.1; done
  cp "$fk/kubeconfig" "$m/tmp/kubeconfig"; chmod 644 "$m/tmp/kubeconfig"
  "${clean_env[@]}" KUBECONFIG=/tmp/kubeconfig ASYA_HEALTH_ADDR=127.0.0.1:$hp ASYA_METRICS_ADDR=0 \
    ASYA_DISABLE_QUEUE_MANAGEMENT=true \
    ASYA_TRANSPORT_CONFIG='{"transports":{"rabbitmq":{"type":"rabbitmq","config":{"host":"127.0.0.1"}}}}' \
    chroot --userspec="$user" "$m" $entry > "$fk/operator.log" 2>&1 &
  local opid=$!
  local port; port=$(cat "$fk/port")
  local ok=0
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hp/readyz" >/dev/null && { ok=1; break; }; sleep 0.2; done
  cat > "$fk/actor.yaml" <<'YAML'
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: price, namespace: default}
spec:
  transport: rabbitmq
  scaling: {enabled: false}
  workload:
    template:
      spec:
        containers:
          - name: asya-runtime
            image: handler:1
            env: [{name: ASYA_HANDLER, value: handler.process}]
YAML
  KUBECONFIG="$fk/kubeconfig" kubectl apply -f "$fk/actor.yaml" >/dev/null 2>&1 || true
  local made=0
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/apis/apps/v1/namespaces/default/deployments/price" >/dev/null \
      && { made=1; break; }
    sleep 0.2
  done
  kill "$opid" "$fpid" 2>/dev/null; wait "$opid" "$fpid" 2>/dev/null
  echo "  on the fake API server: ready=$ok, Deployment price made=$made"
  [ $ok = 1 ] && [ $made = 1 ] || { echo "FAIL: operator on the fake API server"; tail -n 20 "$fk/operator.log"; } >&2
  [ $ok = 1 ] && [ $made = 1 ] || exit 1
  close_image
}

smoke_cli() {
  open_image cli
  set +e
  out=$(in_image chroot --userspec="$user" "$m" $entry 2>&1); rc=$?
  set -e
  echo "  no arguments -> exit $rc: $(head -n 1 <<< "$out")"
  grep -q '^usage: asya' <<< "$out" || { echo "FAIL: cli" >&2; exit 1; }
  close_image
}

mkdir -p "$work"
[ $prebuilt = 1 ] || [ $nobuild = 1 ] || make_base
[ $prebuilt = 0 ] || [[ ! " ${images[*]} " =~ " python " ]] || make_base
for i in "${images[@]}"; do
  [ $nobuild = 0 ] || break
  if [ "$i" = python ]; then build_python
  elif [ $prebuilt = 1 ]; then build_prebuilt "$i"
  else build_full "$i"; fi
done
for i in "${images[@]}"; do "smoke_$i"; done
echo "sizes (uncompressed):"
for i in "${images[@]}"; do
  bh images --format '{{.Name}}:{{.Tag}} {{.Size}}' "localhost/${target[$i]}:dev"
  if [ "$i" = python ]; then
    bh images --format '{{.Name}}:{{.Tag}} {{.Size}}' localhost/asya-python-base:dev
    echo "$(bh images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$pybase") (stand-in for python:3.12-slim)"
  fi
done
