"""Real cgroups: v1 hierarchies and the v2 hierarchy of this host, with real processes in them.

Every group is made at a hierarchy's root under a unique name and removed in
the fixture's teardown, after its processes are killed; a group left behind
fails the test.  Processes start gated (they wait for a line on stdin), so
they are in the group before they do what is measured.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from dockyard.cgroups import FROZEN, THAWED, files
from dockyard.cgroups.v1 import V1Manager
from dockyard.cgroups.v2 import V2Manager
from dockyard.errors import Conflict, InvalidArgument

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

V1_ROOT = "/sys/fs/cgroup"
HAS_V1 = os.path.isdir(os.path.join(V1_ROOT, "memory")) and not os.path.exists(
    os.path.join(V1_ROOT, "cgroup.controllers"))
V2_ROOT = next((r for r in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                if os.path.exists(os.path.join(r, "cgroup.controllers"))), None)

needs_v1 = pytest.mark.skipif(not HAS_V1, reason="no cgroup v1 hierarchies on this host")
needs_v2 = pytest.mark.skipif(V2_ROOT is None, reason="no cgroup v2 hierarchy on this host")


def unique() -> str:
    return f"/dockyard-test-{secrets.token_hex(4)}"


@pytest.fixture
def spawn():
    """Start processes that wait for a line on stdin; all are killed and reaped at teardown."""
    started = []

    def start(args, **kwargs):
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()


def python(spawn, code: str, *args):
    """A Python process that runs `code` once released (see `release`)."""
    return spawn([sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code, *args])


def release(proc) -> None:
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


def busy_loop(spawn):
    return spawn(["sh", "-c", "read go; while :; do :; done"])


def sleeper(spawn):
    return spawn(["sleep", "300"])


def teardown(manager) -> None:
    """Kill what is left in the group, remove it, and check it is gone."""
    try:
        if manager.exists():
            if manager.can_freeze() and manager.state() == FROZEN:
                manager.thaw()
            manager.kill_all(signal.SIGKILL)
    finally:
        manager.destroy()
    assert not manager.exists(), f"{manager} left behind"


@pytest.fixture
def v1():
    manager = V1Manager(unique())
    manager.create()
    try:
        yield manager
    finally:
        teardown(manager)


@pytest.fixture
def v2():
    before = files.read_or(V2_ROOT, "cgroup.subtree_control", "").split()
    manager = V2Manager(unique(), root=V2_ROOT)
    manager.create()
    try:
        yield manager
    finally:
        try:
            teardown(manager)
        finally:
            # create() offers every controller to the root's children; give back what we added.
            for controller in files.read_or(V2_ROOT, "cgroup.subtree_control", "").split():
                if controller not in before:
                    try:
                        files.write(V2_ROOT, "cgroup.subtree_control", "-" + controller)
                    except Exception:
                        pass  # someone else's group uses it now


def cgroup_of(pid: int) -> dict:
    """{hierarchy controllers (or "" for v2): path} from /proc/PID/cgroup."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


def proc_state(pid: int) -> tuple[str, int]:
    """(state letter, utime ticks) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return rest[0], int(rest[11])


def proc_status(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(key)


def kernel(manager, controller: str, name: str) -> str:
    return files.read(manager.controller_path(controller), name).strip()


def a_block_device() -> str:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram")):
            with open(f"/sys/block/{name}/dev") as f:
                return f.read().strip()
    pytest.skip("no block device")


DEVICE_PROBE = """
import json, os
out = {}
for path, flags in (("/dev/null", os.O_WRONLY), ("/dev/zero", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags))
        out[path] = "ok"
    except OSError as err:
        out[path] = err.errno
for name, minor in (("null", 3), ("zero", 5)):
    node = os.path.join(sys.argv[1], name)
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(1, minor))
        os.unlink(node)
        out["mknod " + name] = "ok"
    except OSError as err:
        out["mknod " + name] = err.errno
