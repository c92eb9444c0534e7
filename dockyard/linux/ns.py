"""Namespaces: unshare(2) and setns(2)."""

from __future__ import annotations

import os

from .flags import CloneFlag
from .syscall import call, libc

# The order in which a process must join or create namespaces: the user
# namespace first (it owns the others), the mount namespace last among the
# ones joined by path (joining it changes how later paths resolve).
ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "mount", "time")

KIND_FLAG = {
    "mount": CloneFlag.NEWNS,
    "uts": CloneFlag.NEWUTS,
    "ipc": CloneFlag.NEWIPC,
    "pid": CloneFlag.NEWPID,
    "network": CloneFlag.NEWNET,
    "user": CloneFlag.NEWUSER,
    "cgroup": CloneFlag.NEWCGROUP,
    "time": CloneFlag.NEWTIME,
}

# The file under /proc/PID/ns/ for each kind.
KIND_PROC = {
    "mount": "mnt", "uts": "uts", "ipc": "ipc", "pid": "pid", "network": "net",
    "user": "user", "cgroup": "cgroup", "time": "time",
}


def unshare(flags: int) -> None:
    call("unshare", libc.unshare, flags, shown=(), flags=(CloneFlag, flags))


def setns(fd: int, kind: int = 0, path: str = "") -> None:
    """Join the namespace open at `fd`; `path` only names it in errors."""
    call("setns", libc.setns, fd, kind, shown=(path or fd,), flags=(CloneFlag, kind))


def join(path: str, kind: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, kind, path)
    finally:
        os.close(fd)
