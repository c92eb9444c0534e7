"""Facts about the engine and its host, for `version`, `info` and `system df`.

The service gathers the facts; the API edge (api/routes/system.py) shapes
them into Docker's JSON.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from dockyard.daemon.config import DaemonConfig

# Go's names for machine architectures, which is what Docker clients expect.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True, slots=True)
class HostFacts:
    engine_id: str
    hostname: str
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str       # uname's spelling: x86_64
    goarch: str             # Go's spelling: amd64
    ncpu: int
    mem_total: int
    cgroup_version: str
    python_version: str


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    open_fds: int
    threads: int
    system_time_ns: int


class SystemService:
    def __init__(self, config: DaemonConfig):
        self.config = config
        self.started_ns = time.time_ns()
        self._facts: HostFacts | None = None

    def host(self) -> HostFacts:
        """Facts that do not change while the daemon runs (computed once)."""
        if self._facts is None:
            uname = os.uname()
            os_name, os_version = _os_release()
            self._facts = HostFacts(
                engine_id=self._engine_id(),
                hostname=socket.gethostname(),
                kernel_version=uname.release,
                operating_system=os_name,
                os_version=os_version,
                architecture=uname.machine,
                goarch=_GOARCH.get(uname.machine, uname.machine),
                ncpu=os.cpu_count() or 1,
                mem_total=_mem_total(),
                cgroup_version=_cgroup_version(),
                python_version=platform.python_version(),
            )
        return self._facts

    def runtime(self) -> RuntimeFacts:
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = 0
        return RuntimeFacts(open_fds=fds, threads=threading.active_count(), system_time_ns=time.time_ns())

    def _engine_id(self) -> str:
        """A stable ID for this engine, created on first start and kept in the data root."""
        path = os.path.join(self.config.data_root, "engine-id")
        try:
            with open(path) as f:
                value = f.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        value = str(uuid.uuid4())
        os.makedirs(self.config.data_root, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(value + "\n")
        os.replace(tmp, path)
        return value


def _os_release() -> tuple[str, str]:
    fields: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    key, eq, value = line.strip().partition("=")
                    if eq:
                        fields[key] = value.strip().strip('"')
            break
        except FileNotFoundError:
            continue
    return fields.get("PRETTY_NAME", "Linux"), fields.get("VERSION_ID", "")


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_version() -> str:
    # A pure v2 host mounts cgroup2 at /sys/fs/cgroup itself; hybrid hosts
    # (like the v1 machines we run on) keep v1 controllers there.
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
