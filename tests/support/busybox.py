"""A busybox root filesystem from the host's busybox-static: the tests' base image."""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX = shutil.which("busybox", path="/bin:/usr/bin:/sbin:/usr/sbin") or "/bin/busybox"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
GROUP = "root:x:0:\ntty:x:5:\nnobody:x:65534:\n"


def applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and a != "busybox"]


def make_rootfs(path: str) -> str:
    """Populate `path` with bin/busybox, a symlink per applet, /etc/passwd and /etc/group."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "usr/bin", "sbin"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in applets():
        link = os.path.join(path, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write(GROUP)
    return path
