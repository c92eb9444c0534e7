#!/usr/bin/env bash
# Containers demo (part 3, run by engine-demo.sh while its daemon is up): a detached busybox web
# server on a network of its own (its port published on the host, its name resolved by another container)
# and a one-shot container through `dockyard`; ps, logs, exec, inspect; a named volume that outlives the
# containers writing and reading it; then clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
. demo/lib.sh
DOCKYARD="$PWD/.venv/bin/dockyard"
dockyard() { step "dockyard $*"; "$DOCKYARD" "$@"; }

www=$(mktemp -d)
cleanup() {
    "$DOCKYARD" rm -f demo-web >/dev/null 2>&1 || true
    "$DOCKYARD" network rm demo-net >/dev/null 2>&1 || true
    "$DOCKYARD" volume rm -f demo-data >/dev/null 2>&1 || true
    rm -rf "$www"
}
trap cleanup EXIT
echo "hello from a dockyard container" > "$www/index.html"

echo
echo "== Part 3: containers, through the dockyard CLI"
dockyard run --rm busybox sh -c 'echo "one-shot: $(hostname) sees $(ls /proc | grep -c "^[0-9]") process(es)"'
dockyard network create demo-net
dockyard run -d --name demo-web --network demo-net -p 127.0.0.1::80 -v "$www:/www:ro" --memory 32m --pids-limit 20 \
    busybox httpd -f -v -p 80 -h /www
dockyard ps
dockyard port demo-web 80
port=$("$DOCKYARD" port demo-web 80 | head -1 | sed 's/.*://')
step "busybox wget -qO- http://127.0.0.1:$port/   # from the host, through the published port"
busybox wget -qO- "http://127.0.0.1:$port/"
dockyard run --rm --network demo-net busybox wget -qO- http://demo-web/
dockyard logs demo-web
dockyard inspect --format '{{.State.Status}} pid {{.State.Pid}}, hostname {{.Config.Hostname}}, memory {{.HostConfig.Memory}}' demo-web
dockyard exec demo-web cat /sys/fs/cgroup/pids/pids.max
dockyard stop -t 1 demo-web
dockyard ps -a --filter name=demo-web
dockyard rm demo-web
dockyard network rm demo-net
dockyard volume create demo-data
dockyard run --rm -v demo-data:/data busybox sh -c 'echo "written by $(hostname)" > /data/note'
dockyard run --rm -v demo-data:/data:ro busybox cat /data/note
dockyard volume ls
dockyard volume rm demo-data
