"""The same bundle under runc and dockyard-runtime: what the program sees must be the same.

Each case runs one shell script that prints, section by section, what a
container's process can observe about itself (hostname, pid, capability and
seccomp lines of /proc/self/status, ids, umask, cwd, rlimits, environment,
cgroups, mounts, /dev), under `runc run` and under `dockyard-runtime run`, with
the same spec and the same cgroup path, one after the other.  Mount ids, peer
group numbers and the path inside the source filesystem are left out of the
mount comparison: they differ from run to run for any runtime.

Where dockyard-runtime departs from runc 1.1 on purpose, `KNOWN` says how and
both sides are brought to one form for just that difference; everything else
must match exactly.
"""

from __future__ import annotations

import difflib
import re
import uuid

import pytest

from tests.support.runtime import Runtime, make_bundle, read_spec, runc_available, write_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.peers,
    pytest.mark.skipif(not runc_available(), reason="runc is not installed (Debian package runc)"),
]

SCRIPT = r"""
s() { echo "== $1"; }
s hostname; hostname
s pid; echo $$
s status; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
s ids; id
s umask; umask
s cwd; pwd
s ulimit-soft; ulimit -a
s ulimit-hard; ulimit -Ha
s env; env | sort
s oom_score_adj; cat /proc/self/oom_score_adj
s cgroup; cat /proc/self/cgroup
s mountinfo; cat /proc/self/mountinfo
s dev; stat -c '%n %F %a %t:%T %u:%g' /dev/* /dev/pts/* /dev/shm /dev/mqueue 2>&1
s fds; ls /proc/self/fd
s writable; touch /probe 2>&1 | sed 's/^touch: //'; mkdir /tmp/probe 2>&1 | sed 's/^mkdir: //'
s sysctl; cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_forward 2>&1
s masked; cat /proc/kcore 2>&1 | head -c 64; ls /proc/acpi 2>&1; echo 1 > /proc/sys/vm/drop_caches 2>&1
true
"""

# The second case narrows everything down: another user with extra groups and a
# umask, fewer capabilities, rlimits, a read-only root with a tmpfs and a
# read-only bind, a sysctl, an oom score, a seccomp filter, a cgroup namespace.
RESTRICTED = {
    "process": {
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 100], "umask": 0o027},
        "cwd": "/tmp",
        "env": ["PATH=/bin", "ONE=1", "TWO=two words"],
        "capabilities": {k: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]
                         for k in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
                    {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200},
                    {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
        "noNewPrivileges": True,
        "oomScoreAdj": 300,
    },
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "sysctl": {"kernel.shmmni": "2048"},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
    },
    "extra_mounts": [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=8m"]},
        {"destination": "/mnt", "type": "bind", "source": "/etc", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/srv", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro", "size=1m"]},
    ],
}


def parse(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:], [])
        elif current is not None:
            current.append(line)
    mounts = (normal_mount(line) for line in sections.get("mountinfo", []))
    sections["mountinfo"] = sorted(" ".join(m) for m in mounts if m is not None)
    # On a hybrid host the container is not made a member of the v2 hierarchy ("0::"):
    # it holds no controller the container uses, and the move would wait for an RCU
    # grace period (see cgroups.join_self).  runc moves it there.
    sections["cgroup"] = [line for line in sections.get("cgroup", []) if not line.startswith("0::")]
    return sections


# Deliberate departures from runc 1.1.5, each brought to one form before comparing:
KNOWN = {
    # Cgroup hierarchies come in another order (neither is more right: they do not overlap),
    # so mount lists are compared sorted; the named systemd hierarchy's source is "cgroup"
    # where runc (with a cgroup namespace) writes "systemd".
    "cgroup mount source": lambda m: m[:4] + ("cgroup",) + m[5:] if m[3] == "cgroup" else m,
    # On a hybrid host we also mount the v2 hierarchy (/sys/fs/cgroup/unified); runc does not.
    "unified": lambda m: None if m[0] == "/sys/fs/cgroup/unified" else m,
    # The spec's cgroup mount says "ro": we make the tmpfs at /sys/fs/cgroup read-only too;
    # runc leaves it writable (only the hierarchies below are read-only).
    "cgroup tmpfs ro": lambda m: (m[0], m[1].replace("ro,", "rw,", 1), m[2], m[3], m[4], m[5].replace("ro,", "rw,", 1))
    if m[0] == "/sys/fs/cgroup" and m[3] == "tmpfs" else m,
    # readonlyPaths are remounted nosuid,nodev,noexec as well as ro (runc 1.2 does the same).
    "readonly paths": lambda m: (m[0], m[1].replace(",nosuid,nodev,noexec", ""),) + m[2:]
    if m[0].startswith("/proc/") and m[3] == "proc" else m,
}


def normal_mount(line: str) -> tuple | None:
    """mount point, mount options, propagation kinds, fstype, source, super options (no ids)."""
    before, _, after = line.partition(" - ")
    fields = before.split()
    tags = sorted(t.split(":")[0] for t in fields[6:])
    fstype, source, superopts = (after.split() + ["", "", ""])[:3]
    mount = (fields[4], fields[5], ",".join(tags) or "-", fstype, source, superopts)
    for same in KNOWN.values():
        if mount is not None:
            mount = same(mount)
    return mount


