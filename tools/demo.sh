#!/usr/bin/env bash
# `make demo`: runs examples/text-pipeline through `asya up` (in the background), sends three
# documents plus one bad input, shows the results and `asya get actors`, then stops the mesh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ASYA_BIN_DIR:-$ROOT/build/bin}
ASYA="$BIN/asya"
STATE=$(mktemp -d /tmp/asya-demo-XXXXXX)
export ASYA_STATE_DIR="$STATE"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then  # bold headings on a terminal only
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi
stop() { "$ASYA" down >/dev/null 2>&1 || true; }
trap stop EXIT

say "asya up examples/text-pipeline/manifests --detach   (state: $STATE)"
"$ASYA" up "$ROOT/examples/text-pipeline/manifests" --detach

say "waiting for the actors to start"
for _ in $(seq 1 100); do
  if "$ASYA" get actors -o json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
sys.exit(0 if all(r["running"] == r["desired"] for r in rows) else 1)'; then break; fi
  sleep 0.2
done
"$ASYA" get actors

ROUTE=normalize,split,sentiment,triage
say "asya send $ROUTE ...   (3 documents, 7 sentences)"
"$ASYA" send $ROUTE '{"text": "The staff were friendly and helpful. Delivery was fast!", "source": "review-1"}'
"$ASYA" send $ROUTE '{"text": "The kettle arrived broken.   Support was rude and the refund is late.", "source": "review-2"}'
"$ASYA" send $ROUTE '{"text": "Great tea. I love it. Not bad at all.", "source": "review-3"}'

say "asya send $ROUTE '{\"oops\": true}' --wait   (bad input: fails in normalize)"
"$ASYA" send $ROUTE '{"oops": true}' --wait --timeout 30 >/dev/null || echo "exit code $? (1 = failed, as expected)"

say "waiting for 7 sentences to reach happy-end (negative ones go through 'review', which wakes up from 0 replicas)"
for _ in $(seq 1 300); do
  n=$(find "$STATE/results" -name '*.json' | wc -l)
  [ "$n" -ge 7 ] && break
  sleep 0.1
done

say "results ($STATE/results/<timestamp>/<last actor>/<id>.json)"
python3 - "$STATE" <<'PY'
import json, os, sys
state = sys.argv[1]
rows = []
for kind in ("results", "errors"):
    for dirpath, _, files in os.walk(os.path.join(state, kind)):
        for f in files:
            env = json.load(open(os.path.join(dirpath, f)))
            rows.append((kind, os.path.basename(dirpath), env))
for kind, last, env in sorted(rows, key=lambda r: (r[0], str(r[2]["payload"].get("source")), r[2]["payload"].get("index", 0) if isinstance(r[2]["payload"], dict) else 0)):
    p = env["payload"]
    if kind == "errors":
        print("  error-end  last=%-9s %s: %s" % (last, p.get("error"), (p.get("details") or {}).get("message")))
    else:
        flag = "  -> review" if p.get("needs_review") else ""
        print("  happy-end  last=%-9s [%-8s %+d] %s%s" % (last, p["label"], p["score"], p["sentence"], flag))
PY

say "asya get actors -o wide"
"$ASYA" get actors -o wide

say "asya describe actor review"
"$ASYA" describe actor review | sed -n '1,12p'

say "asya down"
"$ASYA" down
trap - EXIT
echo "state kept in $STATE (logs: asya logs ACTOR --state-dir $STATE)"
