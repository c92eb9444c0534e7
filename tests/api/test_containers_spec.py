"""What a container gets: Docker's defaults (capabilities, masked paths, seccomp, engine-managed files)
and the run options (limits, users, capabilities, init, network, runtime), seen from inside the
container, plus the generated spec compared with the one the peer dockerd writes.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from dockyard.daemon import seccomp_default
from tests.api.containers_support import Api
from tests.support.dockerd import peer_docker  # noqa: F401

pytestmark = pytest.mark.root

PEER_BUNDLES = "/tmp/dockyard-peers/docker-exec/containerd/daemon/io.containerd.runtime.v2.task/moby"


@pytest.fixture(scope="module")
def api(engine, busybox_image) -> Api:
    return Api(str(engine.socket))


def sh(api: Api, script: str, **config) -> tuple[int, str, str]:
    code, out, err = api.run(["sh", "-c", script], **config)
    return code, out.decode(), err.decode()


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


# --- defaults --------------------------------------------------------------------------------------------


def test_default_capabilities_are_dockers(api):
    code, out, _ = sh(api, "cat /proc/1/status")
    assert code == 0
    # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
    # AUDIT_WRITE SETFCAP
    assert status_field(out, "CapEff") == "00000000a80425fb"
    assert status_field(out, "CapBnd") == "00000000a80425fb"
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Seccomp") == "2"


def test_default_seccomp_and_readonly_proc(api):
    code, out, err = sh(api, "unshare -n true; echo unshare=$?; mount -t tmpfs t /mnt; echo mount=$?; "
                             "echo x > /proc/sys/kernel/domainname; echo proc_sys=$?; "
                             "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l")
    assert "unshare=1" in out and "mount=1" in out and "proc_sys=1" in out
    assert "Operation not permitted" in err and "Read-only file system" in err
    lines = out.splitlines()
    assert lines[-2] == "0" and lines[-1] == "0"  # masked: /dev/null and an empty tmpfs


def test_engine_managed_files_and_hostname(api):
    cid = api.create(["sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf; "
                                  "grep -E ' /etc/(hosts|hostname|resolv.conf) ' /proc/self/mountinfo | wc -l"])
    try:
        api.start(cid)
        assert api.wait(cid) == 0
        out = b"".join(p for s, p in api.logs(cid) if s == 1).decode().splitlines()
        assert out[0] == cid[:12] and out[1] == cid[:12]
        assert "127.0.0.1\tlocalhost" in out
        assert not any(line.startswith("nameserver 127.") for line in out)
        assert out[-1] == "3"
        info = api.inspect(cid)
        with open(info["HostnamePath"]) as f:
            assert f.read() == cid[:12] + "\n"
    finally:
        api.remove(cid)


def test_network_none_has_a_loopback_only_and_default_adds_the_bridge(api):
    for mode, names in (("none", ["lo"]), ("default", ["lo", "eth0"])):
        code, out, _ = sh(api, "ip -o link; ip -o addr show lo", HostConfig={"NetworkMode": mode})
        assert code == 0
        links = [line for line in out.splitlines() if ": " in line and "link/" in line]
        assert [line.split(": ")[1].split("@")[0] for line in links] == names
        assert all("UP" in line for line in links) and "127.0.0.1/8" in out


def test_network_host_shares_the_hosts_interfaces_and_name(api):
    code, out, _ = sh(api, "ip -o link | wc -l; hostname", HostConfig={"NetworkMode": "host"})
    host_links = len(os.listdir("/sys/class/net"))
    lines = out.splitlines()
    assert int(lines[0]) == host_links and lines[1] == os.uname().nodename


# --- options ---------------------------------------------------------------------------------------------


def test_limits_reach_the_cgroup(api):
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes "
              "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares "
              "/sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/pids/pids.max")
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("these checks read cgroup v1 files")
    code, out, err = sh(api, script, HostConfig={"Memory": 64 << 20, "MemorySwap": 128 << 20,
                                                 "NanoCpus": 500_000_000, "CpuShares": 512,
                                                 "CpusetCpus": "0", "PidsLimit": 50})
    assert code == 0, err
    assert out.split() == [str(64 << 20), str(128 << 20), "50000", "100000", "512", "0", "50"]
    code, out, _ = sh(api, "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
                      HostConfig={"Memory": 64 << 20})
    assert out.split() == [str(128 << 20)]  # docker's default swap: as much as the memory


def test_out_of_memory_is_reported(api):
    cid = api.create(["sh", "-c", "a=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived"],
                     HostConfig={"Memory": 16 << 20, "MemorySwap": 16 << 20})
    try:
        api.start(cid)
        assert api.wait(cid) == 137
        state = api.inspect(cid)["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        api.remove(cid)


def test_ulimits_and_no_new_privileges(api):
    code, out, _ = sh(api, "ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status",
                      HostConfig={"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}],
                                  "SecurityOpt": ["no-new-privileges"]})
    lines = out.splitlines()
    assert lines[0] == "100" and lines[1] == "200" and lines[2].split()[-1] == "1"


def test_cap_add_and_drop(api):
    code, out, _ = sh(api, "grep CapEff /proc/1/status; unshare -n true && echo unshared",
                      HostConfig={"CapAdd": ["SYS_ADMIN"], "CapDrop": ["CHOWN"]})
    eff = int(out.splitlines()[0].split()[1], 16)
    assert eff & (1 << 21)  # CAP_SYS_ADMIN
    assert not eff & 1      # CAP_CHOWN
    assert "unshared" in out  # the seccomp profile widens with the capability
    code, out, _ = sh(api, "grep CapEff /proc/1/status", HostConfig={"CapDrop": ["ALL"]})
    assert out.split()[1] == "0000000000000000"


def test_privileged(api):
    code, out, err = sh(api, "grep -E 'CapEff|Seccomp:' /proc/1/status; mount -t tmpfs t /tmp && echo mounted; "
                             "ls /dev | wc -l", HostConfig={"Privileged": True})
    assert code == 0, err
    assert "mounted" in out
    assert status_field(out, "Seccomp") == "0"
    assert int(out.splitlines()[-1]) > 15


def test_read_only_root(api):
    code, out, err = sh(api, "touch /x; echo root=$?; touch /tmp/y; echo tmp=$?; echo ok > /w/f && cat /w/f",
                        HostConfig={"ReadonlyRootfs": True, "Tmpfs": {"/w": ""}})
    assert "root=1" in out and "tmp=1" in out and "ok" in out.splitlines()[-1]
    assert "Read-only file system" in err


def test_users_from_the_image(api):
    assert sh(api, "id", User="nobody")[1].strip() == "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)"
    assert sh(api, "id", User="nobody:tty")[1].strip() == "uid=65534(nobody) gid=5(tty) groups=5(tty)"
    assert sh(api, "id", User="1234:55")[1].strip() == "uid=1234 gid=55 groups=55"
    cid = api.create(["id"], User="nosuchuser")
    try:
        status, body = api.post(f"/containers/{cid}/start")
        assert status >= 400 and "unable to find user nosuchuser" in body["message"]
    finally:
        api.remove(cid)


def test_an_image_without_passwd_runs_as_root_by_number(engine, tmp_path):
    """No /etc/passwd in the image (FROM scratch and a static binary): no user runs as 0:0, as dockerd;
    a user name has nothing to be found in."""
    import tarfile

    from tests.support.engine import import_busybox

    tar = tmp_path / "bare.tar"
    with tarfile.open(tar, "w") as out:
        out.add(shutil.which("busybox") or "/bin/busybox", arcname="bin/busybox")
    import_busybox(engine, tar, "bare:1")
    api = Api(str(engine.socket))
    code, out, _ = api.run(["/bin/busybox", "id"], image="bare:1")
    assert (code, out) == (0, b"uid=0 gid=0 groups=0\n")
    cid = api.create(["/bin/busybox", "id"], image="bare:1", User="root")
    try:
        status, body = api.post(f"/containers/{cid}/start")
        assert status >= 400 and "unable to find user root: no matching entries in passwd file" in body["message"]
    finally:
        api.remove(cid)


def test_env_workdir_hostname_entrypoint(api):
    code, out, _ = api.run(["hello"], Entrypoint=["sh", "-c", 'pwd; echo "$FOO $0"; hostname'],
                           Env=["FOO=bar"], WorkingDir="/tmp", Hostname="myhost")
    assert out.decode().splitlines() == ["/tmp", "bar hello", "myhost"]
    code, out, _ = api.run(None, Entrypoint=["echo", "from-entrypoint"])
    assert out == b"from-entrypoint\n"


@pytest.mark.skipif(not os.path.exists("/usr/bin/tini-static"), reason="tini (Debian package tini) is missing")
def test_init_reaps_zombies_and_forwards_signals(api):
    code, out, _ = sh(api, "cat /proc/1/cmdline | tr '\\0' ' '; echo; (sleep 0.1 &) ; sleep 0.5; "
                           "ps -o stat,comm | grep -c '^Z' || true", HostConfig={"Init": True})
    lines = out.splitlines()
    assert lines[0].startswith("/sbin/docker-init -- sh")
    assert lines[-1] == "0"  # the orphaned sleep was reaped
    cid = api.create(["sh", "-c", "trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done"],
                     HostConfig={"Init": True})
    try:
        api.start(cid)
        from tests.api.containers_support import eventually

        eventually(lambda: api.logs(cid))
        assert api.post(f"/containers/{cid}/stop", t=10)[0] == 204
        assert api.inspect(cid)["State"]["ExitCode"] == 9  # tini passed TERM on to the shell
    finally:
        api.remove(cid)


@pytest.mark.peers
def test_runc_runs_the_same_container(api):
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    code, out, err = sh(api, "hostname; grep CapEff /proc/1/status; ip -o link | wc -l; exit 3",
                        HostConfig={"Runtime": "runc"})
    assert code == 3, err
    lines = out.splitlines()
    # lo and eth0: runc joins the network namespace the engine made and plugged into the bridge
    assert len(lines[0]) == 12 and lines[1].split()[1] == "00000000a80425fb" and lines[2] == "2"


@pytest.mark.peers
def test_default_runtime_option(tmp_path, busybox_tar):
    """dockyardd --default-runtime runc: containers that name no runtime run under runc."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    from tests.support.engine import Engine, import_busybox

    engine = Engine(tmp_path / "engine", extra_args=("--default-runtime", "runc")).start()
    try:
        import_busybox(engine, busybox_tar)
        api = Api(str(engine.socket))
        cid = api.create(["sleep", "30"])
        api.start(cid)
        assert api.inspect(cid)["HostConfig"]["Runtime"] == "runc"
        assert os.path.isfile(engine.exec_root / "runc" / cid / "state.json")
        assert api.get("/info")[1]["DefaultRuntime"] == "runc"
        api.remove(cid)
    finally:
        engine.cleanup()


