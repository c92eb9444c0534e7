"""cgroup v2: one unified hierarchy.

On-disk tree (a group at cgroup path /dockyard/abc):

    <root>/                       /sys/fs/cgroup (pure v2), /sys/fs/cgroup/unified (hybrid)
      cgroup.controllers          what the host offers
      cgroup.subtree_control      what the children get: create() enables every offered one
      dockyard/
        cgroup.subtree_control    ... at each level down to the group's parent
        abc/                      memory.max, cpu.max, pids.max, io.max, hugetlb.<size>.max,
                                  cgroup.procs, cgroup.freeze, cgroup.events, cgroup.kill, ...

A controller the host does not offer (not in the root's cgroup.controllers)
is skipped without an error.  One the host offers but that could not be
enabled for the group (its parent has processes of its own: the "no
internal processes" rule) is an error, since limits would silently not
hold.  Devices need no controller: the filter is an eBPF program attached
to the group (see devicefilter.py).
"""

from __future__ import annotations

import _signal  # not `signal`: its enums cost start-up time
import errno
import os

from ..errors import EngineError, NotFound, NotSupported, Unavailable
from . import FROZEN, THAWED, V1_ROOT, files, resources, stats
from .base import GroupManager

# Which controller each part of LinuxResources needs.
_NEEDS = {"memory": "memory", "cpu": "cpu", "pids": "pids", "blockIO": "io", "hugepageLimits": "hugetlb",
          "rdma": "rdma"}


