"""One test per config.json feature, each observed from inside a real container."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from dockyard.runtime.spec import default_spec
from tests.support.runtime import make_bundle

pytestmark = pytest.mark.root


def default_linux() -> dict:
    return default_spec()["linux"]


def run_in(rt, tmp_path, rootfs, script, cid, **changes) -> str:
    """Run `sh -c script` in a fresh container; return its stdout (fails on a non-zero exit)."""
    bundle = make_bundle(str(tmp_path / ("b-" + cid)), rootfs, ["sh", "-c", script], **changes)
    proc = rt("run", "-b", bundle, cid)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


# -- namespaces -----------------------------------------------------------------

def test_new_namespaces(rt, busybox_rootfs, tmp_path, cid):
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "hostname; echo $$; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; "
                 "for n in mnt uts ipc pid net; do readlink /proc/self/ns/$n; done", cid, hostname="box1")
    lines = out.split()
    assert lines[0] == "box1"
    assert lines[1] == "1"
    assert lines[2] == "lo" and not any(line.startswith("eth") for line in lines[3:4])
    for ns_line in lines[-5:]:
        kind = ns_line.split(":")[0]
        host = os.readlink(f"/proc/self/ns/{kind}")
        assert ns_line != host, f"{kind} namespace is the host's"


def test_join_namespace_by_path(rt, busybox_rootfs, tmp_path, cid):
    netns = "dockyard-test-" + cid
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "add", "dky7a", "type", "veth", "peer", "name", "dky7b"], check=True)
        linux = default_linux()
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        linux["namespaces"].append({"type": "network", "path": f"/run/netns/{netns}"})
        out = run_in(rt, tmp_path, busybox_rootfs, "readlink /proc/self/ns/net; ip link", cid, linux=linux)
        expected = f"net:[{os.stat(f'/run/netns/{netns}').st_ino}]"
        assert out.split()[0] == expected
        assert "dky7a" in out and "dky7b" in out
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=True)


@pytest.fixture
def open_dir():
    """A directory every uid may traverse (pytest's own tmp dirs are 0700 root)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="dockyard-userns-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_user_namespace_mappings(rt, busybox_rootfs, tmp_path, cid, open_dir):
    rootfs = os.path.join(open_dir, "rootfs")
    subprocess.run(["cp", "-a", busybox_rootfs, rootfs], check=True)
    subprocess.run(["chown", "-R", "100000:100000", rootfs], check=True)
    linux = default_linux()
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux.pop("resources", None)
    bundle = make_bundle(os.path.join(open_dir, "b"), busybox_rootfs,
                         ["sh", "-c", "cat /proc/self/uid_map; id -u; touch /ok"],
                         linux=linux, root={"path": rootfs, "readonly": False})
    proc = rt("run", "-b", bundle, cid)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.split()[:3] == [b"0", b"100000", b"65536"]
    assert proc.stdout.split()[3] == b"0"
    assert os.stat(os.path.join(rootfs, "ok")).st_uid == 100000, "container root is host uid 100000"


def test_cgroup_namespace(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["namespaces"].append({"type": "cgroup"})
    out = run_in(rt, tmp_path, busybox_rootfs, "cat /proc/self/cgroup", cid, linux=linux)
    for line in out.splitlines():
        assert line.endswith(":/"), line


# -- root filesystem ------------------------------------------------------------

def test_readonly_root_and_no_pivot(rt, busybox_rootfs, tmp_path, cid):
    out = run_in(rt, tmp_path, busybox_rootfs, "touch /x 2>&1; echo rc=$?; ls /", cid,
                 root={"path": "rootfs", "readonly": True})
    assert "Read-only file system" in out and "rc=1" in out
    bundle = make_bundle(str(tmp_path / "np"), busybox_rootfs, ["sh", "-c", "ls / | tr '\\n' ' '"])
    proc = rt("run", "--no-pivot", "-b", bundle, cid + "np", check=True)
    assert b"bin" in proc.stdout and b"proc" in proc.stdout


@pytest.mark.parametrize("propagation", ["rprivate", "rshared", "private"])
def test_rootfs_propagation(rt, busybox_rootfs, tmp_path, cid, propagation):
    linux = default_linux()
    linux["rootfsPropagation"] = propagation
    out = run_in(rt, tmp_path, busybox_rootfs, "awk '$5 == \"/\"' /proc/self/mountinfo", cid, linux=linux)
    fields = out.split()
    optional = fields[6:fields.index("-")]
    if propagation.endswith("shared"):
        assert any(f.startswith("shared:") for f in optional), out
    else:
        assert optional == [], out


def test_mounts(rt, busybox_rootfs, tmp_path, cid):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from-host\n")
    file_src = tmp_path / "single"
    file_src.write_text("one file\n")
    mounts = default_spec()["mounts"] + [
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "none", "source": str(data), "options": ["bind"]},
        {"destination": "/etc/single", "type": "bind", "source": str(file_src), "options": ["bind", "ro"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]},
    ]
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "cat /data/hello; touch /data/x 2>/dev/null || echo data-ro; echo w > /rw/written; cat /etc/single; "
                 "stat -c %a /scratch; grep -E ' /(scratch|data|proc|sys|dev/pts|dev/mqueue|dev/shm|sys/fs/cgroup) ' "
                 "/proc/self/mounts", cid, mounts=mounts)
    assert "from-host" in out and "data-ro" in out and "one file" in out
    assert (data / "written").read_text() == "w\n"
    assert "1770" in out
    table = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith(("tmpfs", "proc", "sysfs",
                                                                                         "devpts", "mqueue", "shm", "/"))}
    assert table["/scratch"][2] == "tmpfs" and "size=1024k" in table["/scratch"][3]
    assert "nosuid" in table["/scratch"][3] and "noexec" in table["/scratch"][3]
    assert table["/proc"][2] == "proc"
    assert table["/sys"][2] == "sysfs" and table["/sys"][3].startswith("ro")
    assert table["/dev/pts"][2] == "devpts"
    assert table["/dev/mqueue"][2] == "mqueue"
    assert table["/sys/fs/cgroup"][3].startswith("ro")


