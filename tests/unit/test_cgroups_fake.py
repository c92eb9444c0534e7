"""The v1 and v2 managers over fake hierarchies of plain files: resources -> file writes.

A fake tree holds the control files a kernel would show, with typical
contents.  Every write goes through `files.write`, recorded here in order,
so the tests see exactly which file got which value and when.  A few kernel
reactions are simulated where a manager waits on them (cgroup.events after
cgroup.freeze) or must handle a refusal (EBUSY, EINVAL).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess

import pytest

from dockyard.cgroups import FROZEN, THAWED, files, open_manager
from dockyard.cgroups.v1 import V1Manager
from dockyard.cgroups.v2 import V2Manager
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported, Unavailable

GROUP = "/dockyard/abc"

V1_FILES = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0", "cpu.idle": "0",
            "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n"},
    "cpuacct": {"cpuacct.usage": "5000", "cpuacct.usage_percpu": "3000 2000 \n",
                "cpuacct.stat": "user 30\nsystem 20\n"},
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712", "memory.soft_limit_in_bytes": "0",
               "memory.swappiness": "60", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",
               "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192", "memory.failcnt": "1",
               "memory.stat": "cache 10\nrss 20\n", "memory.kmem.limit_in_bytes": "0"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 50\nTotal 150\n",
              "blkio.throttle.io_serviced_recursive": "8:0 Read 2\n8:0 Write 1\nTotal 3\n"},
    "pids": {"pids.max": "max", "pids.current": "3"},
    "systemd": {},
}

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma"
V2_FILES = {
    "cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": "", "cgroup.procs": "",
    "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.kill": "", "cgroup.threads": "",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpu.stat": "usage_usec 7\nuser_usec 4\nsystem_usec 3\nnr_periods 1\nnr_throttled 1\nthrottled_usec 2\n",
    "cpuset.cpus": "", "cpuset.mems": "",
    "memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
    "memory.peak": "8192", "memory.stat": "anon 10\nfile 20\n",
    "pids.max": "max", "pids.current": "2",
    "io.weight": "default 100", "io.max": "", "io.stat": "8:0 rbytes=100 wbytes=50 rios=2 wios=1\n",
    "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.1GB.max": "max",
    "rdma.max": "",
}


def fill(directory, contents: dict) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, text in contents.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


class Recorder:
    """Wraps files.write: records (path relative to the root, value) and plays a few kernel rules."""

    def __init__(self, root, real_write):
        self.root = str(root)
        self.real_write = real_write
        self.writes: list[tuple[str, str]] = []
        self.refuse: dict[str, int] = {}  # relative path -> errno, refused once

    def __call__(self, directory, name, value):
        path = os.path.relpath(os.path.join(directory, name), self.root)
        self.writes.append((path, value))
        if path in self.refuse:
            err = self.refuse.pop(path)
            raise files.refused(os.path.join(directory, name), value, OSError(err, os.strerror(err)))
        self.real_write(directory, name, value)
        if name == "cgroup.freeze":  # the kernel settles at once in a fake tree
            fill(directory, {"cgroup.events": f"populated 1\nfrozen {value}\n"})

    def to(self, suffix):
        """The values written to files ending in `suffix`, in order."""
        return [v for p, v in self.writes if p.endswith(suffix)]


@pytest.fixture
def rec(tmp_path, monkeypatch):
    recorder = Recorder(tmp_path, files.write)
    monkeypatch.setattr(files, "write", recorder)
    return recorder


def fake_v1(tmp_path, controllers=tuple(V1_FILES), create=True, **overrides) -> V1Manager:
    for controller in controllers:
        mount = tmp_path / controller
        fill(mount, {"cgroup.procs": ""})
        if controller == "cpuset":
            fill(mount, {"cpuset.cpus": "0-1", "cpuset.mems": "0"})
        if create:
            contents = {"cgroup.procs": "", **V1_FILES[controller], **overrides.get(controller, {})}
            fill(mount / GROUP.lstrip("/"), contents)
    return V1Manager(GROUP, root=str(tmp_path))


def fake_v2(tmp_path, create=True, **overrides) -> V2Manager:
    fill(tmp_path, {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": "", "cgroup.procs": ""})
    if create:
        fill(tmp_path / "dockyard", {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": ""})
        fill(tmp_path / GROUP.lstrip("/"), {**V2_FILES, **overrides})
    return V2Manager(GROUP, root=str(tmp_path))


def read(tmp_path, controller_path):
    return (tmp_path / controller_path).read_text()


# --- choosing a manager ---

def test_open_manager_picks_v1_on_hybrid_and_v2_on_pure_trees(tmp_path):
    fake_v1(tmp_path, create=False)
    fill(tmp_path / "unified", {"cgroup.controllers": ""})
    manager = open_manager(GROUP, root=str(tmp_path))
    assert isinstance(manager, V1Manager) and "unified" in manager.mounts
    pure = tmp_path / "pure"
    fill(pure, {"cgroup.controllers": "memory"})
    assert isinstance(open_manager(GROUP, root=str(pure)), V2Manager)


def test_open_manager_systemd_without_systemd_fails_like_runc(tmp_path):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this host runs systemd")
    with pytest.raises(NotSupported, match="systemd not running on this host, cannot use systemd cgroups manager"):
        open_manager(GROUP, root=str(tmp_path), systemd=True)


@pytest.mark.parametrize("cls", [V1Manager, V2Manager])
def test_managers_require_a_path(cls, tmp_path):
    with pytest.raises(InvalidArgument, match="a cgroup path is required"):
        cls("", root=str(tmp_path))
    assert cls("rel/x", root=str(tmp_path)).path == "/rel/x"


# --- v1 ---

def test_v1_finds_hierarchies_and_co_mounted_ones(tmp_path):
    fill(tmp_path / "cpu,cpuacct", {})
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    fill(tmp_path / "memory", {})
    fill(tmp_path / "elsewhere", {})
    m = V1Manager(GROUP, root=str(tmp_path))
    assert set(m.mounts) == {"cpu", "cpuacct", "memory"}
    assert m.procs_paths() == [str(tmp_path / "memory/dockyard/abc/cgroup.procs"),
                               str(tmp_path / "cpu/dockyard/abc/cgroup.procs")]
    fill(tmp_path / "unified", {})  # not a cgroup2 mount
    assert "unified" not in V1Manager(GROUP, root=str(tmp_path)).mounts
    # a hybrid host's v2 mount is joined too, last, for membership only (as runc does)
    fill(tmp_path / "unified", {"cgroup.controllers": ""})
    assert V1Manager(GROUP, root=str(tmp_path)).procs_paths()[-1] == str(tmp_path / "unified/dockyard/abc/cgroup.procs")


def test_v1_create_makes_every_hierarchy_and_copies_cpuset(tmp_path, rec):
    m = fake_v1(tmp_path, create=False)
    # a fake kernel would create the control files with the directory: give cpuset its empty ones
    fill(tmp_path / "cpuset/dockyard", {"cpuset.cpus": "", "cpuset.mems": ""})
    fill(tmp_path / "cpuset/dockyard/abc", {"cpuset.cpus": "", "cpuset.mems": ""})
    m.create()
    m.create()  # idempotent
    for controller in V1_FILES:
        assert (tmp_path / controller / "dockyard/abc").is_dir()
    assert read(tmp_path, "cpuset/dockyard/cpuset.cpus") == "0-1"
    assert read(tmp_path, "cpuset/dockyard/abc/cpuset.cpus") == "0-1"
    assert read(tmp_path, "cpuset/dockyard/abc/cpuset.mems") == "0"
    assert rec.to("cpuset.cpus") == ["0-1", "0-1"]  # once per level, not again on the second create
    assert m.exists()


def test_v1_create_without_hierarchies_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="no cgroup v1 hierarchy"):
        V1Manager(GROUP, root=str(tmp_path)).create()


def test_v1_add_writes_every_procs_file(tmp_path, rec):
    m = fake_v1(tmp_path)
    m.add(4242)
    assert sorted(p for p, v in rec.writes if v == "4242") == sorted(
        f"{c}/dockyard/abc/cgroup.procs" for c in V1_FILES)


def test_v1_apply_full_translation(tmp_path, rec):
    m = fake_v1(tmp_path)
    m.apply({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20, "swappiness": 10,
                   "disableOOMKiller": True, "kernel": 1 << 20, "kernelTCP": 1 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "realtimeRuntime": 950,
                "realtimePeriod": 1000, "cpus": "1", "mems": "0", "idle": 1},
        "pids": {"limit": 100},
        "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],  # no hugetlb hierarchy: skipped
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    })
    g = "dockyard/abc/"
    assert rec.writes == [
        (f"cpuset/{g}cpuset.cpus", "1"),
        (f"cpuset/{g}cpuset.mems", "0"),
        (f"devices/{g}devices.deny", "a"),
        (f"devices/{g}devices.allow", "c 1:3 rwm"),
        # the current limit is "unlimited", so this lowers it: limit first, then memsw
        (f"memory/{g}memory.limit_in_bytes", str(64 << 20)),
        (f"memory/{g}memory.memsw.limit_in_bytes", str(128 << 20)),
        (f"memory/{g}memory.soft_limit_in_bytes", str(32 << 20)),
        (f"memory/{g}memory.swappiness", "10"),
        (f"memory/{g}memory.oom_control", "1"),
        (f"cpu/{g}cpu.rt_period_us", "1000"),
        (f"cpu/{g}cpu.rt_runtime_us", "950"),
        (f"cpu/{g}cpu.shares", "512"),
        (f"cpu/{g}cpu.cfs_period_us", "100000"),
        (f"cpu/{g}cpu.cfs_burst_us", "1000"),
        (f"cpu/{g}cpu.cfs_quota_us", "50000"),
        (f"cpu/{g}cpu.idle", "1"),
        (f"pids/{g}pids.max", "100"),
        (f"blkio/{g}blkio.bfq.weight", "300"),
        (f"blkio/{g}blkio.bfq.weight_device", "8:0 200"),
        (f"blkio/{g}blkio.throttle.read_bps_device", "8:0 1048576"),
        (f"blkio/{g}blkio.throttle.write_iops_device", "8:16 100"),
    ]
    assert read(tmp_path, f"memory/{g}memory.kmem.limit_in_bytes") == "0"  # kernel memory ignored


def test_v1_memory_and_swap_order_raising_and_lowering(tmp_path, rec):
    m = fake_v1(tmp_path, memory={"memory.limit_in_bytes": str(64 << 20)})
    m.apply({"memory": {"limit": 256 << 20, "swap": 512 << 20}})  # raising past the current limit
    assert rec.to("limit_in_bytes") == [str(512 << 20), str(256 << 20)]
    assert [p.rsplit("/", 1)[1] for p, _ in rec.writes] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    rec.writes.clear()
    m.apply({"memory": {"limit": 32 << 20, "swap": 48 << 20}})  # lowering below the current limit
    assert [p.rsplit("/", 1)[1] for p, _ in rec.writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    rec.writes.clear()
    m.apply({"memory": {"limit": -1}})  # unlimited: swap goes unlimited too, memsw first
    assert rec.writes == [("memory/dockyard/abc/memory.memsw.limit_in_bytes", "-1"),
                          ("memory/dockyard/abc/memory.limit_in_bytes", "-1")]
    rec.writes.clear()
    m.apply({"memory": {"limit": 16 << 20, "swap": -1}})
    assert [v for _, v in rec.writes] == ["-1", str(16 << 20)]


def test_v1_swap_ignored_without_swap_accounting(tmp_path, rec):
    m = fake_v1(tmp_path)
    os.unlink(tmp_path / "memory/dockyard/abc/memory.memsw.limit_in_bytes")
    m.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    assert rec.writes == [("memory/dockyard/abc/memory.limit_in_bytes", str(64 << 20))]


def test_v1_memory_limit_below_usage_names_file_value_and_usage(tmp_path, rec):
    m = fake_v1(tmp_path, memory={"memory.usage_in_bytes": "50000000"})
    rec.refuse["memory/dockyard/abc/memory.limit_in_bytes"] = errno.EBUSY
    with pytest.raises(Conflict) as info:
        m.apply({"memory": {"limit": 1 << 20}})
    message = str(info.value)
    assert "memory.limit_in_bytes" in message and "1048576" in message and "50000000" in message
    assert info.value.file.endswith("memory.limit_in_bytes") and info.value.value == "1048576"


def test_v1_kernel_refusal_is_invalid_argument_naming_file(tmp_path, rec):
    m = fake_v1(tmp_path)
    rec.refuse["cpu/dockyard/abc/cpu.cfs_quota_us"] = errno.EINVAL
    with pytest.raises(InvalidArgument, match=r"cannot write '10' to .*cpu\.cfs_quota_us: Invalid argument"):
        m.apply({"cpu": {"quota": 10}})


def test_v1_period_refused_before_quota_is_retried_after_it(tmp_path, rec):
    m = fake_v1(tmp_path)
    rec.refuse["cpu/dockyard/abc/cpu.cfs_period_us"] = errno.EINVAL
    m.apply({"cpu": {"quota": 5000, "period": 10000}})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("cpu.cfs_period_us", "10000"), ("cpu.cfs_quota_us", "5000"), ("cpu.cfs_period_us", "10000")]
    assert read(tmp_path, "cpu/dockyard/abc/cpu.cfs_period_us") == "10000"


def test_v1_shares_clamped_by_the_kernel_is_an_error(tmp_path, rec, monkeypatch):
    m = fake_v1(tmp_path)
    real = rec.real_write
    # pretend this kernel clamps cpu.shares lower than the documented maximum
    monkeypatch.setattr(rec, "real_write", lambda d, n, v: real(d, n, "100000" if n == "cpu.shares" else v))
    with pytest.raises(InvalidArgument, match="the maximum allowed cpu-shares is 100000"):
        m.apply({"cpu": {"shares": 200000}})


@pytest.mark.parametrize("limit, want", [(0, "max"), (-1, "max"), (7, "7")])
def test_v1_pids(tmp_path, rec, limit, want):
    fake_v1(tmp_path).apply({"pids": {"limit": limit}})
    assert rec.writes == [("pids/dockyard/abc/pids.max", want)]


def test_v1_blkio_prefers_cfq_weight_when_present(tmp_path, rec):
    m = fake_v1(tmp_path, blkio={"blkio.weight": "500", "blkio.weight_device": "", "blkio.leaf_weight": "500",
                                 "blkio.leaf_weight_device": ""})
    m.apply({"blockIO": {"weight": 700, "leafWeight": 600,
                         "weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 300}]}})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("blkio.weight", "700"), ("blkio.leaf_weight", "600"), ("blkio.weight_device", "8:0 200"),
        ("blkio.leaf_weight_device", "8:0 300")]


def test_v1_missing_controllers_are_skipped(tmp_path, rec):
    m = fake_v1(tmp_path, controllers=("memory", "devices"))
    m.apply({"cpu": {"shares": 100, "cpus": "0"}, "pids": {"limit": 5}, "blockIO": {"weight": 100},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}], "network": {"classID": 5},
             "rdma": {"mlx": {"hcaHandles": 1}}, "memory": {"limit": 1 << 30}})
    assert rec.writes == [("memory/dockyard/abc/memory.limit_in_bytes", str(1 << 30))]
    assert m.state() == THAWED  # no freezer: never paused
    with pytest.raises(NotSupported, match="freezer"):
        m.freeze()


def test_v1_hugetlb_network_rdma_when_mounted(tmp_path, rec):
    extra = {"hugetlb": {"hugetlb.2MB.limit_in_bytes": "", "hugetlb.2MB.rsvd.limit_in_bytes": "",
                         "hugetlb.1GB.limit_in_bytes": ""},
             "net_cls": {"net_cls.classid": "0"}, "net_prio": {"net_prio.ifpriomap": ""}, "rdma": {"rdma.max": ""}}
    V1_FILES.update(extra)
    try:
        m = fake_v1(tmp_path, controllers=tuple(extra))
    finally:
        for key in extra:
            del V1_FILES[key]
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
             "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
             "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}}})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("hugetlb.2MB.limit_in_bytes", "4194304"), ("hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
        ("net_cls.classid", "1048577"), ("net_prio.ifpriomap", "eth0 5"),
        ("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000")]
    with pytest.raises(NotSupported, match=r"hugepage size 64KB is not supported on this host \(sizes: 1GB, 2MB\)"):
        m.apply({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]})


def test_v1_devices_update_writes_only_differences(tmp_path, rec):
    m = fake_v1(tmp_path, devices={"devices.list": "c 1:3 rwm\nc 1:5 rwm\n"})
    m.apply({"devices": [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3},
                         {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "r"}]})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("devices.allow", "c 1:9 r"), ("devices.deny", "c 1:5 rwm")]


def test_v1_bad_input_changes_nothing(tmp_path, rec):
    m = fake_v1(tmp_path)
    with pytest.raises(InvalidArgument, match="cpu.shares"):
        m.apply({"memory": {"limit": 1 << 20}, "pids": {"limit": 3}, "cpu": {"shares": "lots"}})
    with pytest.raises(InvalidArgument, match="devices"):
        m.apply({"memory": {"limit": 1 << 20}, "devices": [{"allow": "yes"}]})
    with pytest.raises(NotSupported, match="cannot use unified resources on cgroup v1"):
        m.apply({"memory": {"limit": 1 << 20}, "unified": {"memory.high": "1"}})
    assert rec.writes == []


def test_v1_apply_before_create_is_not_found(tmp_path, rec):
    m = fake_v1(tmp_path, create=False)
    with pytest.raises(NotFound, match="does not exist"):
        m.apply({"pids": {"limit": 1}})
    assert rec.writes == []


def test_v1_freeze_of_a_missing_group_is_not_found(tmp_path):
    m = fake_v1(tmp_path, create=False)
    with pytest.raises(NotFound, match="does not exist"):
        m.freeze()
    assert m.state() == THAWED and m.pids() == [] and m.kill_all(signal.SIGKILL) == []


def test_v2_missing_group_is_quiet_for_queries_and_not_found_for_freeze(tmp_path):
    m = fake_v2(tmp_path, create=False)
    assert m.state() == THAWED and m.pids() == [] and m.kill_all(signal.SIGKILL) == [] and not m.exists()
    with pytest.raises(NotFound, match="does not exist"):
        m.freeze()
    m.destroy()


def test_v1_freeze_thaw_state(tmp_path, rec):
    m = fake_v1(tmp_path)
    m.freeze()
    assert m.state() == FROZEN == "frozen"
    m.thaw()
    assert m.state() == THAWED == "thawed"
    assert rec.to("freezer.state") == ["FROZEN", "THAWED"]


def test_v1_stats_shape(tmp_path):
    fill(tmp_path / "pids/dockyard/abc", {"pids.max": "50"})
    s = fake_v1(tmp_path, pids={"pids.max": "50"}).stats()
    hz = os.sysconf("SC_CLK_TCK")
    assert s["memory_stats"]["usage"] == 4096
    assert s["memory_stats"]["max_usage"] == 8192
    assert s["memory_stats"]["stats"] == {"cache": 10, "rss": 20}
    assert 0 < s["memory_stats"]["limit"] < 9223372036854771712  # unlimited reads as the host's memory
    usage = s["cpu_stats"]["cpu_usage"]
    assert usage == {"total_usage": 5000, "percpu_usage": [3000, 2000],
                     "usage_in_kernelmode": 20 * 10**9 // hz, "usage_in_usermode": 30 * 10**9 // hz}
    assert s["cpu_stats"]["throttling_data"] == {"periods": 10, "throttled_periods": 2, "throttled_time": 3000}
    assert s["cpu_stats"]["system_cpu_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    assert s["pids_stats"] == {"current": 3, "limit": 50}
    assert s["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 100}, {"major": 8, "minor": 0, "op": "Write", "value": 50}]
    assert s["blkio_stats"]["io_serviced_recursive"][0]["value"] == 2
    assert s["blkio_stats"]["io_merged_recursive"] == []


def test_v1_pids_include_subgroups(tmp_path):
    m = fake_v1(tmp_path)
    fill(tmp_path / "pids/dockyard/abc", {"cgroup.procs": "30\n10\n"})
    fill(tmp_path / "pids/dockyard/abc/sub", {"cgroup.procs": "20\n10\n"})
    assert m.pids() == [10, 20, 30]


def test_kill_all_freezes_signals_and_thaws(tmp_path, rec):
    m = fake_v1(tmp_path)
    child = subprocess.Popen(["sleep", "30"])
    try:
        fill(tmp_path / "pids/dockyard/abc", {"cgroup.procs": f"{child.pid}\n999999999\n"})
        assert m.kill_all(signal.SIGTERM) == [child.pid, 999999999]  # a gone pid is no error
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert rec.to("freezer.state") == ["FROZEN", "THAWED"]
    finally:
        child.kill()
        child.wait()


def test_kill_all_leaves_a_paused_group_paused_unless_sigkill(tmp_path, rec):
    m = fake_v1(tmp_path, freezer={"freezer.state": "FROZEN"})
    m.kill_all(signal.SIGUSR1)
    assert rec.to("freezer.state") == []
    m.kill_all(signal.SIGKILL)
    assert rec.to("freezer.state") == ["THAWED"]


def test_destroy_removes_children_first_and_retries_busy(tmp_path, monkeypatch):
    m = fake_v1(tmp_path, controllers=("pids", "memory"))
    fill(tmp_path / "pids/dockyard/abc/sub", {})
    removed, busy = [], {str(tmp_path / "memory/dockyard/abc"): 2}

    def fake_rmdir(path):
        if busy.get(path):
            busy[path] -= 1
            raise OSError(errno.EBUSY, "busy")
        removed.append(os.path.relpath(path, tmp_path))
        for name in os.listdir(path):  # a cgroup directory goes with its control files
            if os.path.isfile(os.path.join(path, name)):
                os.unlink(os.path.join(path, name))
        os.rmdir(path)

    monkeypatch.setattr(files, "rmdir", fake_rmdir)
    m.destroy()
    assert removed == ["memory/dockyard/abc", "pids/dockyard/abc/sub", "pids/dockyard/abc"]
    assert not m.exists()
    m.destroy()  # gone already: fine


def test_destroy_gives_up_on_a_group_that_stays_busy(tmp_path, monkeypatch):
    fake_v1(tmp_path, controllers=("pids",), pids={"cgroup.procs": "77\n"})

    def always_busy(path):
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(files, "rmdir", always_busy)
    with pytest.raises(Conflict, match=r"processes still in it: \[77\]"):
        files.remove_tree(str(tmp_path / "pids/dockyard/abc"), timeout=0.05)


# --- v2 ---

def test_v2_create_enables_controllers_down_the_path(tmp_path, rec):
    m = fake_v2(tmp_path, create=False)
    m.create()

    # the fake kernel does not make cgroup.controllers for the new levels: nothing more to enable there
    assert rec.writes == [("cgroup.subtree_control", "+cpuset +cpu +io +memory +hugetlb +pids +rdma")]
    assert (tmp_path / "dockyard/abc").is_dir()
    fill(tmp_path / "dockyard", {"cgroup.controllers": "cpu memory", "cgroup.subtree_control": "memory"})
    rec.writes.clear()
    m.create()
    assert rec.writes == [("cgroup.subtree_control", "+cpuset +cpu +io +memory +hugetlb +pids +rdma"),
                          ("dockyard/cgroup.subtree_control", "+cpu")]


def test_v2_create_enables_one_by_one_when_all_at_once_is_refused(tmp_path, rec, monkeypatch):
    m = fake_v2(tmp_path, create=False)
    real = rec.real_write

    def refuse_batch(directory, name, value):
        if name == "cgroup.subtree_control" and (" " in value or value == "+io"):
            raise files.refused(os.path.join(directory, name), value, OSError(errno.EBUSY, "busy"))
        real(directory, name, value)

    monkeypatch.setattr(rec, "real_write", refuse_batch)
    m.create()
    assert rec.to("subtree_control")[1:] == ["+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids", "+rdma"]


def test_v2_create_without_a_v2_mount_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="no cgroup v2 hierarchy"):
        V2Manager(GROUP, root=str(tmp_path)).create()


def test_v2_apply_full_translation(tmp_path, rec, monkeypatch):
    installed = []
    from dockyard.cgroups import devicefilter

    monkeypatch.setattr(devicefilter, "install", lambda d, state: installed.append((d, state)))
    m = fake_v2(tmp_path)
    m.apply({
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20, "swappiness": 10,
                   "disableOOMKiller": True},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0, "cpus": "0",
                "mems": "0", "realtimeRuntime": 5, "realtimePeriod": 10},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": 0}],
        "rdma": {"mlx4_0": {"hcaObjects": 9}},
        "devices": [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3}],
        "unified": {"memory.low": "123", "io.max": "8:0 wbps=5\n8:16 rbps=6"},
    })
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("pids.max", "max"),
        ("memory.swap.max", str(32 << 20)),
        ("memory.max", str(64 << 20)),
        ("memory.low", str(32 << 20)),
        ("io.weight", "4950"),
        ("io.weight", "8:0 10000"),
        ("io.max", "8:0 rbps=1048576"),
        ("io.max", "8:0 wiops=10"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpu.idle", "0"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("hugetlb.2MB.max", "4194304"),
        ("hugetlb.2MB.rsvd.max", "4194304"),
        ("hugetlb.1GB.max", "0"),
        ("rdma.max", "mlx4_0 hca_object=9"),
        ("memory.low", "123"),  # unified last: the raw value wins
        ("io.max", "8:0 wbps=5"),
        ("io.max", "8:16 rbps=6"),
    ]
    ((directory, state),) = installed
    assert directory == str(tmp_path / "dockyard/abc")
    assert not state.default_allow and state.exceptions == {("c", 1, 3): 7}


def test_v2_bfq_weights(tmp_path, rec):
    m = fake_v2(tmp_path, **{"io.bfq.weight": "default 100"})
    m.apply({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == [
        ("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 300")]


@pytest.mark.parametrize("memory, want", [
    ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
    ({"limit": 100, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", "100")]),
    ({"limit": 100, "swap": 100}, [("memory.swap.max", "0"), ("memory.max", "100")]),
    ({"limit": 100}, [("memory.max", "100")]),
])
def test_v2_swap_math(tmp_path, rec, memory, want):
    fake_v2(tmp_path).apply({"memory": memory})
    assert [(p.rsplit("/", 1)[1], v) for p, v in rec.writes] == want


@pytest.mark.parametrize("cpu, want", [
    ({"quota": -1}, "max"), ({"period": 50000}, "max 50000"), ({"quota": 1000}, "1000"),
])
def test_v2_cpu_max(tmp_path, rec, cpu, want):
    fake_v2(tmp_path).apply({"cpu": cpu})
    assert rec.to("cpu.max") == [want]


def test_v2_controllers_the_host_lacks_are_skipped(tmp_path, rec):
    fill(tmp_path, {"cgroup.controllers": "pids"})
    m = fake_v2(tmp_path, **{"cgroup.controllers": "pids"})
    fill(tmp_path, {"cgroup.controllers": "pids"})
    m.apply({"memory": {"limit": 1 << 20}, "cpu": {"shares": 2, "cpus": "0"}, "blockIO": {"weight": 10},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 0}], "pids": {"limit": 4}})
    assert rec.writes == [("dockyard/abc/pids.max", "4")]


def test_v2_controller_offered_but_not_enabled_is_an_error(tmp_path, rec):
    m = fake_v2(tmp_path, **{"cgroup.controllers": "pids"})
    with pytest.raises(Unavailable, match="memory controller is not enabled for cgroup /dockyard/abc"):
        m.apply({"pids": {"limit": 4}, "memory": {"limit": 1 << 20}})
    assert rec.writes == []


def test_v2_unified_errors(tmp_path, rec):
    m = fake_v2(tmp_path, **{"cgroup.controllers": "pids"})
    with pytest.raises(NotSupported, match="controller 'memory' is not available"):
        m.apply({"unified": {"memory.high": "1"}})
    with pytest.raises(NotFound, match="'pids.nonsense'"):
        m.apply({"unified": {"pids.nonsense": "1"}})
    with pytest.raises(InvalidArgument, match="no slashes"):
        m.apply({"unified": {"a/b.c": "1"}})
    assert rec.writes == []


def test_v2_hugetlb_unknown_size(tmp_path, rec):
    with pytest.raises(NotSupported, match=r"hugepage size 16MB is not supported on this host \(sizes: 1GB, 2MB\)"):
        fake_v2(tmp_path).apply({"hugepageLimits": [{"pageSize": "16MB", "limit": 0}]})


def test_v2_freeze_waits_for_events_and_state_reads_freeze(tmp_path, rec):
    m = fake_v2(tmp_path)
    assert m.state() == THAWED
    m.freeze()
    assert m.state() == FROZEN
    m.thaw()
    assert m.state() == THAWED
    assert rec.to("cgroup.freeze") == ["1", "0"]


def test_v2_freeze_times_out_clearly(tmp_path, monkeypatch):
    m = fake_v2(tmp_path)
    monkeypatch.setattr(files, "write", lambda d, n, v: None)  # the kernel never settles
    monkeypatch.setattr(files, "wait_for", lambda check, what, timeout=10.0: real_wait(check, what, 0.05))
    with pytest.raises(Unavailable, match="timed out waiting for cgroup /dockyard/abc to freeze"):
        m.freeze()


real_wait = files.wait_for


def test_v2_sigkill_uses_cgroup_kill(tmp_path, rec):
    m = fake_v2(tmp_path, **{"cgroup.procs": "5\n"})
    assert m.kill_all(signal.SIGKILL) == [5]
    assert rec.writes == [("dockyard/abc/cgroup.kill", "1")]


def test_v2_stats_shape(tmp_path):
    s = fake_v2(tmp_path, **{"pids.max": "64"}).stats()
    assert s["memory_stats"]["usage"] == 4096 and s["memory_stats"]["max_usage"] == 8192
    assert s["memory_stats"]["stats"] == {"anon": 10, "file": 20}
    assert s["cpu_stats"]["cpu_usage"] == {"total_usage": 7000, "usage_in_kernelmode": 3000,
                                           "usage_in_usermode": 4000}
    assert s["cpu_stats"]["throttling_data"] == {"periods": 1, "throttled_periods": 1, "throttled_time": 2000}
    assert s["pids_stats"] == {"current": 2, "limit": 64}
    assert s["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 100}, {"major": 8, "minor": 0, "op": "write", "value": 50}]


def test_v2_stats_without_pids_controller_counts_threads(tmp_path):
    m = fake_v2(tmp_path, **{"cgroup.threads": "1\n2\n"})
    os.unlink(tmp_path / "dockyard/abc/pids.current")
    fill(tmp_path / "dockyard/abc/sub", {"cgroup.threads": "3\n"})
    assert m.stats()["pids_stats"] == {"current": 3}