class V2Manager(GroupManager):
    """A group at `path` in the unified hierarchy mounted at `root`."""

    def __init__(self, path: str, *, root: str = V1_ROOT):
        self.path = files.group_path(path)
        self.root = root
        self.dir = os.path.join(root, self.path.lstrip("/"))

    def controller_path(self, controller: str) -> str:
        """The group's directory: every controller's files are in the one directory on v2."""
        return self.dir

    def procs_paths(self) -> list[str]:
        return [os.path.join(self.dir, "cgroup.procs")]

    def self_join_paths(self) -> list[str]:
        """v2 has no lock-free way in for a whole process: cgroup.procs it is (see `join_self`)."""
        return self.procs_paths()

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def controllers(self) -> set[str]:
        """The controllers enabled for the group (its cgroup.controllers)."""
        return set((files.read_or(self.dir, "cgroup.controllers") or "").split())

    def host_controllers(self) -> set[str]:
        return set((files.read_or(self.root, "cgroup.controllers") or "").split())

    # --- life cycle ---

    def create(self) -> None:
        if not files.has(self.root, "cgroup.controllers"):
            raise Unavailable(f"no cgroup v2 hierarchy is mounted at {self.root}")
        current = self.root
        for part in self.path.strip("/").split("/"):
            self._enable_controllers(current)
            current = os.path.join(current, part)
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            except OSError as err:
                raise Unavailable(f"cannot create cgroup {current}: {os.strerror(err.errno or 0)}") from err

    @staticmethod
    def _enable_controllers(directory: str) -> None:
        """Offer every controller `directory` has to its children, as runc does.

        All at once first; if the kernel refuses that (a controller busy, or
        the group has processes of its own), one by one, keeping what works.
        apply() reports a controller that is still missing when it is needed.
        """
        offered = (files.read_or(directory, "cgroup.controllers") or "").split()
        enabled = set((files.read_or(directory, "cgroup.subtree_control") or "").split())
        missing = [c for c in offered if c not in enabled]
        if not missing:
            return
        try:
            files.write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
        except EngineError:
            for controller in missing:
                try:
                    files.write(directory, "cgroup.subtree_control", "+" + controller)
                except EngineError:
                    pass

    def add(self, pid: int) -> None:
        files.write(self.dir, "cgroup.procs", str(pid))

    def destroy(self) -> None:
        files.remove_tree(self.dir)

    # --- resources ---

    def apply(self, res) -> None:
        """Set an OCI LinuxResources object; checked whole before anything is written."""
        resources.check(res)
        res = res or {}
        if not os.path.isdir(self.dir):
            raise NotFound(f"cgroup {self.path} does not exist ({self.dir})", hint="create it first")
        have = self.controllers()
        host = self.host_controllers()
        usable = set()
        for key, controller in _NEEDS.items():
            if not res.get(key):
                continue
            if controller in have:
                usable.add(controller)
            elif controller in host:
                raise Unavailable(f"the {controller} controller is not enabled for cgroup {self.path}, "
                                  f"so resources.{key} cannot be applied",
                                  hint="its parent group may hold processes of its own")
        cpu = res.get("cpu") or {}
        if "pids" in usable and res["pids"].get("limit") is not None:
            files.write(self.dir, "pids.max", resources.pids_limit(res["pids"]["limit"]))
        if "memory" in usable:
            self._memory(res["memory"])
        if "io" in usable:
            self._io(res["blockIO"])
        if "cpu" in usable:
            self._cpu(cpu)
        if (cpu.get("cpus") or cpu.get("mems")) and "cpuset" in have:
            for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
                if cpu.get(key):
                    files.write(self.dir, name, cpu[key])
        if "hugetlb" in usable:
            self._hugetlb(res["hugepageLimits"])
        if "rdma" in usable:
            for device, limits in res["rdma"].items():
                line = resources.rdma_line(device, limits)
                if line:
                    files.write(self.dir, "rdma.max", line)
        if res.get("devices"):
            self._devices(res["devices"])
        # Last, so a raw value wins over the one computed from the OCI fields (as with runc).
        self._unified(res.get("unified") or {}, have)

    def _memory(self, memory: dict) -> None:
        limit = memory.get("limit") or 0
        swap = resources.v2_swap(memory.get("swap") or 0, limit)
        # v2 has no memsw: memory.swap.max is swap alone, and the two are
        # independent, so no write order can be refused.
        if swap is not None and files.has(self.dir, "memory.swap.max"):
            files.write(self.dir, "memory.swap.max", swap)
        if limit:
            files.write(self.dir, "memory.max", resources.v2_limit(limit))
        if memory.get("reservation"):
            files.write(self.dir, "memory.low", resources.v2_limit(memory["reservation"]))
        # swappiness and disableOOMKiller have no v2 file; kernel/kernelTCP are ignored on v1 too.

    def _cpu(self, cpu: dict) -> None:
        if cpu.get("shares") and files.has(self.dir, "cpu.weight"):
            files.write(self.dir, "cpu.weight", str(resources.shares_to_weight(cpu["shares"])))
        value = resources.cpu_max(cpu.get("quota") or 0, cpu.get("period") or 0)
        if value is not None:
            files.write(self.dir, "cpu.max", value)
        if cpu.get("burst") is not None and files.has(self.dir, "cpu.max.burst"):
            files.write(self.dir, "cpu.max.burst", str(cpu["burst"]))
        if cpu.get("idle") is not None and files.has(self.dir, "cpu.idle"):
            files.write(self.dir, "cpu.idle", str(cpu["idle"]))
        # realtimeRuntime/realtimePeriod: v2 has no real-time group scheduling files.

    def _io(self, block_io: dict) -> None:
        bfq = files.has(self.dir, "io.bfq.weight")
        if block_io.get("weight"):
            # BFQ takes blkio's own range; io.weight has a wider one.
            if bfq:
                files.write(self.dir, "io.bfq.weight", str(block_io["weight"]))
            elif files.has(self.dir, "io.weight"):
                files.write(self.dir, "io.weight", str(resources.blkio_weight_to_io_weight(block_io["weight"])))
        for entry in block_io.get("weightDevice") or []:
            if not entry.get("weight"):
                continue
            device = f"{entry['major']}:{entry['minor']}"
            if bfq:
                files.write(self.dir, "io.bfq.weight", f"{device} {entry['weight']}")
            elif files.has(self.dir, "io.weight"):
                files.write(self.dir, "io.weight",
                            f"{device} {resources.blkio_weight_to_io_weight(entry['weight'])}")
        for key, (_, field) in resources.throttle_files().items():
            for entry in block_io.get(key) or []:
                files.write(self.dir, "io.max", f"{entry['major']}:{entry['minor']} {field}={entry['rate']}")

    def _hugetlb(self, limits: list) -> None:
        for entry in limits:
            size = entry["pageSize"]
            name = f"hugetlb.{size}.max"
            if not files.has(self.dir, name):
                raise NotSupported(f"hugepage size {size} is not supported on this host "
                                   f"(sizes: {', '.join(files.hugepage_sizes(self.dir, 'max')) or 'none'})")
            files.write(self.dir, name, str(entry["limit"]))
            if files.has(self.dir, f"hugetlb.{size}.rsvd.max"):
                files.write(self.dir, f"hugetlb.{size}.rsvd.max", str(entry["limit"]))

    def _devices(self, devices: list) -> None:
        from . import devicefilter

        state = resources.emulate(resources.device_rules(devices))
        try:
            devicefilter.install(self.dir, state)
        except OSError as err:
            kind = NotSupported if err.errno in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP) else Unavailable
            raise kind(f"cannot install the device filter on cgroup {self.path}: {err}") from err

    def _unified(self, unified: dict, have: set) -> None:
        for key, value in unified.items():
            controller = key.split(".", 1)[0]
            if not files.has(self.dir, key):
                if controller != "cgroup" and controller not in have:
                    raise NotSupported(f"unified resource {key!r} cannot be set: "
                                       f"controller {controller!r} is not available")
                raise NotFound(f"unified resource {key!r} cannot be set: no such file in {self.dir}")
            # Multi-line values (io.max for several devices) are one write per line.
            for line in value.splitlines() or [value]:
                files.write(self.dir, key, line)

    # --- freezer ---

    def can_freeze(self) -> bool:
        return files.has(self.dir, "cgroup.freeze")

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        if not os.path.isdir(self.dir):
            raise NotFound(f"cgroup {self.path} does not exist ({self.dir})")
        if not self.can_freeze():
            raise NotSupported("this kernel has no cgroup v2 freezer (cgroup.freeze, Linux 5.2): cannot pause")
        files.write(self.dir, "cgroup.freeze", "1" if frozen else "0")
        want = 1 if frozen else 0
        files.wait_for(lambda: self._events().get("frozen", want) == want,
                       f"cgroup {self.path} to {'freeze' if frozen else 'thaw'}")

    def _events(self) -> dict:
        return stats.flat_keyed(files.read_or(self.dir, "cgroup.events", ""))

    def state(self) -> str:
        """FROZEN once freezing is asked for (cgroup.freeze is 1), THAWED otherwise."""
        return FROZEN if files.read_or(self.dir, "cgroup.freeze") == "1" else THAWED

    # --- processes and statistics ---

    def pids(self) -> list[int]:
        return files.read_pids(self.dir)

    def kill_all(self, signum: int) -> list[int]:
        """SIGKILL through cgroup.kill where the kernel has it (5.14): atomic, nothing escapes."""
        if signum == _signal.SIGKILL and files.has(self.dir, "cgroup.kill"):
            pids = self.pids()
            files.write(self.dir, "cgroup.kill", "1")
            return pids
        return super().kill_all(signum)

    def stats(self) -> dict:
        """Docker's stats shapes (v2 flavour: no per-cpu usage)."""
        host = stats.host()
        out = {"memory_stats": {}, "cpu_stats": {}, "pids_stats": {}, "blkio_stats": {}}
        if not os.path.isdir(self.dir):
            return out
        if files.has(self.dir, "memory.current"):
            out["memory_stats"] = {
                "usage": files.read_int(self.dir, "memory.current", 0),
                "limit": stats.clamp_limit(files.read_int(self.dir, "memory.max"), host["memory_total"]),
                "stats": stats.flat_keyed(files.read_or(self.dir, "memory.stat", "")),
            }
            peak = files.read_int(self.dir, "memory.peak")
            if peak is not None:
                out["memory_stats"]["max_usage"] = peak
        # cpu.stat's usage lines are there even without the cpu controller.
        cpu_stat = stats.flat_keyed(files.read_or(self.dir, "cpu.stat", ""))
        out["cpu_stats"] = {
            "cpu_usage": {"total_usage": cpu_stat.get("usage_usec", 0) * 1000,
                          "usage_in_kernelmode": cpu_stat.get("system_usec", 0) * 1000,
                          "usage_in_usermode": cpu_stat.get("user_usec", 0) * 1000},
            "system_cpu_usage": host["system_cpu_usage"],
            "online_cpus": host["online_cpus"],
            "throttling_data": {"periods": cpu_stat.get("nr_periods", 0),
                                "throttled_periods": cpu_stat.get("nr_throttled", 0),
                                "throttled_time": cpu_stat.get("throttled_usec", 0) * 1000},
        }
        if files.has(self.dir, "pids.current"):
            out["pids_stats"] = {"current": files.read_int(self.dir, "pids.current", 0)}
            limit = files.read_int(self.dir, "pids.max")
            if limit:
                out["pids_stats"]["limit"] = limit
        else:
            # No pids controller: count the tasks ourselves (pids.current counts threads too).
            out["pids_stats"] = {"current": self._tasks()}
        io_stat = files.read_or(self.dir, "io.stat")
        out["blkio_stats"] = {"io_service_bytes_recursive": stats.io_stat_v2(io_stat or ""),
                              "io_serviced_recursive": stats.io_stat_v2(io_stat or "", "rios", "wios")}
        return out

    def _tasks(self) -> int:
        count = 0
        for dirpath, _dirs, _files in os.walk(self.dir):
            count += len((files.read_or(dirpath, "cgroup.threads") or "").split())
        return count
