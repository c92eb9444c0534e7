#!/usr/bin/env bash
# Registry demo (part 4, run by engine-demo.sh while its daemon is up): Dockyard's own registry server
# on loopback; the busybox image pushed to it, removed, pulled back and run.
set -euo pipefail
cd "$(dirname "$0")/.."
. demo/lib.sh
BIN="$PWD/.venv/bin"
DOCKYARD="$BIN/dockyard"
dockyard() { step "dockyard $*"; "$DOCKYARD" "$@"; }

root=$(mktemp -d)
log="$root/registry.log"
"$BIN/dockyard-registry" serve --addr 127.0.0.1:0 --root "$root/data" 2>"$log" &
registry=$!
cleanup() {
    kill -TERM "$registry" 2>/dev/null || true
    wait "$registry" 2>/dev/null || true
    "$DOCKYARD" rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$root"
}
image=""
trap cleanup EXIT
for _ in $(seq 50); do
    addr=$(sed -n 's|.*serving http://\([0-9.:]*\) .*|\1|p' "$log")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "the registry did not start:" >&2; cat "$log" >&2; exit 1; }
image="$addr/demo/busybox:1"

echo
echo "== Part 4: images through a registry (dockyard-registry on $addr)"
dockyard tag busybox "$image"
dockyard push "$image"
dockyard rmi "$image"
dockyard pull "$image"
dockyard run --rm "$image" echo "ran from an image pulled from $addr"