def run_both(rt, busybox_rootfs, tmp_path, changes: dict) -> tuple[dict, dict]:
    runc = Runtime("runc", str(tmp_path / "runc-root"))
    changes = dict(changes)
    extra = changes.pop("extra_mounts", [])
    cgroup = f"/dockyard-parity-{uuid.uuid4().hex[:8]}"
    seen = {}
    try:
        for name, runtime in (("runc", runc), ("ours", rt)):
            bundle = make_bundle(str(tmp_path / name), busybox_rootfs, ["sh", "-c", SCRIPT], **changes)
            spec = read_spec(bundle)
            spec["mounts"] += extra
            spec["linux"]["cgroupsPath"] = cgroup
            write_spec(bundle, spec)
            proc = runtime("run", "--bundle", bundle, f"parity-{name}-{uuid.uuid4().hex[:6]}")
            assert proc.returncode == 0, (name, proc.stderr.decode(errors="replace"))
            seen[name] = parse(proc.stdout.decode(errors="replace"))
    finally:
        runc.cleanup()
    return seen["runc"], seen["ours"]


def assert_same(runc: dict, ours: dict) -> None:
    assert runc, "runc printed nothing"
    problems = []
    for section in runc.keys() | ours.keys():
        a, b = runc.get(section, []), ours.get(section, [])
        if a != b:
            diff = "\n".join(difflib.unified_diff(a, b, "runc", "dockyard-runtime", lineterm="", n=0))
            problems.append(f"[{section}]\n{diff}")
    assert not problems, "\n\n".join(sorted(problems))


def test_default_spec_looks_the_same(rt, busybox_rootfs, tmp_path):
    runc, ours = run_both(rt, busybox_rootfs, tmp_path, {})
    assert runc["pid"] == ["1"] and runc["hostname"] == ["runc"]
    assert_same(runc, ours)


def test_restricted_spec_looks_the_same(rt, busybox_rootfs, tmp_path):
    spec_changes = dict(RESTRICTED)
    runc, ours = run_both(rt, busybox_rootfs, tmp_path, spec_changes)
    assert any(line.startswith("uid=1000") for line in runc["ids"])
    assert_same(runc, ours)



def _error_line(stderr: bytes, runtime: str) -> str:
    """The runtime's error without its time stamp and with runc's name for itself."""
    text = stderr.decode(errors="replace").replace("dockyard-runtime", "runc")
    return re.sub(r'time="[^"]*" ', "", text)


def test_working_directories_as_runc(rt, busybox_rootfs, tmp_path):
    """The init's cwd is made when missing (even on a read-only root) and must be a directory; an exec's
    is not made: both fail with runc's words and status."""
    runc = Runtime("runc", str(tmp_path / "runc-root"))
    seen: dict[str, list] = {}
    try:
        for name, runtime in (("runc", runc), ("ours", rt)):
            results = seen.setdefault(name, [])
            for i, (cwd, readonly) in enumerate((("/new/dir", True), ("/etc/passwd/x", False))):
                bundle = make_bundle(str(tmp_path / f"{name}{i}"), busybox_rootfs, ["sh", "-c", "pwd; ls -ld ."],
                                     process={"cwd": cwd}, root={"path": "rootfs", "readonly": readonly})
                proc = runtime("run", "--bundle", bundle, f"cwd-{name}-{uuid.uuid4().hex[:6]}")
                results.append((proc.returncode, proc.stdout.decode()[:40], _error_line(proc.stderr, name)))
            cid = f"cwd-{name}-{uuid.uuid4().hex[:6]}"
            runtime("run", "-d", "--bundle", make_bundle(str(tmp_path / f"{name}-d"), busybox_rootfs, ["sleep", "60"]),
                    cid, check=True)
            for cwd in ("/nonexist", "/etc/passwd"):
                proc = runtime("exec", "--cwd", cwd, cid, "true")
                results.append((proc.returncode, proc.stdout.decode(), _error_line(proc.stderr, name)))
    finally:
        runc.cleanup()
    assert seen["runc"][0][:2] == (0, "/new/dir\ndrwxr-xr-x    2 root     root  ")
    assert "error during container init: mkdir /etc/passwd: not a directory" in seen["runc"][1][2]
    assert 'chdir to cwd (\\"/nonexist\\") set in config.json failed: no such file or directory' in seen["runc"][2][2]
    assert seen["ours"] == seen["runc"]


@pytest.mark.parametrize("mount", [
    {"destination": "/x", "type": "bind", "source": "/nonexistent-source", "options": ["rbind"]},
    {"destination": "/etc", "type": "bind", "source": "/etc/hostname", "options": ["rbind"]},
    {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "bogus=1"]},
])
def test_a_failed_mount_is_reported_in_runcs_words(rt, busybox_rootfs, tmp_path, mount):
    """runc's `error mounting "<source>" to rootfs at "<destination>": …` (but for the /proc/self/fd path
    runc mounts through, which is its own)."""
    runc = Runtime("runc", str(tmp_path / "runc-root"))
    seen = {}
    try:
        for name, runtime in (("runc", runc), ("ours", rt)):
            bundle = make_bundle(str(tmp_path / name), busybox_rootfs, ["true"])
            spec = read_spec(bundle)
            spec["mounts"].append(mount)
            write_spec(bundle, spec)
            proc = runtime("run", "--bundle", bundle, f"mnt-{name}-{uuid.uuid4().hex[:6]}")
            seen[name] = (proc.returncode, re.sub(r" \(via /proc/self/fd/\d+\)", "",
                                                  _error_line(proc.stderr, name)))
    finally:
        runc.cleanup()
    assert f'error mounting \\"{mount["source"]}\\" to rootfs at \\"{mount["destination"]}\\"' in seen["runc"][1]
    assert seen["ours"] == seen["runc"]
