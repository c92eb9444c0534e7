#!/usr/bin/env bash
# `make demo`: Dockyard doing its main job for real.
#   Part 1: dockyard-runtime, the OCI runtime, runs a busybox container and
#           shows what isolates and limits it.
#   Part 2: the engine (dockyardd) and its images, through the dockyard CLI.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "the demo needs root (namespaces, mounts and cgroups)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
. demo/lib.sh
RUNTIME="$PWD/.venv/bin/dockyard-runtime"
PY="$PWD/.venv/bin/python"
rt() { step "dockyard-runtime $*"; "$RUNTIME" "$@"; }

work=$(mktemp -d)
trap '"$RUNTIME" delete --force demo-sleeper >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "== Part 1: dockyard-runtime runs an OCI bundle"
bundle="$work/bundle"
make_busybox_rootfs "$bundle/rootfs"
rt spec --bundle "$bundle"
# Adjust runc's default spec: no terminal, a hostname of its own, limits.
"$PY" - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["hostname"] = "dockyard-demo"
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c", """
echo "hostname:        $(hostname)"
echo "my pid:          $$"
echo "processes:       $(ps -o pid,comm | tail -n +2 | tr -s ' ' | tr '\\n' ';')"
echo "network links:   $(ip -o link | cut -d: -f2 | tr -d ' ' | tr '\\n' ' ')"
echo "memory limit:    $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max) bytes"
echo "pids limit:      $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "capabilities:    $(grep CapEff /proc/self/status | cut -f2)"
echo "root filesystem: $(touch /x 2>&1 || true)"
"""]
spec["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
spec["linux"]["resources"]["pids"] = {"limit": 64}
json.dump(spec, open(path, "w"), indent=2)
PY
echo "host hostname is $(hostname); host pid of this shell is $$"
rt run --bundle "$bundle" demo-once

# The lifecycle managers use: create, start, state, exec, kill, delete.
"$PY" - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["sleep", "300"]
json.dump(spec, open(path, "w"), indent=2)
PY
rt create --bundle "$bundle" --pid-file "$work/pid" demo-sleeper
echo "(pid file: $(cat "$work/pid"))"
rt state demo-sleeper; echo
rt start demo-sleeper
rt exec demo-sleeper ps -o pid,comm
rt list
rt kill demo-sleeper KILL
sleep 0.2
rt delete demo-sleeper
rt --version

echo
exec demo/engine-demo.sh
