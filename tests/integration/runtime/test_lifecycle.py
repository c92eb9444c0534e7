"""dockyard-runtime's verbs on real containers: the lifecycle as managers drive it."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.support.runtime import make_bundle, read_spec, write_spec

pytestmark = pytest.mark.root


def wait_status(rt, cid, status, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rt.state(cid)["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never reached {status}: {rt.state(cid)}")


def test_create_start_state_kill_delete(rt, busybox_rootfs, tmp_path, cid):
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"],
                         annotations={"org.example.key": "value"})
    pid_file = tmp_path / "pid"
    rt("create", "--bundle", bundle, "--pid-file", pid_file, cid, check=True)
    raw = pid_file.read_bytes()
    assert raw.isdigit(), "pid file holds the decimal pid with no newline"
    pid = int(raw)
    state = rt.state(cid)
    assert state["status"] == "created"
    assert state["pid"] == pid
    assert state["bundle"] == bundle
    assert state["rootfs"] == bundle + "/rootfs"
    assert state["annotations"] == {"org.example.key": "value"}
    assert state["owner"] == ""
    assert state["created"].endswith("Z") and len(state["created"].split(".")[1]) == 10
    # The init is set up but the program has not run yet.
    assert os.readlink(f"/proc/{pid}/exe") != "/bin/busybox"
    out = rt("state", cid).stdout
    assert not out.endswith(b"\n") and out.startswith(b"{\n  \"ociVersion\"")

    rt("start", cid, check=True)
    wait_status(rt, cid, "running")
    assert "sleep" in open(f"/proc/{pid}/cmdline").read()

    again = rt("start", cid)
    assert again.returncode == 1 and b"cannot start an already running container" in again.stderr

    busy = rt("delete", cid)
    assert busy.returncode == 1
    assert f"cannot delete container {cid} that is not stopped: running".encode() in busy.stderr

    rt("kill", cid, "KILL", check=True)
    wait_status(rt, cid, "stopped")
    assert rt.state(cid)["pid"] == 0
    dead = rt("kill", cid, "TERM")
    assert dead.returncode == 1 and b"container not running" in dead.stderr
    rt("delete", cid, check=True)
    gone = rt("state", cid)
    assert gone.returncode == 1 and b"container does not exist" in gone.stderr
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{cid}")


@pytest.mark.parametrize("sig", ["9", "KILL", "SIGKILL", "kill"])
def test_kill_signal_spellings(rt, busybox_rootfs, tmp_path, cid, sig):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "--detach", "--bundle", tmp_path / "b", cid, check=True)
    rt("kill", cid, sig, check=True)
    wait_status(rt, cid, "stopped")


def test_kill_unknown_signal(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    bad = rt("kill", cid, "NOTASIGNAL")
    assert bad.returncode == 1
    assert b'unknown signal \\"NOTASIGNAL\\"' in bad.stderr or b'unknown signal "NOTASIGNAL"' in bad.stderr
    assert rt.state(cid)["status"] == "running"


def test_kill_all_and_default_signal(rt, busybox_rootfs, tmp_path, cid):
    # sh as pid 1 ignores SIGTERM without a handler; --all KILL reaches every process.
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    time.sleep(0.2)
    assert len(json.loads(rt("ps", "--format", "json", cid, check=True).stdout)) == 3
    rt("kill", "--all", cid, "9", check=True)
    wait_status(rt, cid, "stopped")


def test_run_foreground_exit_codes(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    proc = rt("run", "--bundle", tmp_path / "b", cid)
    assert proc.returncode == 3
    assert proc.stdout == b"out\n" and proc.stderr == b"err\n"
    assert rt("state", cid).returncode == 1, "run deletes the container when it exits"
    # Killed by a signal: 128 + n.  (Without a pid namespace: an init cannot SIGKILL itself.)
    linux = read_default_linux()
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "pid"]
    make_bundle(str(tmp_path / "c"), busybox_rootfs, ["sh", "-c", "kill -9 $$"], linux=linux)
    assert rt("run", "--bundle", tmp_path / "c", cid + "x").returncode == 137


def test_stdin_passes_through(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sh", "-c", "read line; echo got:$line"])
    proc = rt("run", "--bundle", tmp_path / "b", cid, input=b"hello\n")
    assert proc.returncode == 0 and proc.stdout == b"got:hello\n"


def test_delete_force_and_unknown(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    pid = rt.state(cid)["pid"]
    rt("delete", "--force", cid, check=True)
    assert rt("state", cid).returncode == 1
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert rt("delete", "--force", "never-existed").returncode == 0
    unknown = rt("delete", "never-existed")
    assert unknown.returncode == 1 and b"container does not exist" in unknown.stderr


def test_delete_of_created_container_needs_force(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["true"])
    rt("create", "-b", tmp_path / "b", cid, check=True)
    refused = rt("delete", cid)
    assert refused.returncode == 1 and b"not stopped: created" in refused.stderr
    assert rt.state(cid)["status"] == "created"
    rt("delete", "--force", cid, check=True)


def test_stopped_container_and_start_after_exit(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sh", "-c", "exit 3"])
    rt("create", "-b", tmp_path / "b", cid, check=True)
    rt("start", cid, check=True)
    wait_status(rt, cid, "stopped")
    again = rt("start", cid)
    assert again.returncode == 1 and b"cannot start a container that has stopped" in again.stderr
    ex = rt("exec", cid, "true")
    assert ex.returncode == 255 and b"exec failed: cannot exec in a stopped container" in ex.stderr
    paused = rt("pause", cid)
    assert paused.returncode == 1 and b"container not running" in paused.stderr
    ps = rt("ps", cid, check=True)
    assert ps.stdout.decode().splitlines()[0].split()[:2] == ["UID", "PID"]
    rt("delete", cid, check=True)


def test_id_in_use(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    before = rt.state(cid)
    dup = rt("--log", tmp_path / "log.json", "--log-format", "json", "create", "-b", tmp_path / "b", cid)
    assert dup.returncode == 1
    assert dup.stderr == b"dockyard-runtime create failed: container with given ID already exists\n"
    record = json.loads((tmp_path / "log.json").read_text().splitlines()[-1])
    assert record["level"] == "error" and record["msg"].endswith("container with given ID already exists")
    assert rt.state(cid) == before


def test_exec(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"], hostname="exec-host")
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    proc = rt("exec", cid, "sh", "-c", "hostname; exit 7")
    assert proc.returncode == 7 and proc.stdout == b"exec-host\n"
    env = rt("exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "65534:65534", cid, "sh", "-c",
             "echo $FOO $(pwd) $(id -u):$(id -g)", check=True)
    assert env.stdout == b"bar /tmp 65534:65534\n"
    process = {"args": ["sh", "-c", "echo from-process-file"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    det = rt("exec", "--process", tmp_path / "p.json", "--detach", "--pid-file", pid_file, cid)
    assert det.returncode == 0 and pid_file.read_bytes().isdigit()
    missing = rt("--log", tmp_path / "log.json", "--log-format", "json", "exec", cid, "/nonexistent")
    assert missing.returncode == 255
    assert (b'exec failed: unable to start container process: exec: "/nonexistent": '
            b"stat /nonexistent: no such file or directory") in missing.stderr
    assert json.loads((tmp_path / "log.json").read_text().splitlines()[-1])["level"] == "error"
    # Same pid namespace as the init: the exec'd process sees pid 1 as sleep.
    assert rt("exec", cid, "cat", "/proc/1/cmdline", check=True).stdout.startswith(b"sleep")


def test_pause_resume(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    pid = rt.state(cid)["pid"]
    rt("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    assert rt.state(cid)["pid"] == pid
    busy = rt("delete", cid)
    assert busy.returncode == 1 and b"not stopped: paused" in busy.stderr
    rt("resume", cid, check=True)
    assert rt.state(cid)["status"] == "running"
    rt("pause", cid, check=True)
    rt("delete", "--force", cid, check=True)


def test_update_resources(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"],
                linux={**read_default_linux(), "resources": {"memory": {"limit": 64 << 20}}})
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    limit = f"/sys/fs/cgroup/memory/{cid}/memory.limit_in_bytes"
    assert int(open(limit).read()) == 64 << 20
    (tmp_path / "r.json").write_text(json.dumps({"memory": {"limit": 32 << 20}, "pids": {"limit": 50}}))
    rt("update", "--resources", tmp_path / "r.json", cid, check=True)
    assert int(open(limit).read()) == 32 << 20
    assert open(f"/sys/fs/cgroup/pids/{cid}/pids.max").read().strip() == "50"
    rt("update", "--resources", "-", cid, input=json.dumps({"memory": {"limit": 48 << 20}}).encode(), check=True)
    assert int(open(limit).read()) == 48 << 20
    rt("update", "--memory", "40m", "--pids-limit", "60", cid, check=True)
    assert int(open(limit).read()) == 40 << 20
    assert open(f"/sys/fs/cgroup/pids/{cid}/pids.max").read().strip() == "60"


def read_default_linux() -> dict:
    from dockyard.runtime.spec import default_spec

    return default_spec()["linux"]


def test_list_ps_version_features(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("run", "-d", "-b", tmp_path / "b", cid, check=True)
    listed = json.loads(rt("list", "--format", "json", check=True).stdout)
    assert [c["id"] for c in listed] == [cid] and listed[0]["owner"] == "root"
    assert rt("list", "-q", check=True).stdout == cid.encode() + b"\n"
    table = rt("list", check=True).stdout.decode().splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    pids = json.loads(rt("ps", "--format", "json", cid, check=True).stdout)
    assert pids == [rt.state(cid)["pid"]]
    version = rt("--version", check=True).stdout.decode().splitlines()
    assert version[0].startswith("dockyard-runtime version ") and version[2] == "spec: 1.0.2-dev"
    assert version[1].startswith("commit: ")
    features = json.loads(rt("features", check=True).stdout)
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]
    assert "rbind" in features["mountOptions"] and "poststop" in features["hooks"]


def test_cli_grammar_errors(rt):
    unknown = rt("frobnicate")
    assert unknown.returncode == 3 and b"No help topic for 'frobnicate'" in unknown.stderr
    bad_flag = rt("create", "--frob", "x")
    assert bad_flag.returncode == 1 and b"flag provided but not defined: -frob" in bad_flag.stderr
    missing = rt("create")
    assert missing.returncode == 1 and b"create\\\" requires exactly 1 argument(s)" in missing.stderr
    for cmd in ("state", "delete", "start"):
        assert rt(cmd).returncode == 1
    assert rt("kill").returncode == 1
    assert b"USAGE" in rt("create", "--help", check=True).stdout
    assert rt("create", "--bundle", "/nonexistent", "x").returncode == 1


def test_systemd_cgroup_refused_without_systemd(rt, busybox_rootfs, tmp_path, cid):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this host runs systemd")
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["true"])
    proc = rt("create", "--bundle", bundle, cid, global_args=("--systemd-cgroup",))
    assert proc.returncode == 1
    assert b"systemd not running on this host, cannot use systemd cgroups manager" in proc.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_flag_spellings(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    log = tmp_path / "log.json"
    rt("--log-format=json", "--log", log, "create", f"--bundle={tmp_path / 'b'}", f"--pid-file={tmp_path / 'p'}",
       cid, check=True)
    rt("-log", log, "start", cid, check=True)
    rt("kill", cid, "9", check=True)
    wait_status(rt, cid, "stopped")
    rt("delete", "--force", cid, check=True)


def test_no_stray_fds_and_preserve_fds(rt, busybox_rootfs, tmp_path, cid):
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    r, w = os.pipe()  # fd 3 and 4 in the runtime, unrequested
    try:
        fds = rt("run", "-b", tmp_path / "b", cid, pass_fds=(r, w), check=True).stdout.split()
    finally:
        os.close(r)
        os.close(w)
    assert fds == [b"0", b"1", b"2", b"3"], fds  # 3 is ls's own directory fd
    spec = read_spec(str(tmp_path / "b"))
    spec["process"]["args"] = ["sh", "-c", "echo passed >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"]
    write_spec(str(tmp_path / "b"), spec)
    target = tmp_path / "through-fd3"
    # The caller's fd 3 reaches the container only when --preserve-fds asks for it.
    proc = subprocess.run(["sh", "-c", 'exec 3>"$0"; exec "$@"', str(target), rt.binary, "--root", rt.root,
                           "run", "--preserve-fds", "1", "-b", str(tmp_path / "b"), cid + "p"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == "passed\n"
    assert proc.stdout.split() == [b"0", b"1", b"2", b"3", b"4"]  # 4: ls's directory


def test_bad_bundles_leave_nothing(rt, busybox_rootfs, tmp_path, cid):
    bundle = make_bundle(str(tmp_path / "b"), busybox_rootfs, ["true"])
    config = tmp_path / "b" / "config.json"
    good = config.read_text()
    cases = {
        "{not json": b"invalid JSON",
        json.dumps({**json.loads(good), "root": {"path": "missing-rootfs"}}): b"does not exist",
        json.dumps({**json.loads(good), "root": {"path": "../../etc"}}): b"escapes the bundle",
        json.dumps({**json.loads(good), "process": {**json.loads(good)["process"], "args": []}}): b"process.args",
        json.dumps({**json.loads(good), "linux": {"namespaces": [{"type": "bogus"}]}}): b"unknown namespace type",
        json.dumps({**json.loads(good), "mounts": [{"destination": "/x", "type": "bind",
                                                    "source": "/nonexistent-src", "options": ["bind"]}]}):
            b"stat /nonexistent-src: no such file or directory",  # runc's words
    }
    for text, phrase in cases.items():
        config.write_text(text)
        proc = rt("create", "-b", bundle, cid)
        assert proc.returncode == 1, text
        assert phrase in proc.stderr, (phrase, proc.stderr)
        assert not os.path.exists(os.path.join(rt.root, cid)), "no state left behind"
        assert not os.path.exists(f"/sys/fs/cgroup/memory/{cid}"), "no cgroup left behind"
    missing = rt("create", "-b", tmp_path / "nope", cid)
    assert missing.returncode == 1 and b"no such file or directory" in missing.stderr
    config.write_text(good)
    rt("run", "-b", bundle, cid, check=True)
    assert str(tmp_path) not in open("/proc/self/mountinfo").read(), "no mount left in the host's namespace"


def test_nothing_of_ours_stays_resident(rt, busybox_rootfs, tmp_path, cid):
    """After `create` and `start` return, the container's pid is the program itself and no
    process of the runtime is left (the caller's own monitor holds the container, as with runc)."""
    make_bundle(str(tmp_path / "b"), busybox_rootfs, ["sleep", "60"])
    rt("create", "-b", tmp_path / "b", cid, check=True)
    rt("start", cid, check=True)
    pid = rt.state(cid)["pid"]
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{pid}/exe") != "/bin/busybox" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.readlink(f"/proc/{pid}/exe") == "/bin/busybox"
    ours = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if rt.root.encode() in cmdline:
                ours.append(cmdline)
    assert ours == [], "a runtime process outlived create/start"
