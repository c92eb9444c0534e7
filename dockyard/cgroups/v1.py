"""cgroup v1: one hierarchy per controller, each mounted under the root.

On-disk tree (a group at cgroup path /dockyard/abc):

    <root>/                      /sys/fs/cgroup, a tmpfs
      cpu/dockyard/abc/          cpu.shares, cpu.cfs_quota_us, cgroup.procs, ...
      cpuacct/dockyard/abc/      (cpu and cpuacct may be one hierarchy, "cpu,cpuacct",
                                  with the single names as symlinks: handled alike)
      cpuset/dockyard/abc/       cpuset.cpus and cpuset.mems, copied from the parent on create
      memory/ devices/ freezer/ blkio/ pids/ hugetlb/ net_cls/ net_prio/ perf_event/ rdma/ misc/
      systemd/dockyard/abc/      the name=systemd hierarchy: no controller, but engines join it
      unified/dockyard/abc/      the v2 mount of a hybrid host: joined for membership only, as
                                 runc does (0::/dockyard/abc in /proc/PID/cgroup); no resources

A controller whose hierarchy is not mounted is skipped: its resources are
ignored without an error, as runc does.  The group is the same directory
path in every hierarchy; a process is in it once it is in every one's
cgroup.procs.
"""

from __future__ import annotations

import errno
import os

from ..errors import EngineError, InvalidArgument, NotFound, NotSupported, Unavailable
from . import FROZEN, THAWED, V1_ROOT, files, resources, stats
from .base import GroupManager

# The hierarchies a group is made in, in the order runc sets them (cpuset
# first: a task cannot join a cpuset group whose cpus are not set yet).
CONTROLLERS = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "net_cls",
               "net_prio", "perf_event", "freezer", "rdma", "misc", "systemd", "unified")

# Where to list a group's processes: hierarchies every engine puts them in.
_PIDS_FROM = ("pids", "freezer", "devices", "memory", "cpu", "cpuacct", "cpuset", "blkio", "systemd")


def hierarchies(root: str = V1_ROOT) -> dict:
    """{controller: mount directory} for the v1 hierarchies under `root` ("unified": a hybrid host's v2)."""
    found = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return found
    for entry in entries:
        mount = os.path.join(root, entry)
        if not os.path.isdir(mount):
            continue
        for name in entry.split(","):
            name = name.removeprefix("name=")
            if name == "unified" and not os.path.exists(os.path.join(mount, "cgroup.controllers")):
                continue  # only a cgroup2 mount counts
            if name in CONTROLLERS and name not in found:
                found[name] = mount
    return found


