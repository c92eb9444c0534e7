"""`dockyard-runtime run` vs `runc run` of the same busybox bundle running `true`.

    sudo .venv/bin/python bench/runtime.py [--runs 30] [--json]

Both runtimes get byte-identical bundles (runc's default spec, `true`, no
terminal) built from the host's busybox-static, each with its own rootfs copy
and its own --root.  Runs alternate (ours, runc, ours, ...) so that machine
noise hits both alike; we report medians and their ratio.  Issue 2's goal:
median ratio <= 2.0.

Also checked: after `create` + `start` return, no process of the runtime
stays resident per container (the container's pid runs the program itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common import timed  # noqa: E402

from dockyard.runtime.spec import default_spec  # noqa: E402
from tests.support.busybox import make_rootfs  # noqa: E402
from tests.support.runtime import RUNTIME  # noqa: E402


def make_bundle(path: str, args: list[str]) -> str:
    make_rootfs(os.path.join(path, "rootfs"))
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f)
    return path


def resident_after_start(roots: str) -> list[str]:
    """Processes of the runtime left once `create` and `start` have returned."""
    bundle = make_bundle(os.path.join(roots, "resident-bundle"), ["sleep", "30"])
    root = os.path.join(roots, "root-resident")
    run = [RUNTIME, "--root", root]
    subprocess.run(run + ["create", "--bundle", bundle, "resident"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(run + ["start", "resident"], check=True)
    try:
        time.sleep(0.2)
        pid = json.loads(subprocess.run(run + ["state", "resident"], capture_output=True, check=True).stdout)["pid"]
        leftovers = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "dockyard-runtime" in cmdline or "dockyard.runtime" in cmdline:
                leftovers.append(f"{entry}: {cmdline}")
        exe = os.readlink(f"/proc/{pid}/exe")
        if not exe.endswith("busybox"):
            leftovers.append(f"container pid {pid} runs {exe}, not the program")
        return leftovers
    finally:
        subprocess.run(run + ["delete", "--force", "resident"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runc = shutil.which("runc")
    work = tempfile.mkdtemp(prefix="dockyard-bench-runtime-")
    # State roots on tmpfs, where both runtimes keep them by default (/run/runc,
    # /run/dockyard-runtime): runc syncs its state file, which costs on a disk.
    roots = tempfile.mkdtemp(prefix="dockyard-bench-runtime-", dir="/run")
    try:
        ours_bundle = make_bundle(os.path.join(work, "ours"), ["true"])
        runc_bundle = make_bundle(os.path.join(work, "runc"), ["true"])
        ours, theirs = [], []
        for i in range(args.runs):
            ours.append(timed([RUNTIME, "--root", os.path.join(roots, "ours"), "run", f"b{i}"], cwd=ours_bundle))
            if runc:
                theirs.append(timed([runc, "--root", os.path.join(roots, "runc"), "run", f"b{i}"], cwd=runc_bundle))
        leftovers = resident_after_start(roots)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(roots, ignore_errors=True)
    result = {"runs": args.runs, "dockyard_run_ms": statistics.median(ours) * 1000}
    if theirs:
        result["runc_run_ms"] = statistics.median(theirs) * 1000
        result["ratio"] = result["dockyard_run_ms"] / result["runc_run_ms"]
    result["resident_after_start"] = leftovers
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"dockyard-runtime run (true): {result['dockyard_run_ms']:.1f} ms median of {args.runs}")
    if theirs:
        print(f"runc run (true):             {result['runc_run_ms']:.1f} ms")
        verdict = "meets" if result["ratio"] <= 2.0 else "misses"
        print(f"ratio:                       {result['ratio']:.2f} ({verdict} the <= 2.0 goal)")
    print("resident runtime processes after create+start:", "none" if not leftovers else leftovers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