print(json.dumps(out), flush=True)
"""


def probe_devices(spawn, manager, tmp_path) -> dict:
    proc = python(spawn, DEVICE_PROBE, str(tmp_path))
    manager.add(proc.pid)
    release(proc)
    out, _ = proc.communicate(timeout=30)
    return json.loads(out)


DENY_ZERO = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
ALLOW_ZERO = DENY_ZERO + [{"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"}]


# --- v1 ---

@needs_v1
def test_v1_create_add_apply_and_read_back(v1, spawn):
    proc = sleeper(spawn)
    v1.add(proc.pid)
    where = cgroup_of(proc.pid)
    for controller in ("memory", "cpu", "cpuset", "pids", "devices", "freezer", "blkio"):
        assert where[controller] == v1.path
    if "unified" in v1.mounts:  # a hybrid host: in its v2 group as well, as runc puts containers
        assert where[""] == v1.path
    device = a_block_device()
    v1.apply({
        "memory": {"limit": 256 << 20, "swap": 512 << 20, "reservation": 128 << 20, "swappiness": 30},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"weight": 300,
                    "throttleReadBpsDevice": [{"major": int(device.split(":")[0]),
                                               "minor": int(device.split(":")[1]), "rate": 1 << 20}]},
        "devices": DENY_ZERO,
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],  # no v1 hugetlb here: skipped
    })
    assert kernel(v1, "memory", "memory.limit_in_bytes") == str(256 << 20)
    assert kernel(v1, "memory", "memory.memsw.limit_in_bytes") == str(512 << 20)
    assert kernel(v1, "memory", "memory.soft_limit_in_bytes") == str(128 << 20)
    assert kernel(v1, "memory", "memory.swappiness") == "30"
    assert kernel(v1, "cpu", "cpu.shares") == "512"
    assert kernel(v1, "cpu", "cpu.cfs_quota_us") == "50000"
    assert kernel(v1, "cpu", "cpu.cfs_period_us") == "100000"
    assert kernel(v1, "cpuset", "cpuset.cpus") == "0"
    assert proc_status(proc.pid, "Cpus_allowed_list") == "0"
    assert kernel(v1, "pids", "pids.max") == "64"
    weight = "blkio.weight" if files.has(v1.controller_path("blkio"), "blkio.weight") else "blkio.bfq.weight"
    assert kernel(v1, "blkio", weight).split()[-1] == "300"
    assert kernel(v1, "blkio", "blkio.throttle.read_bps_device") == f"{device} {1 << 20}"
    assert kernel(v1, "devices", "devices.list") == "c 1:3 rwm"
    # lower both, then lift them: the memsw/limit order must work both ways
    v1.update({"memory": {"limit": 64 << 20, "swap": 96 << 20}, "pids": {"limit": 0}})
    assert kernel(v1, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert kernel(v1, "memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert kernel(v1, "pids", "pids.max") == "max"
    v1.update({"memory": {"limit": -1}})
    assert int(kernel(v1, "memory", "memory.limit_in_bytes")) > 1 << 60
    assert int(kernel(v1, "memory", "memory.memsw.limit_in_bytes")) > 1 << 60


@needs_v1
def test_v1_kernel_refusal_names_file_and_value(v1):
    with pytest.raises(InvalidArgument) as info:
        v1.apply({"cpu": {"quota": 10}})  # below the kernel's 1ms minimum
    assert "cpu.cfs_quota_us" in str(info.value) and "'10'" in str(info.value)


@needs_v1
def test_v1_pids_limit_stops_forks(v1, spawn):
    v1.apply({"pids": {"limit": 5}})
    proc = python(spawn, """