def test_cgroup_mount_shows_own_group(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["resources"]["memory"] = {"limit": 50 << 20}
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup; touch /sys/fs/cgroup/memory/x "
                 "2>&1 | grep -c Read-only", cid, linux=linux)
    lines = out.split()
    assert lines[0] == str(50 << 20)
    assert "pids" in lines and "memory" in lines
    assert lines[-1] == "1"


def test_masked_and_readonly_paths(rt, busybox_rootfs, tmp_path, cid):
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "cat /proc/keys | wc -c; ls /sys/firmware | wc -l; "
                 "(echo 1 > /proc/sys/kernel/domainname) 2>&1 | grep -c Read-only; "
                 "grep -E ' /proc/(sys|bus|fs|irq|keys|acpi) ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1", cid)
    lines = out.splitlines()
    assert lines[:3] == ["0", "0", "1"]
    mounts = dict(line.split() for line in lines[3:])
    assert mounts["/proc/sys"] == "ro" and mounts["/proc/bus"] == "ro" and mounts["/proc/irq"] == "ro"
    assert "/proc/keys" in mounts, "masked by a bind of /dev/null"


def test_devices_and_dev_symlinks(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["devices"] = [{"path": "/dev/fuse-like", "type": "c", "major": 1, "minor": 3, "fileMode": 0o646,
                         "uid": 7, "gid": 8}]
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo ok-$d; done; "
                 "stat -c '%a %u %g %t %T' /dev/fuse-like; echo hi > /dev/fuse-like && echo writable; "
                 "for l in fd stdin ptmx; do readlink /dev/$l; done; head -c 4 /dev/zero | wc -c", cid, linux=linux)
    for d in ("null", "zero", "full", "random", "urandom", "tty"):
        assert f"ok-{d}" in out
    assert "646 7 8 1 3" in out and "writable" in out
    assert "/proc/self/fd" in out and "/proc/self/fd/0" in out and "pts/ptmx" in out
    assert out.split()[-1] == "4"


