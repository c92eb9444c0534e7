"""Control groups: one `Manager` protocol over the v1 and v2 hierarchies.

Vocabulary:
  cgroup path – the group's path relative to a hierarchy's root, absolute in form,
                as OCI's `linux.cgroupsPath` gives it (`/docker/<id>`, `/libpod_parent/libpod-<id>`).
  resources   – an OCI runtime-spec `LinuxResources` object, as parsed JSON (camelCase keys:
                `memory.limit`, `cpu.shares`, `pids.limit`, `devices`, `blockIO.weight`…).
  v1          – one hierarchy per controller under /sys/fs/cgroup/<controller>.
  v2          – one unified hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).

`open_manager(path)` picks the implementation for this host: v1 wherever v1
controllers are mounted (hybrid hosts included, as runc does), v2 on a pure
v2 host.  Tests can pass `root=` to point a manager at another mount.

Both `V1Manager` and `V2Manager` implement `Manager` (protocol.py: create,
add, apply, update, freeze, thaw, state, pids, kill_all, stats, exists,
destroy, procs_paths, path).  Modules:
  v1, v2        – the managers
  resources     – pure checks and conversions of OCI resources, the device-rule model
  devicefilter  – v2 device rules as an eBPF program (loaded through linux.bpf)
  stats         – parsers for statistics files, Docker's stats shapes
  files         – control-file reads and writes with errors naming file and value
"""

from __future__ import annotations

import os

V1_ROOT = "/sys/fs/cgroup"


class FreezerState:
    """What `Manager.state()` returns; FROZEN is what a runtime reports as "paused".

    Plain strings, not an enum: `enum` costs milliseconds of import time on
    the runtime's start-up path.
    """

    FROZEN = "frozen"
    THAWED = "thawed"


FROZEN = FreezerState.FROZEN
THAWED = FreezerState.THAWED


def __getattr__(name: str):
    # The protocol needs `typing`; load it only for whoever asks (start-up time).
    if name == "Manager":
        from .protocol import Manager

        return Manager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def join_self(paths: list[str]) -> None:
    """Move the calling, single-threaded process into a group: "0" to each of `paths`.

    Why a process moves itself (the runtime's bridge and init do): moving a
    *whole process* through cgroup.procs takes the kernel's global threadgroup
    rwsem for writing, and the first such move after a quiet spell waits for
    an RCU grace period (5-20 ms on the machines we measure), holding the
    cgroup mutex all the while.  A thread moving itself through v1's `tasks`
    file needs no such lock; for a single-threaded process that moves the
    process.  `Manager.self_join_paths()` gives the files.
    """
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def mode(root: str = V1_ROOT) -> str:
    """'v2' when `root` is a pure cgroup2 mount, 'v1' otherwise (hybrid counts as v1)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    return "v1"


def open_manager(path: str, *, root: str = V1_ROOT, systemd: bool = False):
    """The cgroup manager for `path` on this host (see the module docstring).

    `systemd=True` is refused with runc's message where systemd is not running.
    """
    from ..errors import NotSupported

    if systemd and not os.path.isdir("/run/systemd/system"):
        raise NotSupported("systemd not running on this host, cannot use systemd cgroups manager")
    if mode(root) == "v2":
        from .v2 import V2Manager

        return V2Manager(path, root=root)
    from .v1 import V1Manager

    return V1Manager(path, root=root)