import os, time
children = []
while len(children) < 50:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print(len(children), flush=True)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
""")
    v1.add(proc.pid)
    release(proc)
    out, _ = proc.communicate(timeout=30)
    assert int(out) == 4  # the parent is the fifth
    assert proc.returncode == 0


@needs_v1
def test_v1_memory_limit_oom_kills(v1, spawn):
    v1.apply({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    proc = python(spawn, "data = b'x' * (128 << 20)\nprint('survived', flush=True)\n")
    v1.add(proc.pid)
    release(proc)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and out == b""
    # the kernel's own count of OOM kills in this group
    assert "oom_kill 1" in kernel(v1, "memory", "memory.oom_control").splitlines()


@needs_v1
def test_v1_memory_limit_below_usage_is_refused(v1, spawn):
    v1.apply({"memory": {"limit": 128 << 20}})
    proc = python(spawn, "data = b'x' * (40 << 20)\nprint('ready', flush=True)\nsys.stdin.readline()\n")
    v1.add(proc.pid)
    release(proc)
    assert proc.stdout.readline() == b"ready\n"
    with pytest.raises(Conflict) as info:
        v1.update({"memory": {"limit": 8 << 20}})
    message = str(info.value)
    assert "memory.limit_in_bytes" in message and str(8 << 20) in message and "already uses" in message
    assert kernel(v1, "memory", "memory.limit_in_bytes") == str(128 << 20)
    stats = v1.stats()
    assert stats["memory_stats"]["usage"] >= 40 << 20
    assert stats["memory_stats"]["limit"] == 128 << 20


@needs_v1
def test_v1_devices_are_enforced_and_updated_in_place(v1, spawn, tmp_path):
    v1.apply({"devices": DENY_ZERO})
    got = probe_devices(spawn, v1, tmp_path)
    assert got == {"/dev/null": "ok", "/dev/zero": errno.EPERM, "mknod null": "ok", "mknod zero": errno.EPERM}
    v1.update({"devices": ALLOW_ZERO})
    assert kernel(v1, "devices", "devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 rw"]
    got = probe_devices(spawn, v1, tmp_path)
    assert got["/dev/zero"] == "ok" and got["mknod zero"] == errno.EPERM


def freeze_and_thaw_busy_process(manager, spawn, frozen_letter: str, kernel_frozen) -> None:
    """Freeze a busy loop: the kernel must say frozen, the task show `frozen_letter` and get no CPU time."""
    proc = busy_loop(spawn)
    manager.add(proc.pid)
    release(proc)
    time.sleep(0.1)
    manager.freeze()
    assert manager.state() == FROZEN
    assert kernel_frozen()
    state, ticks = proc_state(proc.pid)
    assert state == frozen_letter
    time.sleep(0.3)
    assert proc_state(proc.pid)[1] == ticks  # no CPU time while frozen
    manager.thaw()
    assert manager.state() == THAWED
    assert not kernel_frozen()
    time.sleep(0.3)
    state, later = proc_state(proc.pid)
    assert state == "R" and later > ticks


@needs_v1
def test_v1_freeze_and_thaw_a_real_process(v1, spawn):
    # the v1 freezer parks tasks in uninterruptible sleep
    freeze_and_thaw_busy_process(v1, spawn, "D", lambda: kernel(v1, "freezer", "freezer.state") == "FROZEN")


@needs_v1
def test_v1_kill_all_reaches_subgroups_and_destroy_removes_them(v1, spawn):
    sub = V1Manager(v1.path + "/sub")
    sub.create()
    top, inner = sleeper(spawn), sleeper(spawn)
    v1.add(top.pid)
    sub.add(inner.pid)
    assert v1.pids() == sorted([top.pid, inner.pid])
    assert sub.pids() == [inner.pid]
    assert sorted(v1.kill_all(signal.SIGTERM)) == sorted([top.pid, inner.pid])
    assert top.wait(timeout=10) == -signal.SIGTERM and inner.wait(timeout=10) == -signal.SIGTERM
    assert v1.state() == THAWED
    v1.destroy()
    assert not v1.exists() and not sub.exists()
    v1.destroy()  # idempotent


@needs_v1
def test_v1_kill_all_on_a_paused_group(v1, spawn):
    proc = sleeper(spawn)
    v1.add(proc.pid)
    v1.freeze()
    v1.kill_all(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert v1.state() == THAWED


@needs_v1
def test_v1_stats_of_a_working_process(v1, spawn):
    v1.apply({"pids": {"limit": 10}})
    proc = python(spawn, "data = b'x' * (20 << 20)\nend = __import__('time').time() + 0.3\n"
                         "while __import__('time').time() < end: pass\nprint('ok', flush=True)\n"
                         "sys.stdin.readline()\n")
    v1.add(proc.pid)
    release(proc)
    assert proc.stdout.readline() == b"ok\n"
    s = v1.stats()
    assert s["memory_stats"]["usage"] >= 20 << 20
    assert s["memory_stats"]["stats"]["rss"] >= 20 << 20
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] >= 200_000_000
    assert len(s["cpu_stats"]["cpu_usage"]["percpu_usage"]) == os.cpu_count()
    assert s["cpu_stats"]["cpu_usage"]["usage_in_usermode"] > 0
    assert s["pids_stats"] == {"current": 1, "limit": 10}
    assert set(s["blkio_stats"]) >= {"io_service_bytes_recursive", "io_serviced_recursive"}


@needs_v1
def test_v1_destroy_with_live_processes_is_a_conflict(v1, spawn):
    proc = sleeper(spawn)
    v1.add(proc.pid)
    with pytest.raises(Conflict, match=rf"processes still in it: \[{proc.pid}\]"):
        files.remove_tree(v1.controller_path("pids"), timeout=0.1)


# --- v2 ---

@needs_v2
def test_v2_create_add_pids(v2, spawn):
    a, b = sleeper(spawn), sleeper(spawn)
    v2.add(a.pid)
    v2.add(b.pid)
    assert cgroup_of(a.pid)[""] == v2.path
    assert v2.pids() == sorted([a.pid, b.pid])
    assert v2.procs_paths() == [os.path.join(V2_ROOT, v2.path.lstrip("/"), "cgroup.procs")]
    assert v2.stats()["pids_stats"]["current"] == 2


@needs_v2
def test_v2_freeze_and_thaw_a_real_process(v2, spawn):
    # the v2 freezer traps tasks in an interruptible sleep
    freeze_and_thaw_busy_process(v2, spawn, "S", lambda: "frozen 1" in files.read(v2.dir, "cgroup.events"))
    assert v2.stats()["cpu_stats"]["cpu_usage"]["total_usage"] > 100_000_000


@needs_v2
def test_v2_kill_all_with_cgroup_kill_and_with_signals(v2, spawn):
    if not files.has(v2.dir, "cgroup.kill"):
        pytest.skip("kernel without cgroup.kill")
    procs = [sleeper(spawn) for _ in range(3)]
    for proc in procs:
        v2.add(proc.pid)
    assert sorted(v2.kill_all(signal.SIGKILL)) == sorted(p.pid for p in procs)
    assert [p.wait(timeout=10) for p in procs] == [-signal.SIGKILL] * 3
    proc = sleeper(spawn)
    v2.add(proc.pid)
    assert v2.kill_all(signal.SIGTERM) == [proc.pid]
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert v2.state() == THAWED
    files.wait_for(lambda: v2.pids() == [], "the group to empty")


@needs_v2
def test_v2_hugetlb_limit(v2):
    if "hugetlb" not in v2.host_controllers():
        pytest.skip("no hugetlb controller in cgroup v2 here")
    sizes = files.hugepage_sizes(v2.dir, "max")
    if not sizes:
        pytest.skip("no huge page sizes")
    v2.apply({"hugepageLimits": [{"pageSize": size, "limit": 0} for size in sizes]})
    for size in sizes:
        assert files.read(v2.dir, f"hugetlb.{size}.max").strip() == "0"
    if "2MB" in sizes:
        v2.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
        assert files.read(v2.dir, "hugetlb.2MB.max").strip() == str(4 << 20)


@needs_v2
def test_v2_device_filter_is_loaded_and_enforced(v2, spawn, tmp_path):
    from dockyard.cgroups import devicefilter

    v2.apply({"devices": DENY_ZERO})
    assert len(devicefilter.attached(v2.dir)) == 1
    got = probe_devices(spawn, v2, tmp_path)
    assert got == {"/dev/null": "ok", "/dev/zero": errno.EPERM, "mknod null": "ok", "mknod zero": errno.EPERM}
    first = devicefilter.attached(v2.dir)
    v2.update({"devices": ALLOW_ZERO})
    second = devicefilter.attached(v2.dir)
    assert len(second) == 1 and second != first  # replaced, not stacked
    got = probe_devices(spawn, v2, tmp_path)
    assert got["/dev/zero"] == "ok" and got["mknod zero"] == errno.EPERM
