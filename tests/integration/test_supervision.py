"""Supervision: containers outlive dockyardd, and restart policies survive its restarts and a reboot.

Each test has a daemon of its own (the `fresh_engine` fixture) because it kills
and restarts it: with SIGKILL (a crash), SIGTERM (a clean stop), or by also
killing the monitor with every container and clearing the exec root (what a
machine reboot leaves behind).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.api.containers_support import Api, eventually
from tests.support.engine import busybox_tar, fresh_engine, import_busybox  # noqa: F401

pytestmark = pytest.mark.root

TICKER = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]


@pytest.fixture
def api(fresh_engine, busybox_tar) -> Api:  # noqa: F811
    import_busybox(fresh_engine, busybox_tar)
    return Api(str(fresh_engine.socket))


def ticks(api: Api, cid: str) -> list[tuple[int, str]]:
    frames = api.logs(cid, timestamps=1)
    out = []
    for _, payload in frames:
        stamp, _, text = payload.decode().partition(" ")
        out.append((int(text.split()[1]), stamp))
    return out


def assert_continuous(numbers: list[int]) -> None:
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "a gap in the log"


def reboot(engine, cids: list[str]) -> None:
    """What a machine restart leaves: no daemon, no monitor, no container process or cgroup, an empty
    exec root; nobody saw the containers die."""
    from dockyard.cgroups import open_manager

    engine.kill()
    os.kill(engine.monitor_pid(), 9)
    for cid in cids:
        cgroup = open_manager(f"/dockyard/{cid}")
        if cgroup.exists():
            cgroup.kill_all(9)
            eventually(lambda cgroup=cgroup: not cgroup.pids())
            cgroup.destroy()
    for point in sorted(engine.mounts_below(), key=len, reverse=True):
        if point.startswith(str(engine.exec_root)):
            subprocess.run(["umount", "-l", point], check=True)
    shutil.rmtree(engine.exec_root)


def test_daemon_crash_loses_nothing(fresh_engine, api):  # noqa: F811
    engine = fresh_engine
    ticker = api.create(TICKER, name="ticker")
    short = api.create(["sh", "-c", "sleep 1; echo bye; exit 3"], name="short")
    always = api.create(["sh", "-c", "echo run; sleep 1; exit 1"], name="always",
                        HostConfig={"RestartPolicy": {"Name": "always"}})
    for cid in (ticker, short, always):
        api.start(cid)
    ticker_pid = api.inspect(ticker)["State"]["Pid"]
    monitor = engine.monitor_pid()
    assert monitor is not None
    time.sleep(0.3)

    engine.kill()                                   # crash: SIGKILL, nothing cleaned up
    crashed_at = time.time()
    time.sleep(2.0)                                 # meanwhile: ticks, short exits 3, always exits 1
    engine.start()

    assert engine.monitor_pid() == monitor          # the same monitor supervised all along
    state = api.inspect(ticker)["State"]
    assert state["Running"] and state["Pid"] == ticker_pid
    numbers = [n for n, _ in ticks(api, ticker)]
    assert_continuous(numbers)
    during = [stamp for _, stamp in ticks(api, ticker)
              if crashed_at + 0.3 < _seconds(stamp) < crashed_at + 1.7]
    assert len(during) >= 8, "the monitor kept logging while the daemon was down"

    state = api.inspect(short)["State"]
    assert not state["Running"] and state["ExitCode"] == 3 and state["Status"] == "exited"
    assert crashed_at < _seconds(state["FinishedAt"]) < crashed_at + 2.0
    assert [p for _, p in api.logs(short)] == [b"bye\n"]

    eventually(lambda: api.inspect(always)["RestartCount"] >= 1 and api.inspect(always)["State"]["Running"])
    eventually(lambda: [p for _, p in api.logs(always)].count(b"run\n") >= 2)

    # and the daemon goes on managing what it found
    code, out, _ = exec_in(api, engine, ticker, ["echo", "still here"])
    assert out == b"still here\n"
    assert api.post(f"/containers/{ticker}/stop", t=1)[0] == 204
    for cid in (ticker, short, always):
        api.remove(cid)
    assert not [p for p in engine.mounts_below() if "/containers/" in p]


def test_clean_daemon_stop_keeps_containers_running_and_attachable(fresh_engine, api):  # noqa: F811
    engine = fresh_engine
    cid = api.create(TICKER)
    api.start(cid)
    assert engine.stop() == 0
    time.sleep(0.5)
    engine.start()
    assert api.inspect(cid)["State"]["Running"]
    # a wait started after the restart ends with the container
    import threading

    results = {}
    t = threading.Thread(target=lambda: results.setdefault("code", api.wait(cid)))
    t.start()
    time.sleep(0.2)
    api.post(f"/containers/{cid}/kill", signal="KILL")
    t.join(20)
    assert results.get("code") == 137
    assert_continuous([n for n, _ in ticks(api, cid)])
    api.remove(cid)


def test_exit_codes_are_on_disk_even_without_the_monitor(fresh_engine, api):  # noqa: F811
    engine = fresh_engine
    cid = api.create(["sh", "-c", "sleep 0.5; exit 4"])
    api.start(cid)
    engine.kill()
    time.sleep(1.0)
    with open(engine.data_root / "containers" / cid / "exit.json") as f:
        record = json.load(f)
    assert record["code"] == 4
    # the monitor, killed now, took nothing with it: the exit is read back from disk
    os.kill(engine.monitor_pid(), 9)
    time.sleep(0.2)
    engine.start()
    state = api.inspect(cid)["State"]
    assert state["ExitCode"] == 4 and state["Status"] == "exited"
    api.remove(cid)


def test_restart_policies_after_a_reboot(fresh_engine, api):  # noqa: F811
    engine = fresh_engine
    names = {}
    for policy in ("always", "unless-stopped", "no", "on-failure"):
        names[policy] = api.create(["sh", "-c", f"echo boot-{policy}; sleep 600"], name=f"p-{policy}",
                                   HostConfig={"RestartPolicy": {"Name": policy}})
        api.start(names[policy])
    stopped = api.create(["sleep", "600"], name="p-stopped", HostConfig={"RestartPolicy": {"Name": "unless-stopped"}})
    api.start(stopped)
    assert api.post(f"/containers/{stopped}/stop", t=0)[0] == 204
    always_stopped = api.create(["sleep", "600"], name="p-always-stopped",
                                HostConfig={"RestartPolicy": {"Name": "always"}})
    api.start(always_stopped)
    assert api.post(f"/containers/{always_stopped}/stop", t=0)[0] == 204

    reboot(engine, [*names.values(), stopped, always_stopped])
    engine.start()

    def up(cid: str) -> bool:
        return api.inspect(cid)["State"]["Running"]

    # always (even when stopped by hand), unless-stopped (unless stopped), and on-failure (the reboot
    # ended its run with 255, a failure) come back; "no" does not.
    eventually(lambda: up(names["always"]) and up(names["unless-stopped"]) and up(always_stopped)
               and up(names["on-failure"]))
    time.sleep(0.5)
    assert not up(names["no"]) and not up(stopped)
    assert api.inspect(names["no"])["State"]["ExitCode"] == 255
    assert api.inspect(names["no"])["State"]["Status"] == "exited"
    # what was written before the reboot is still there, then the new boot's output
    eventually(lambda: [p for _, p in api.logs(names["always"])] == [b"boot-always\n", b"boot-always\n"])
    code, out, _ = exec_in(api, engine, names["always"], ["cat", "/etc/hostname"])
    assert out == names["always"][:12].encode() + b"\n"
    for cid in list(names.values()) + [stopped, always_stopped]:
        api.remove(cid)


def test_monitor_death_is_noticed_and_policies_apply(fresh_engine, api):  # noqa: F811
    engine = fresh_engine
    lost = api.create(["sleep", "600"])
    keeps = api.create(["sleep", "600"], HostConfig={"RestartPolicy": {"Name": "always"}})
    api.start(lost)
    api.start(keeps)
    old_pid = api.inspect(keeps)["State"]["Pid"]
    os.kill(engine.monitor_pid(), 9)
    eventually(lambda: api.inspect(lost)["State"]["Status"] == "exited")
    assert api.inspect(lost)["State"]["ExitCode"] == 255
    eventually(lambda: api.inspect(keeps)["State"]["Running"] and api.inspect(keeps)["State"]["Pid"] != old_pid)
    assert not os.path.exists(f"/proc/{old_pid}") or _is_zombie(old_pid)
    api.remove(lost)
    api.remove(keeps)


def exec_in(api: Api, engine, cid: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
    from tests.api.containers_support import demux, hijack

    status, body = api.post(f"/containers/{cid}/exec", {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
    assert status == 201, body
    stream = hijack(str(engine.socket), f"/exec/{body['Id']}/start", b'{"Tty":false}', "application/json")
    out, err = demux(stream.read_all())
    code = api.get(f"/exec/{body['Id']}/json")[1]["ExitCode"]
    return code, out, err


def _seconds(stamp: str) -> float:
    from dockyard.daemon.containers import parse_time

    return parse_time(stamp)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_leftovers_of_a_crash_during_create_are_swept(fresh_engine, api):  # noqa: F811
    """A crash between preparing a container's snapshot and writing its record leaves no trace behind."""
    engine = fresh_engine
    images = __import__("dockyard.daemon.images", fromlist=["ImageService"])
    engine.kill()
    service = images.ImageService(str(engine.data_root))
    orphan = "ab" * 32
    service.mounts_for_container("busybox", orphan)
    (engine.data_root / "containers" / orphan).mkdir()
    (engine.exec_root / "containers" / orphan / "rootfs").mkdir(parents=True)
    service.close()
    engine.start()
    assert not (engine.data_root / "containers" / orphan).exists()
    assert not (engine.exec_root / "containers" / orphan).exists()
    fresh = images.ImageService(str(engine.data_root))
    assert not fresh.snapshotter.exists(orphan)
    fresh.close()
    assert api.get("/containers/json", all=1)[1] == []