# --- the spec next to dockerd's -------------------------------------------------------------------------------


def our_spec(api: Api, engine, host_config: dict | None = None) -> dict:
    cid = api.create(["sleep", "30"], HostConfig=host_config or {})
    try:
        api.start(cid)
        with open(engine.exec_root / "containers" / cid / "config.json") as f:
            return json.load(f)
    finally:
        api.remove(cid)


def peer_spec(docker, *flags: str) -> dict:
    cid = docker.run("run", "-d", "--network", "none", *flags, "bb", "sleep", "30").stdout.decode().strip()
    try:
        with open(os.path.join(PEER_BUNDLES, cid, "config.json")) as f:
            return json.load(f)
    finally:
        docker.run("rm", "-f", cid, check=False)


CLONE_FLAGS = (0, 0x11, 0x3D0F00, 0x20000, 0x10000000, 0x20000000, 0x40000000, 0x04000000, 0x02000000)
PERSONALITIES = (0, 8, 0x20000, 0x20008, 0xFFFFFFFF, 0x0040000, 0x1, 0x400000)


def decisions(section: dict, names: set[str]) -> dict:
    out = {name: seccomp_default.decide(section, name) for name in names}
    for flags in CLONE_FLAGS:
        out[f"clone({flags:#x})"] = seccomp_default.decide(section, "clone", (flags,))
    for persona in PERSONALITIES:
        out[f"personality({persona:#x})"] = seccomp_default.decide(section, "personality", (persona,))
    return out


