"""Driving `dockyard-runtime` (and runc) on bundles made from the busybox rootfs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from dockyard.runtime.spec import default_spec

RUNTIME = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")


def make_bundle(path: str, rootfs_template: str, args: list[str], **changes) -> str:
    """A bundle at `path`: a copy of the template rootfs and runc's default spec, not on a terminal.

    `changes` are applied to the spec: `process=`, `linux=` and `hooks=` entries are
    merged into the default ones, anything else replaces the top-level key.
    """
    os.makedirs(path, exist_ok=True)
    rootfs = os.path.join(path, "rootfs")
    if not os.path.exists(rootfs):
        subprocess.run(["cp", "-a", rootfs_template, rootfs], check=True)
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    spec["root"]["readonly"] = False
    for key, value in changes.items():
        if key in ("process", "linux") and isinstance(value, dict):
            spec[key].update(value)
        else:
            spec[key] = value
    write_spec(path, spec)
    return path


def write_spec(bundle: str, spec: dict) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)


def read_spec(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


class Runtime:
    """One runtime binary with its own --root."""

    def __init__(self, binary: str, root: str):
        self.binary = binary
        self.root = root

    def __call__(self, *args, input=None, timeout=60, check=False, global_args=(), **kw):
        """Run one command; stdout and stderr come back as bytes.

        They go through files, not pipes: a container started by `create` or
        `run -d` keeps the runtime's stdio, and a pipe would never see EOF.
        """
        cmd = [self.binary, "--root", self.root, *global_args, *map(str, args)]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
            with subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, **kw) as p:
                if input is not None:
                    p.stdin.write(input)
                    p.stdin.close()
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    raise
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
        return proc

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).stdout)

    def cleanup(self) -> None:
        """delete --force every container under this root, and the root itself."""
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            self("delete", "--force", cid)
        shutil.rmtree(self.root, ignore_errors=True)


def runc_available() -> bool:
    return shutil.which("runc") is not None