def test_devices_cgroup_denies(rt, busybox_rootfs, tmp_path, cid):
    # A node the spec did not allow: mknod works (c *:* m), opening it does not.
    process = default_spec()["process"]
    caps = process["capabilities"]["bounding"] + ["CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_SYS_RAWIO"]
    process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    process.update(terminal=False, args=["sh", "-c", "mknod /tmp/mem c 1 1 && "
                                                     "(head -c1 /tmp/mem >/dev/null 2>&1 && echo opened || echo denied)"])
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "mknod /tmp/mem c 1 1 && (head -c1 /tmp/mem >/dev/null 2>&1 && echo opened || echo denied)", cid,
                 process=process)
    assert out.strip() == "denied"


def test_sysctl(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    out = run_in(rt, tmp_path, busybox_rootfs, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax", cid,
                 linux=linux)
    assert out.split() == ["1", "123456789"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789", "the host's value is untouched"
    bad = default_linux()
    bad["sysctl"] = {"kernel.panic": "1"}
    bundle = make_bundle(str(tmp_path / "bad"), busybox_rootfs, ["true"], linux=bad)
    proc = rt("run", "-b", bundle, cid + "bad")
    assert proc.returncode == 1 and b"not in a separate kernel namespace" in proc.stderr


# -- the process ------------------------------------------------------------------

def test_process_env_cwd_user_umask(rt, busybox_rootfs, tmp_path, cid):
    process = {"terminal": False, "args": ["sh", "-c", "echo $GREETING; pwd; id -u; id -g; id -G; umask; "
                                          "touch /tmp/f; stat -c %a /tmp/f; echo $HOME"],
               "env": ["PATH=/bin", "GREETING=hello"], "cwd": "/tmp",
               "user": {"uid": 65534, "gid": 65534, "additionalGids": [5, 7], "umask": 0o077}}
    out = run_in(rt, tmp_path, busybox_rootfs, "", cid, process={**default_spec()["process"], **process})
    lines = out.splitlines()
    assert lines[0] == "hello" and lines[1] == "/tmp"
    assert lines[2] == "65534" and lines[3] == "65534"
    assert set(lines[4].split()) == {"65534", "5", "7"}
    assert lines[5] == "0077" and lines[6] == "600"
    assert lines[7] == "/nonexistent"


def test_capabilities_and_no_new_privileges(rt, busybox_rootfs, tmp_path, cid):
    caps = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    process = default_spec()["process"]
    process.update(args=["sh", "-c", "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status"],
                   capabilities={"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
                                 "ambient": ["CAP_NET_BIND_SERVICE"]},
                   noNewPrivileges=True, terminal=False)
    out = run_in(rt, tmp_path, busybox_rootfs, "", cid, process=process)
    fields = dict(line.split(":\t") for line in out.splitlines())
    want = (1 << 0) | (1 << 10)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert int(fields[key], 16) == want, (key, fields)
    assert int(fields["CapAmb"], 16) == 1 << 10
    assert fields["NoNewPrivs"] == "1"


def test_rlimits_and_oom_score_adj(rt, busybox_rootfs, tmp_path, cid):
    process = default_spec()["process"]
    process.update(args=["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj"],
                   rlimits=[{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                            {"type": "RLIMIT_NPROC", "soft": 99, "hard": 99}],
                   oomScoreAdj=432, terminal=False)
    out = run_in(rt, tmp_path, busybox_rootfs, "", cid, process=process)
    assert out.split() == ["321", "654", "99", "432"]


def test_terminal_over_console_socket(rt, busybox_rootfs, tmp_path, cid):
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    received = {}

    def accept():
        conn, _ = server.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data)
        received["payload"] = msg
        received["fds"] = list(fds)
        received["eof"] = conn.recv(1) == b""
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    process = default_spec()["process"]
    process.update(args=["sh", "-c", "tty; stty size; echo hello-from-tty"], terminal=True,
                   consoleSize={"height": 30, "width": 100})
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, [], process=process)
    try:
        rt("create", "--console-socket", sock_path, "-b", bundle, cid, check=True)
        t.join(5)
        assert received["payload"] == b"/dev/ptmx" and len(received["fds"]) == 1 and received["eof"]
        master = received["fds"][0]
        rt("start", cid, check=True)
        out = b""
        deadline = time.monotonic() + 5
        while b"hello-from-tty" not in out and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert out.startswith(b"/dev/pts/0\r\n30 100\r\n"), out
        assert b"hello-from-tty\r\n" in out
    finally:
        server.close()
    mismatch = make_bundle(str(tmp_path / "nt"), busybox_rootfs, ["true"])
    proc = rt("create", "--console-socket", sock_path, "-b", mismatch, cid + "x")
    assert proc.returncode == 1 and b"cannot use console socket if runc will not detach or allocate tty" in proc.stderr
    tty_spec = default_spec()
    proc = rt("create", "-b", make_bundle(str(tmp_path / "t2"), busybox_rootfs, ["true"], process=tty_spec["process"]),
              cid + "y")
    assert proc.returncode == 1
    assert b"cannot allocate tty if runc will detach without setting console socket" in proc.stderr


def test_seccomp(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            # Docker's style of argument filter: uname allowed, but personality(0xffffffff) refused.
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_in_any_kernel"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    out = run_in(rt, tmp_path, busybox_rootfs,
                 "mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status; touch /tmp/f && echo touch-ok", cid, linux=linux)
    assert "Permission denied" in out, out
    assert "Seccomp:\t2" in out and "touch-ok" in out


def test_docker_default_seccomp_profile_runs_a_shell(rt, busybox_rootfs, tmp_path, cid):
    profile = docker_like_profile()
    linux = default_linux()
    linux["seccomp"] = profile
    out = run_in(rt, tmp_path, busybox_rootfs, "echo ok; grep Seccomp: /proc/self/status", cid, linux=linux)
    assert out.split()[0] == "ok" and "Seccomp:\t2" in out


def docker_like_profile() -> dict:
    """A profile with the shape of Docker's default: errno default, an allow list, arg filters."""
    allowed = ["read", "write", "openat", "close", "fstat", "newfstatat", "lseek", "mmap", "mprotect", "munmap",
               "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "pread64", "readv", "writev",
               "access", "pipe", "pipe2", "dup", "dup2", "dup3", "getpid", "getppid", "getuid", "geteuid",
               "getgid", "getegid", "gettid", "fcntl", "execve", "exit", "exit_group", "wait4", "clone",
               "clone3", "fork", "vfork", "arch_prctl", "set_tid_address", "set_robust_list", "prlimit64",
               "getrandom", "rseq", "uname", "getcwd", "chdir", "stat", "lstat", "poll", "ppoll", "getdents64",
               "sysinfo", "capget", "capset", "prctl", "setresuid", "setresgid", "setgroups", "umask",
               "futex", "sched_getaffinity", "getpgrp", "setpgid", "getpgid", "readlink", "readlinkat",
               "statx", "faccessat", "faccessat2", "kill", "tgkill", "nanosleep", "clock_nanosleep",
               "clock_gettime", "gettimeofday", "close_range", "keyctl", "sigaltstack", "mremap", "madvise"]
    return {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    }


# -- cgroups ---------------------------------------------------------------------

def test_cgroup_limits_apply(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["resources"].update({"memory": {"limit": 64 << 20, "reservation": 32 << 20},
                               "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                               "pids": {"limit": 20}})
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"], linux=linux)
    rt("run", "-d", "-b", bundle, cid, check=True)
    base = "/sys/fs/cgroup"

    def read(path):
        with open(f"{base}/{path}") as f:
            return f.read().strip()

    assert int(read(f"memory/{cid}/memory.limit_in_bytes")) == 64 << 20
    assert int(read(f"memory/{cid}/memory.soft_limit_in_bytes")) == 32 << 20
    assert read(f"cpu/{cid}/cpu.shares") == "512"
    assert read(f"cpu/{cid}/cpu.cfs_quota_us") == "50000"
    assert read(f"cpuset/{cid}/cpuset.cpus") == "0"
    assert read(f"pids/{cid}/pids.max") == "20"
    pid = rt.state(cid)["pid"]
    assert str(pid) in read(f"memory/{cid}/cgroup.procs").split()


def test_pids_limit_is_enforced(rt, busybox_rootfs, tmp_path, cid):
    linux = default_linux()
    linux["resources"]["pids"] = {"limit": 5}
    out = run_in(rt, tmp_path, busybox_rootfs,
                 # A refused fork ends an ash shell: fork in a subshell, then only builtins.
                 "(for i in 1 2 3 4 5 6 7 8; do sleep 3 & done) 2>/tmp/err; read n < /sys/fs/cgroup/pids/pids.current;"
                 " echo $n; c=0; while read l; do case $l in *fork*) c=$((c+1));; esac; done < /tmp/err; echo $c",
                 cid, linux=linux)
    current, refused = map(int, out.split())
    assert current <= 5 and refused >= 1


# -- hooks -------------------------------------------------------------------------

def test_hooks_run_in_order_with_state(rt, busybox_rootfs, tmp_path, cid):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook.chmod(0o755)
    # createContainer and startContainer run inside the container: give it the script too.
    inner = os.path.join(busybox_rootfs, "..", "inner-hook.sh")
    hooks = {kind: [{"path": str(hook), "args": ["hook.sh", kind]}]
             for kind in ("prestart", "createRuntime", "poststart", "poststop")}
    hooks["createContainer"] = [{"path": str(hook), "args": ["hook.sh", "createContainer"]}]
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"], hooks=hooks)
    rt("create", "-b", bundle, cid, check=True)
    kinds = [line.split(" ", 1)[0] for line in log.read_text().splitlines()]
    assert kinds == ["createRuntime", "createContainer"]
    pid = rt.state(cid)["pid"]
    states = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in log.read_text().splitlines()}
    assert states["createRuntime"]["pid"] == pid and states["createRuntime"]["id"] == cid
    assert states["createRuntime"]["bundle"] == bundle
    assert states["createRuntime"]["status"] == "creating"
    rt("start", cid, check=True)
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines[2:]] == ["prestart", "poststart"]
    assert json.loads(lines[2].split(" ", 1)[1])["status"] == "created"
    assert json.loads(lines[3].split(" ", 1)[1])["status"] == "running"
    rt("kill", cid, "9", check=True)
    deadline = time.monotonic() + 5
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    rt("delete", cid, check=True)
    last = log.read_text().splitlines()[-1]
    assert last.startswith("poststop ")
    assert json.loads(last.split(" ", 1)[1])["status"] == "stopped"
    assert not os.path.exists(inner)


def test_failing_hook_fails_create_and_cleans_up(rt, busybox_rootfs, tmp_path, cid):
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["true"], hooks=hooks)
    proc = rt("create", "-b", bundle, cid)
    assert proc.returncode == 1 and b"error running createRuntime hook #0: exit status 3" in proc.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{cid}")
    slow = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]}
    bundle = make_bundle(str(tmp_path / "c"), busybox_rootfs, ["true"], hooks=slow)
    started = time.monotonic()
    proc = rt("create", "-b", bundle, cid + "t")
    assert proc.returncode == 1 and b"timeout" in proc.stderr
    assert time.monotonic() - started < 4