@pytest.mark.peers
@pytest.mark.parametrize("flags, host_config", [
    ((), {}),
    (("--cap-add", "SYS_ADMIN"), {"CapAdd": ["SYS_ADMIN"]}),
    (("--cap-add", "SYS_PTRACE", "--cap-add", "SYS_TIME", "--cap-drop", "SYS_CHROOT"),
     {"CapAdd": ["SYS_PTRACE", "SYS_TIME"], "CapDrop": ["SYS_CHROOT"]}),
    (("--cap-drop", "ALL"), {"CapDrop": ["ALL"]}),
], ids=["default", "sys_admin", "ptrace_time_nochroot", "drop_all"])
def test_spec_matches_dockerd(api, engine, peer_docker, flags, host_config):  # noqa: F811
    theirs = peer_spec(peer_docker, *flags)
    ours = our_spec(api, engine, dict(host_config, NetworkMode="none"))
    their_seccomp, our_seccomp = theirs["linux"]["seccomp"], ours["linux"]["seccomp"]
    names = {n for section in (their_seccomp, our_seccomp) for rule in section["syscalls"] for n in rule["names"]}
    names |= {"mount", "reboot", "kexec_load", "bpf", "unshare", "setns", "clone3", "keyctl", "add_key",
              "ptrace", "chroot", "acct", "swapon", "init_module", "open_by_handle_at", "userfaultfd"}
    assert decisions(our_seccomp, names) == decisions(their_seccomp, names)
    assert our_seccomp["defaultAction"] == their_seccomp["defaultAction"]
    assert our_seccomp.get("architectures") == their_seccomp.get("architectures")
    for key in ("bounding", "effective", "permitted"):
        assert sorted(ours["process"]["capabilities"].get(key) or []) == \
            sorted(theirs["process"]["capabilities"].get(key) or [])
    assert ours["linux"]["maskedPaths"] == theirs["linux"]["maskedPaths"]
    assert ours["linux"]["readonlyPaths"] == theirs["linux"]["readonlyPaths"]
    assert ours["linux"]["resources"]["devices"] == theirs["linux"]["resources"]["devices"]
    assert ours["linux"]["sysctl"] == theirs["linux"]["sysctl"]
    assert [n["type"] for n in ours["linux"]["namespaces"]] == [n["type"] for n in theirs["linux"]["namespaces"]]
    ours_mounts = [(m["destination"], m["type"], m.get("options")) for m in ours["mounts"]]
    theirs_mounts = [(m["destination"], m["type"], m.get("options")) for m in theirs["mounts"]]
    assert ours_mounts == theirs_mounts
    assert ours["process"]["env"][0].startswith("PATH=") and any(e.startswith("HOSTNAME=") for e in ours["process"]["env"])
