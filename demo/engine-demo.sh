#!/usr/bin/env bash
# Engine demo: dockyardd serving the Docker Engine API, driven through `dockyard`.
# Builds a busybox root filesystem from Debian's busybox-static, imports it as
# an image, lists and inspects it. The first command starts the daemon by
# itself when none is running (that is part of what is shown); a daemon this
# demo started is stopped again at the end.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "the engine demo needs root (dockyardd manages mounts and cgroups)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
. demo/lib.sh
BIN="$PWD/.venv/bin"
DOCKYARD="$BIN/dockyard"
SOCK=/run/dockyard.sock
PIDFILE=/run/dockyard.pid


dockyard() { step "dockyard $*"; "$DOCKYARD" "$@"; }

work=$(mktemp -d)
started_here=no
# An explicit -H never starts a daemon, so this only asks whether one runs.
if ! "$DOCKYARD" -H "unix://$SOCK" version >/dev/null 2>&1; then
    started_here=yes
fi
cleanup() {
    rm -rf "$work"
    if [ "$started_here" = yes ] && [ -f "$PIDFILE" ]; then
        kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
    fi
}
trap cleanup EXIT

make_busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" --numeric-owner -cf "$work/busybox.tar" .

echo "== Part 2: the engine (dockyardd) and its images, through the dockyard CLI"
dockyard import --change 'CMD ["/bin/sh"]' -m "busybox from Debian's busybox-static" \
    "$work/busybox.tar" busybox:latest
dockyard images
dockyard image inspect --format '{{.Id}} {{json .Config.Cmd}} {{.Os}}/{{.Architecture}} {{.Size}} bytes' busybox
dockyard history busybox
dockyard tag busybox busybox:demo
dockyard images --format 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}'
dockyard rmi busybox:demo
dockyard system df
dockyard events --since 1m --until 0s --filter type=image
dockyard version
demo/containers-demo.sh
demo/registry-demo.sh
if [ "$started_here" = yes ]; then
    echo
    echo "(the demo started dockyardd; it is stopped now — run 'dockyardd' or any dockyard command to start it)"
fi