class V1Manager(GroupManager):
    """A group at `path` in every v1 hierarchy mounted under `root`."""

    def __init__(self, path: str, *, root: str = V1_ROOT):
        self.path = files.group_path(path)
        self.root = root
        self.mounts = hierarchies(root)

    # --- where things are ---

    def controller_path(self, controller: str):
        """The group's directory in `controller`'s hierarchy, or None when it is not mounted."""
        mount = self.mounts.get(controller)
        return os.path.join(mount, self.path.lstrip("/")) if mount else None

    def _dirs(self) -> list[str]:
        """One directory per hierarchy (co-mounted controllers share one), in CONTROLLERS order."""
        seen, out = set(), []
        for controller in CONTROLLERS:
            mount = self.mounts.get(controller)
            if mount is None:
                continue
            real = os.path.realpath(mount)
            if real not in seen:
                seen.add(real)
                out.append(self.controller_path(controller))
        return out

    def procs_paths(self) -> list[str]:
        """Every cgroup.procs file of the group: a pid written to each is in the group."""
        return [os.path.join(d, "cgroup.procs") for d in self._dirs()]

    def self_join_paths(self) -> list[str]:
        """Files a single-threaded process writes "0" to, to move itself in (see `join_self`).

        v1's per-thread `tasks` interface, which moving oneself through does
        without the kernel's global threadgroup lock.  A hybrid host's v2
        hierarchy is left out: it holds no controller the group uses (its
        membership is bookkeeping), and joining it through cgroup.procs would
        wait for an RCU grace period.
        """
        unified = self.controller_path("unified")
        return [os.path.join(d, "tasks") for d in self._dirs() if d != unified]

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    # --- life cycle ---

    def create(self) -> None:
        if not self.mounts:
            raise Unavailable(f"no cgroup v1 hierarchy is mounted under {self.root}")
        cpuset = self.controller_path("cpuset")
        for directory in self._dirs():
            try:
                if directory == cpuset:
                    self._create_cpuset()
                else:
                    os.makedirs(directory, exist_ok=True)
            except OSError as err:
                raise Unavailable(f"cannot create cgroup {directory}: {os.strerror(err.errno or 0)}") from err

    def _create_cpuset(self) -> None:
        # A new cpuset group starts with empty cpus and mems, and the kernel
        # refuses tasks until both are set: copy them down from the parent at
        # every level we create.
        current = self.mounts["cpuset"]
        for part in self.path.strip("/").split("/"):
            parent, current = current, os.path.join(current, part)
            os.makedirs(current, exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if files.has(current, name) and not files.read_or(current, name):
                    files.write(current, name, files.read_or(parent, name, ""))

    def add(self, pid: int) -> None:
        for directory in self._dirs():
            files.write(directory, "cgroup.procs", str(pid))

    def destroy(self) -> None:
        for directory in self._dirs():
            files.remove_tree(directory)

    # --- resources ---

    def apply(self, res) -> None:
        """Set an OCI LinuxResources object; checked whole before anything is written."""
        resources.check(res)
        res = res or {}
        if res.get("unified"):
            raise NotSupported("invalid configuration: cannot use unified resources on cgroup v1",
                               hint="resources.unified names cgroup v2 files; this host's groups are v1")
        self._need_group()
        self._cpuset(res.get("cpu") or {})
        self._devices(res.get("devices") or [])
        self._memory(res.get("memory") or {})
        self._cpu(res.get("cpu") or {})
        self._pids(res.get("pids") or {})
        self._block_io(res.get("blockIO") or {})
        self._hugetlb(res.get("hugepageLimits") or [])
        self._network(res.get("network") or {})
        self._rdma(res.get("rdma") or {})

    def _need_group(self) -> None:
        missing = [d for d in self._dirs() if not os.path.isdir(d)]
        if missing:
            raise NotFound(f"cgroup {self.path} does not exist ({missing[0]})", hint="create it first")

    def _cpuset(self, cpu: dict) -> None:
        d = self.controller_path("cpuset")
        if d is None:
            return
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                files.write(d, name, cpu[key])

    def _devices(self, devices: list) -> None:
        d = self.controller_path("devices")
        if d is None or not devices:
            return
        rules = resources.device_rules(devices)
        listed = files.read_or(d, "devices.list")
        current = resources.parse_devices_list(listed) if listed is not None else None
        for name, line in resources.v1_device_writes(rules, current):
            files.write(d, name, line)

    def _memory(self, memory: dict) -> None:
        d = self.controller_path("memory")
        if d is None or not memory:
            return
        limit = memory.get("limit") or 0
        swap = memory.get("swap") or 0
        has_swap = files.has(d, "memory.memsw.limit_in_bytes")
        if not has_swap:
            swap = 0  # no swap accounting on this host: memory+swap cannot be limited
        elif limit == -1 and not swap:
            swap = -1  # unlimited memory with swap unset: lift both, or memsw would stay below it
        steps = [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", swap)]
        if limit and swap:
            # The kernel wants memsw >= limit at every moment: raise memsw first
            # when it grows past the current limit, otherwise lower the limit first.
            current = files.read_int(d, "memory.limit_in_bytes")
            if swap == -1 or current is None or current < swap:
                steps.reverse()
        for name, value in steps:
            if value:
                self._write_memory(d, name, value)
        if memory.get("reservation"):
            self._write_memory(d, "memory.soft_limit_in_bytes", memory["reservation"])
        if memory.get("swappiness") is not None and files.has(d, "memory.swappiness"):
            files.write(d, "memory.swappiness", str(memory["swappiness"]))
        if memory.get("disableOOMKiller") and files.has(d, "memory.oom_control"):
            files.write(d, "memory.oom_control", "1")
        # kernel and kernelTCP (kmem limits) are ignored: deprecated, refused by kernels since 5.16.

    def _write_memory(self, d: str, name: str, value: int) -> None:
        try:
            files.write(d, name, resources.v1_limit(value))
        except EngineError as err:
            if getattr(err, "errno", None) != errno.EBUSY:
                raise
            usage = files.read_int(d, "memory.usage_in_bytes", 0)
            peak = files.read_int(d, "memory.max_usage_in_bytes", 0)
            raise files.refused(os.path.join(d, name), str(value), OSError(errno.EBUSY, ""),
                                detail=f"the group already uses {usage} bytes (peak {peak})") from None

    def _cpu(self, cpu: dict) -> None:
        d = self.controller_path("cpu")
        if d is None or not cpu:
            return
        # A real-time runtime is checked against the period: period first.
        if cpu.get("realtimePeriod") and files.has(d, "cpu.rt_period_us"):
            files.write(d, "cpu.rt_period_us", str(cpu["realtimePeriod"]))
        if cpu.get("realtimeRuntime") and files.has(d, "cpu.rt_runtime_us"):
            files.write(d, "cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))
        if cpu.get("shares"):
            files.write(d, "cpu.shares", str(cpu["shares"]))
            got = files.read_int(d, "cpu.shares")
            if got is not None and got != cpu["shares"]:
                bound = "maximum" if cpu["shares"] > got else "minimum"
                raise InvalidArgument(f"the {bound} allowed cpu-shares is {got} (asked for {cpu['shares']})")
        quota = cpu.get("quota") or 0
        # The kernel checks quota/period against the parent at each write, so
        # a new period (or burst) can be refused until the new quota is in:
        # retry those once after it.
        retry = []
        for key, name in (("period", "cpu.cfs_period_us"), ("burst", "cpu.cfs_burst_us")):
            if cpu.get(key) is None or (key == "period" and not cpu[key]) or not files.has(d, name):
                continue
            try:
                files.write(d, name, str(cpu[key]))
            except EngineError as err:
                if getattr(err, "errno", None) != errno.EINVAL or not quota:
                    raise
                retry.append((name, str(cpu[key])))
        if quota:
            files.write(d, "cpu.cfs_quota_us", str(quota))
        for name, value in retry:
            files.write(d, name, value)
        if cpu.get("idle") is not None and files.has(d, "cpu.idle"):
            files.write(d, "cpu.idle", str(cpu["idle"]))

    def _pids(self, pids: dict) -> None:
        d = self.controller_path("pids")
        if d is not None and pids.get("limit") is not None:
            files.write(d, "pids.max", resources.pids_limit(pids["limit"]))

    def _block_io(self, block_io: dict) -> None:
        d = self.controller_path("blkio")
        if d is None or not block_io:
            return
        # With CFQ gone, BFQ's files are the only weights newer kernels have.
        weight_file = next((n for n in ("blkio.weight", "blkio.bfq.weight") if files.has(d, n)), None)
        device_file = next((n for n in ("blkio.weight_device", "blkio.bfq.weight_device") if files.has(d, n)), None)
        if block_io.get("weight") and weight_file:
            files.write(d, weight_file, str(block_io["weight"]))
        if block_io.get("leafWeight") and files.has(d, "blkio.leaf_weight"):
            files.write(d, "blkio.leaf_weight", str(block_io["leafWeight"]))
        for entry in block_io.get("weightDevice") or []:
            device = f"{entry['major']}:{entry['minor']}"
            if entry.get("weight") and device_file:
                files.write(d, device_file, f"{device} {entry['weight']}")
            if entry.get("leafWeight") and files.has(d, "blkio.leaf_weight_device"):
                files.write(d, "blkio.leaf_weight_device", f"{device} {entry['leafWeight']}")
        for key, (name, _) in resources.throttle_files().items():
            for entry in block_io.get(key) or []:
                if files.has(d, name):
                    files.write(d, name, f"{entry['major']}:{entry['minor']} {entry['rate']}")

    def _hugetlb(self, limits: list) -> None:
        d = self.controller_path("hugetlb")
        if d is None:
            return
        for entry in limits:
            size = entry["pageSize"]
            name = f"hugetlb.{size}.limit_in_bytes"
            if not files.has(d, name):
                raise NotSupported(f"hugepage size {size} is not supported on this host "
                                   f"(sizes: {', '.join(files.hugepage_sizes(d, 'limit_in_bytes')) or 'none'})")
            files.write(d, name, str(entry["limit"]))
            if files.has(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
                files.write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", str(entry["limit"]))

    def _network(self, network: dict) -> None:
        d = self.controller_path("net_cls")
        if d is not None and network.get("classID") is not None:
            files.write(d, "net_cls.classid", str(network["classID"]))
        d = self.controller_path("net_prio")
        if d is not None:
            for prio in network.get("priorities") or []:
                files.write(d, "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}")

    def _rdma(self, rdma: dict) -> None:
        d = self.controller_path("rdma")
        if d is None:
            return
        for device, limits in rdma.items():
            line = resources.rdma_line(device, limits)
            if line:
                files.write(d, "rdma.max", line)

    # --- freezer ---

    def can_freeze(self) -> bool:
        d = self.controller_path("freezer")
        return d is not None and files.has(d, "freezer.state")

    def freeze(self) -> None:
        d = self._freezer()
        files.write(d, "freezer.state", "FROZEN")
        tries = 0

        def settled() -> bool:
            # A task stuck in an uninterruptible sleep can keep the group
            # FREEZING; asking again (after a brief thaw now and then, as
            # runc does) lets it through.
            nonlocal tries
            tries += 1
            if files.read_or(d, "freezer.state") == "FROZEN":
                return True
            if tries % 50 == 0:
                files.write(d, "freezer.state", "THAWED")
            files.write(d, "freezer.state", "FROZEN")
            return False

        try:
            files.wait_for(settled, f"cgroup {self.path} to freeze")
        except Unavailable:
            files.write(d, "freezer.state", "THAWED")
            raise

    def thaw(self) -> None:
        d = self._freezer()
        files.write(d, "freezer.state", "THAWED")
        files.wait_for(lambda: files.read_or(d, "freezer.state") == "THAWED", f"cgroup {self.path} to thaw")

    def state(self) -> str:
        """FROZEN while the group is frozen or being frozen, THAWED otherwise (or without a freezer)."""
        d = self.controller_path("freezer")
        value = files.read_or(d, "freezer.state") if d else None
        return FROZEN if value in ("FROZEN", "FREEZING") else THAWED

    def _freezer(self) -> str:
        d = self.controller_path("freezer")
        if d is None:
            raise NotSupported("the freezer cgroup is not mounted on this host: cannot pause")
        if not os.path.isdir(d):
            raise NotFound(f"cgroup {self.path} does not exist ({d})")
        if not files.has(d, "freezer.state"):
            raise NotSupported(f"{d} has no freezer.state: cannot pause")
        return d

    # --- processes and statistics ---

    def pids(self) -> list[int]:
        for controller in _PIDS_FROM:
            d = self.controller_path(controller)
            if d is not None:
                return files.read_pids(d)
        dirs = self._dirs()
        return files.read_pids(dirs[0]) if dirs else []

    def stats(self) -> dict:
        """Docker's stats shapes: memory_stats, cpu_stats, pids_stats, blkio_stats."""
        host = stats.host()
        out = {"memory_stats": {}, "cpu_stats": {}, "pids_stats": {}, "blkio_stats": {}}
        d = self.controller_path("memory")
        if d and os.path.isdir(d):
            out["memory_stats"] = {
                "usage": files.read_int(d, "memory.usage_in_bytes", 0),
                "max_usage": files.read_int(d, "memory.max_usage_in_bytes", 0),
                "failcnt": files.read_int(d, "memory.failcnt", 0),
                "limit": stats.clamp_limit(files.read_int(d, "memory.limit_in_bytes"), host["memory_total"]),
                "stats": stats.flat_keyed(files.read_or(d, "memory.stat", "")),
            }
        usage = {"total_usage": 0, "percpu_usage": [], "usage_in_kernelmode": 0, "usage_in_usermode": 0}
        d = self.controller_path("cpuacct")
        if d and os.path.isdir(d):
            ticks = stats.flat_keyed(files.read_or(d, "cpuacct.stat", ""))
            hz = os.sysconf("SC_CLK_TCK")
            usage = {
                "total_usage": files.read_int(d, "cpuacct.usage", 0),
                "percpu_usage": stats.percpu(files.read_or(d, "cpuacct.usage_percpu", "")),
                "usage_in_kernelmode": ticks.get("system", 0) * stats.NANOS // hz,
                "usage_in_usermode": ticks.get("user", 0) * stats.NANOS // hz,
            }
        throttling = {}
        d = self.controller_path("cpu")
        if d and os.path.isdir(d):
            cpu_stat = stats.flat_keyed(files.read_or(d, "cpu.stat", ""))
            throttling = {"periods": cpu_stat.get("nr_periods", 0),
                          "throttled_periods": cpu_stat.get("nr_throttled", 0),
                          "throttled_time": cpu_stat.get("throttled_time", 0)}
        out["cpu_stats"] = {"cpu_usage": usage, "system_cpu_usage": host["system_cpu_usage"],
                            "online_cpus": host["online_cpus"], "throttling_data": throttling}
        d = self.controller_path("pids")
        if d and os.path.isdir(d):
            out["pids_stats"] = {"current": files.read_int(d, "pids.current", 0)}
            limit = files.read_int(d, "pids.max")
            if limit:
                out["pids_stats"]["limit"] = limit
        d = self.controller_path("blkio")
        if d and os.path.isdir(d):
            out["blkio_stats"] = {key: self._blkio_entries(d, key) for key in _BLKIO_FILES}
        return out

    @staticmethod
    def _blkio_entries(d: str, key: str) -> list:
        # CFQ kept these counters in blkio.*; without it only the throttle
        # layer (which sees every device) and BFQ count.
        name = _BLKIO_FILES[key]
        for prefix in ("blkio.", "blkio.throttle.", "blkio.bfq."):
            text = files.read_or(d, f"{prefix}{name}")
            if text is not None:
                return stats.blkio_v1(text)
        return []


# Docker's blkio_stats keys and the v1 files they come from.
_BLKIO_FILES = {
    "io_service_bytes_recursive": "io_service_bytes_recursive",
    "io_serviced_recursive": "io_serviced_recursive",
    "io_queue_recursive": "io_queued_recursive",
    "io_service_time_recursive": "io_service_time_recursive",
    "io_wait_time_recursive": "io_wait_time_recursive",
    "io_merged_recursive": "io_merged_recursive",
    "io_time_recursive": "time_recursive",
    "sectors_recursive": "sectors_recursive",
}

