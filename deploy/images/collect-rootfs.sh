#!/bin/sh
# collect-rootfs.sh DEST BINARY... — lay out a minimal ("distroless-style") root filesystem in DEST:
# each BINARY under /usr/local/bin, exactly the shared libraries `ldd` resolves for them (plus the
# dynamic loader), the CA bundle for TLS (SQS, S3, Kubernetes API), a nonroot user 65532, an
# nsswitch.conf and a sticky /tmp. Used by the build stage of every Containerfile here (the
# runtime stage is FROM scratch + this tree) and by build-local.sh. POSIX sh, Debian 12 tools.
# Extra files: set EXTRA="SRC:DEST SRC:DEST" (e.g. /bin/dash:/bin/sh for images that need a shell).
set -eu
dest=$1; shift
[ "$#" -ge 1 ] || { echo "usage: collect-rootfs.sh DEST BINARY..." >&2; exit 2; }
mkdir -p "$dest/usr/local/bin" "$dest/etc" "$dest/tmp" "$dest/etc/ssl/certs"
chmod 1777 "$dest/tmp"

copy_lib() {  # copy $1 to the same path in DEST (the resolved file under the soname's name)
  mkdir -p "$dest$(dirname "$1")"
  cp -L "$1" "$dest$1"
}
libs_of() {  # every absolute path ldd prints for $1 (libraries and the loader); fails if one is missing
  out=$(ldd "$1") || { echo "collect-rootfs: ldd failed for $1" >&2; exit 1; }
  if echo "$out" | grep -q 'not found'; then
    echo "collect-rootfs: unresolved library for $1:" >&2; echo "$out" | grep 'not found' >&2; exit 1
  fi
  echo "$out" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}'
}

for bin in "$@"; do
  cp "$bin" "$dest/usr/local/bin/$(basename "$bin")"
  for lib in $(libs_of "$bin"); do copy_lib "$lib"; done
done
for pair in ${EXTRA:-}; do
  src=${pair%%:*}; to=${pair#*:}
  mkdir -p "$dest$(dirname "$to")"
  cp -L "$src" "$dest$to"
  if [ -x "$src" ]; then for lib in $(libs_of "$src"); do copy_lib "$lib"; done; fi
done
# /lib64/ld-linux-x86-64.so.2 is a symlink on Debian (usrmerge); cp -L made it a regular file.

if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
fi
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$dest/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dest/etc/nsswitch.conf"
mkdir -p "$dest/home/nonroot"
chown 65532:65532 "$dest/home/nonroot" 2>/dev/null || true
