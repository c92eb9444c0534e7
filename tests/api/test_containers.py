"""Container lifecycle on the wire: create/start/wait/attach/logs/inspect/list/stop/kill/rm, and bad input.

A real dockyardd (one per module) with a busybox image imported; raw HTTP, as
the docker CLI speaks it (see containers_support).
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from tests.api.containers_support import Api, demux, eventually, hijack

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def api(engine, busybox_image) -> Api:
    return Api(str(engine.socket))


def snapshot_count(engine) -> int:
    base = engine.data_root / "snapshots"
    return sum(1 for p in base.rglob("metadata.db"))  # the store exists


def container_dirs(engine) -> set[str]:
    root = engine.data_root / "containers"
    return set(os.listdir(root)) if root.exists() else set()


def test_run_echo_through_create_start_wait_logs(api):
    code, out, err = api.run(["sh", "-c", "echo out1; echo err1 >&2; exit 5"])
    assert code == 5
    assert out == b"out1\n"
    assert err == b"err1\n"


def test_wait_headers_arrive_before_start_and_body_after_exit(api, engine):
    cid = api.create(["sh", "-c", "sleep 0.3; exit 3"])
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(str(engine.socket))
        sock.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        api.start(cid)
        body = b""
        while b"StatusCode" not in body:
            body += sock.recv(4096)
        assert b'"StatusCode":3' in body
        sock.close()
    finally:
        api.remove(cid)


def test_attach_before_start_sees_the_first_output(api, engine):
    cid = api.create(["echo", "hi"])
    try:
        stream = hijack(str(engine.socket), f"/containers/{cid}/attach", stream=1, stdout=1, stderr=1)
        api.start(cid)
        out, err = demux(stream.read_all())
        assert out == b"hi\n"
        assert api.wait(cid) == 0
    finally:
        api.remove(cid)


def test_stdin_sent_before_start_reaches_the_process(api, engine):
    cid = api.create(["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    try:
        stream = hijack(str(engine.socket), f"/containers/{cid}/attach", stream=1, stdin=1, stdout=1, stderr=1)
        stream.send(b"from-stdin\n")
        stream.close_write()
        api.start(cid)
        out, _ = demux(stream.read_all())
        assert out == b"from-stdin\n"
        assert api.wait(cid) == 0
    finally:
        api.remove(cid)


def test_tty_attach_is_raw_and_logs_are_raw(api, engine):
    cid = api.create(["sh", "-c", "echo tty-line; echo tty-err >&2"], Tty=True)
    try:
        stream = hijack(str(engine.socket), f"/containers/{cid}/attach", stream=1, stdout=1, stderr=1)
        api.start(cid)
        data = stream.read_all()
        assert data == b"tty-line\r\ntty-err\r\n"
        api.wait(cid)
        status, body, headers = api.request("GET", f"/containers/{cid}/logs", stdout=1, stderr=1)
        assert body == b"tty-line\r\ntty-err\r\n"
    finally:
        api.remove(cid)


def test_inspect_has_the_fields_clients_read(api):
    cid = api.create(["sleep", "30"], name="inspected", Labels={"com.example": "yes"},
                     Env=["A=1"], HostConfig={"RestartPolicy": {"Name": "no"}})
    try:
        info = api.inspect(cid)
        assert info["Id"] == cid
        assert info["Name"] == "/inspected"
        assert info["State"]["Status"] == "created" and info["State"]["Running"] is False
        assert info["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
        assert info["Config"]["Tty"] is False
        assert info["Config"]["Labels"] == {"com.example": "yes"}
        assert info["Config"]["Env"] == ["A=1"]  # an imported image has no Env of its own
        assert info["Config"]["Image"] == "busybox" and info["Config"]["Hostname"] == cid[:12]
        assert info["Image"].startswith("sha256:")
        assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
        assert info["HostConfig"]["NetworkMode"] == "default"
        assert info["NetworkSettings"]["Ports"] == {}
        assert info["Path"] == "sleep" and info["Args"] == ["30"]
        assert "Engine" not in info
        api.start(cid)
        running = api.inspect(cid)
        assert running["State"]["Running"] is True and running["State"]["Pid"] > 0
        assert running["State"]["StartedAt"].endswith("Z")
        # by unique id prefix and by name
        assert api.inspect(cid[:12])["Id"] == cid
        assert api.get("/containers/inspected/json")[0] == 200
    finally:
        api.remove(cid)


def test_start_twice_is_304_stop_stopped_is_304(api):
    cid = api.create(["sleep", "30"])
    try:
        api.start(cid)
        assert api.post(f"/containers/{cid}/start")[0] == 304
        t0 = time.monotonic()
        assert api.post(f"/containers/{cid}/stop", t=1)[0] == 204
        assert time.monotonic() - t0 < 5
        state = api.inspect(cid)["State"]
        # As pid 1 of its namespace, sleep ignores TERM (no handler): stop escalates to KILL.
        assert state["Running"] is False and state["ExitCode"] == 137
        assert api.post(f"/containers/{cid}/stop")[0] == 304
    finally:
        api.remove(cid)


def test_stop_escalates_to_kill_for_a_shell_ignoring_term(api):
    cid = api.create(["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    try:
        api.start(cid)
        t0 = time.monotonic()
        assert api.post(f"/containers/{cid}/stop", t=1)[0] == 204
        assert 0.9 < time.monotonic() - t0 < 6
        assert api.inspect(cid)["State"]["ExitCode"] == 137
    finally:
        api.remove(cid)


def test_stop_signal_from_config(api):
    cid = api.create(["sh", "-c", "trap 'exit 42' USR1; echo ready; while true; do sleep 0.1; done"],
                     StopSignal="SIGUSR1")
    try:
        api.start(cid)
        eventually(lambda: api.logs(cid))  # the trap is set
        assert api.post(f"/containers/{cid}/stop", t=5)[0] == 204
        assert api.inspect(cid)["State"]["ExitCode"] == 42
    finally:
        api.remove(cid)


def test_kill_with_signal_and_not_running_is_409(api):
    cid = api.create(["sh", "-c", "trap 'exit 7' HUP; echo ready; while true; do sleep 0.1; done"])
    try:
        api.start(cid)
        eventually(lambda: api.logs(cid))  # the trap is set
        assert api.post(f"/containers/{cid}/kill", signal="HUP")[0] == 204
        assert api.wait(cid) == 7
        status, body = api.post(f"/containers/{cid}/kill")
        assert status == 409 and "is not running" in body["message"]
    finally:
        api.remove(cid)


def test_restart_runs_again(api):
    cid = api.create(["sh", "-c", "echo run; sleep 30"])
    try:
        api.start(cid)
        first = api.inspect(cid)["State"]["StartedAt"]
        eventually(lambda: api.logs(cid))
        assert api.post(f"/containers/{cid}/restart", t=0)[0] == 204
        state = api.inspect(cid)["State"]
        assert state["Running"] and state["StartedAt"] > first
        eventually(lambda: [p for s, p in api.logs(cid) if s == 1] == [b"run\n", b"run\n"])
    finally:
        api.remove(cid)


def test_remove_running_needs_force_and_frees_the_name(api, engine):
    cid = api.create(["sleep", "30"], name="busyname")
    api.start(cid)
    status, body = api.delete(f"/containers/{cid}")
    assert status == 409 and "cannot remove a running container" in body["message"]
    assert api.delete(f"/containers/{cid}", force=1)[0] == 204
    assert api.get(f"/containers/{cid}/json")[0] == 404
    assert cid not in container_dirs(engine)
    again = api.create(["true"], name="busyname")
    api.remove(again)


def test_wait_removed_with_auto_remove(api):
    cid = api.create(["true"], HostConfig={"AutoRemove": True})
    results = {}

    def waiter():
        results["code"] = api.wait(cid, "removed")

    import threading

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)
    api.start(cid)
    t.join(20)
    assert results.get("code") == 0
    assert api.get(f"/containers/{cid}/json")[0] == 404


def test_list_filters_and_shapes(api):
    a = api.create(["sleep", "30"], name="list-a", Labels={"app": "one", "tier": "x"})
    b = api.create(["true"], name="list-b", Labels={"app": "two"})
    try:
        api.start(a)
        api.start(b)
        api.wait(b)
        status, running = api.get("/containers/json")
        ids = [c["Id"] for c in running]
        assert a in ids and b not in ids
        _, everything = api.get("/containers/json", all=1)
        row = next(c for c in everything if c["Id"] == b)
        assert row["Names"] == ["/list-b"] and row["Image"] == "busybox" and row["State"] == "exited"
        assert row["Status"].startswith("Exited (0)")
        assert isinstance(row["Created"], int) and row["Ports"] == []
        assert row["Command"] == "true"
        # CLI shape of filters (map of sets) and docker-py's (map of lists)
        _, by_label = api.get("/containers/json", all=1, filters=json.dumps({"label": {"app=one": True}}))
        assert [c["Id"] for c in by_label] == [a]
        _, by_labels = api.get("/containers/json", all=1, filters=json.dumps({"label": ["app=one", "tier=x"]}))
        assert [c["Id"] for c in by_labels] == [a]
        _, none = api.get("/containers/json", all=1, filters=json.dumps({"label": ["app=one", "tier=y"]}))
        assert none == []
        _, by_name = api.get("/containers/json", all=1, filters=json.dumps({"name": ["list-b"]}))
        assert [c["Id"] for c in by_name] == [b]
        _, exited = api.get("/containers/json", filters=json.dumps({"status": ["exited"]}))
        assert b in [c["Id"] for c in exited] and a not in [c["Id"] for c in exited]
        status, body = api.get("/containers/json", filters=json.dumps({"bogus": ["1"]}))
        assert status == 400
    finally:
        api.remove(a)
        api.remove(b)


def test_logs_follow_ends_when_the_container_stops_and_query_options(api):
    cid = api.create(["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo err >&2"])
    try:
        api.start(cid)
        t0 = time.monotonic()
        status, body, _ = api.request("GET", f"/containers/{cid}/logs", stdout=1, stderr=1, follow=1)
        assert status == 200 and time.monotonic() - t0 < 10
        out, err = demux(body)
        assert out == b"line1\nline2\nline3\n" and err == b"err\n"
        # tail, stream selection, timestamps
        frames = api.logs(cid, tail=2)
        assert [p for _, p in frames] == [b"line3\n", b"err\n"]
        only_out = api.logs(cid, stderr=0)
        assert all(s == 1 for s, _ in only_out)
        stamped = api.logs(cid, timestamps=1, tail=1)[0][1]
        stamp, _, text = stamped.partition(b" ")
        assert text == b"err\n" and stamp.endswith(b"Z") and len(stamp) == 30
        # since/until by Unix time
        all_frames = api.logs(cid, timestamps=1)
        times = [p.split(b" ")[0].decode() for _, p in all_frames]
        from dockyard.daemon.containers import parse_time

        middle = (parse_time(times[0]) + parse_time(times[1])) / 2
        later = api.logs(cid, since=f"{middle:.9f}")
        assert b"line1\n" not in [p for _, p in later] and b"line2\n" in [p for _, p in later]
        earlier = api.logs(cid, until=f"{middle:.9f}")
        assert [p for _, p in earlier] == [b"line1\n"]
    finally:
        api.remove(cid)


def test_log_rotation_keeps_max_files(api, engine):
    cid = api.create(["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxx; "
                                  "i=$((i+1)); done"],
                     HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-size": "4k", "max-file": "3"}}})
    try:
        api.start(cid)
        api.wait(cid)
        log_path = api.inspect(cid)["LogPath"]
        files = sorted(p for p in os.listdir(os.path.dirname(log_path)) if p.startswith(cid + "-json.log"))
        assert files == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
        for name in files:
            assert os.path.getsize(os.path.join(os.path.dirname(log_path), name)) <= 4000
        lines = [p for _, p in api.logs(cid)]
        numbers = [int(line.split(b"-")[1]) for line in lines]
        assert numbers[-1] == 399 and numbers == list(range(numbers[0], 400))
    finally:
        api.remove(cid)


def test_rename_and_name_conflicts(api):
    a = api.create(["true"], name="ren-a")
    b = api.create(["true"], name="ren-b")
    try:
        status, body = api.post(f"/containers/{a}/rename", name="ren-b")
        assert status == 409 and "already in use" in body["message"]
        assert api.post(f"/containers/{a}/rename", name="ren-c")[0] == 204
        assert api.inspect(a)["Name"] == "/ren-c"
        assert api.get("/containers/ren-a/json")[0] == 404
        status, body = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]}, name="ren-b")
        assert status == 409
        assert body["message"] == (f'Conflict. The container name "/ren-b" is already in use by container "{b}". '
                                   "You have to remove (or rename) that container to be able to reuse that name.")
    finally:
        api.remove(a)
        api.remove(b)


def test_pause_unpause(api):
    cid = api.create(["sh", "-c", "while true; do echo t; sleep 0.05; done"])
    try:
        api.start(cid)
        assert api.post(f"/containers/{cid}/pause")[0] == 204
        state = api.inspect(cid)["State"]
        assert state["Paused"] and state["Status"] == "paused"
        count = len(api.logs(cid))
        time.sleep(0.4)
        assert len(api.logs(cid)) == count
        assert api.post(f"/containers/{cid}/unpause")[0] == 204
        eventually(lambda: len(api.logs(cid)) > count)
        assert api.post(f"/containers/{cid}/pause")[0] == 204
        assert api.delete(f"/containers/{cid}", force=1)[0] == 204
    finally:
        api.remove(cid)


def test_top_and_stats(api):
    cid = api.create(["sleep", "30"])
    try:
        api.start(cid)
        status, top = api.get(f"/containers/{cid}/top")
        assert status == 200 and "PID" in top["Titles"]
        assert any("sleep 30" in row[-1] for row in top["Processes"])
        status, top = api.get(f"/containers/{cid}/top", ps_args="-o pid,comm")
        assert top["Titles"] == ["PID", "COMMAND"] and top["Processes"][0][1] == "sleep"
        status, stats = api.get(f"/containers/{cid[:12]}/stats", stream=0)
        assert status == 200
        for key in ("read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats", "blkio_stats"):
            assert key in stats
        assert stats["pids_stats"]["current"] >= 1
        assert stats["memory_stats"]["usage"] > 0
        assert stats["cpu_stats"]["online_cpus"] >= 1 and stats["cpu_stats"]["system_cpu_usage"] > 0
        assert stats["name"].startswith("/") and stats["id"] == cid
        api.post(f"/containers/{cid}/kill")
        api.wait(cid)
        assert api.get(f"/containers/{cid}/top")[0] == 409
        status, stopped = api.get(f"/containers/{cid}/stats", stream=0)
        assert stopped["read"] == "0001-01-01T00:00:00Z"
    finally:
        api.remove(cid)


def test_prune_removes_stopped_only(api):
    stopped = api.create(["true"], Labels={"prune": "me"})
    running = api.create(["sleep", "30"], Labels={"prune": "me"})
    try:
        api.start(stopped)
        api.start(running)
        api.wait(stopped)
        status, report = api.post("/containers/prune", filters=json.dumps({"label": ["prune=me"]}))
        assert status == 200 and report["ContainersDeleted"] == [stopped]
        assert api.get(f"/containers/{running}/json")[0] == 200
    finally:
        api.remove(running)
        api.remove(stopped)


def test_events_for_a_container_life(api, engine):
    since = time.time()
    code, _, _ = api.run(["true"])
    status, body, _ = api.request("GET", "/events", since=f"{since:.3f}", until=f"{time.time():.3f}",
                                  filters=json.dumps({"type": ["container"]}))
    actions = [json.loads(line)["Action"] for line in body.splitlines() if line.strip()]
    assert [a for a in actions if a in ("create", "start", "die", "destroy")] == ["create", "start", "die",
                                                                                   "destroy"]
    die = next(json.loads(line) for line in body.splitlines() if b'"die"' in line)
    assert die["Actor"]["Attributes"]["exitCode"] == "0" and die["from"] == "busybox"


# --- bad input ------------------------------------------------------------------------------------------


def test_unknown_image_is_404_no_such_image_and_creates_nothing(api, engine):
    before = container_dirs(engine)
    status, body = api.post("/containers/create", {"Image": "nosuchimage:1", "Cmd": ["true"]})
    assert status == 404 and "No such image" in body["message"]
    assert container_dirs(engine) == before


@pytest.mark.parametrize("host_config, message", [
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 10 << 20, "MemorySwap": 5 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 10 << 20}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"NanoCpus": 1000 * 10**9}, "Range of CPUs is from 0.01"),
    ({"CpusetCpus": "99"}, "Requested CPUs are not available"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "AutoRemove"),
    ({"CapAdd": ["NOT_A_CAP"]}, "unknown capability"),
    ({"Runtime": "nosuchruntime"}, "Unknown runtime specified nosuchruntime"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-size": "lots"}}}, "invalid size"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "invalid ulimit type"),
    # -v makes a missing source (dockerd does); --mount refuses it.
    ({"Mounts": [{"Type": "bind", "Source": "/nonexistent-source", "Target": "/x"}]},
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-source'),
    ({"Mounts": [{"Type": "tmpfs"}]}, 'invalid mount config for type "tmpfs": field Target must not be empty'),
    ({"Mounts": [{"Type": "tmpfs", "Target": "/t", "Source": "/x"}]}, "field Source must not be specified"),
    ({"Mounts": [{"Type": "bogus", "Target": "/t"}]}, 'invalid mount config for type "bogus": mount type unknown'),
    ({"Binds": ["/etc:/t"], "Mounts": [{"Type": "tmpfs", "Target": "/t"}]}, "Duplicate mount point: /t"),
])
def test_bad_host_config_is_400_and_creates_nothing(api, engine, host_config, message):
    before = container_dirs(engine)
    status, body = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                   "HostConfig": host_config}, name="badcfg")
    assert status == 400, body
    assert message in body["message"]
    assert container_dirs(engine) == before
    assert api.get("/containers/badcfg/json")[0] == 404


def test_bad_name_is_400(api):
    status, body = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]}, name="bad name!")
    assert status == 400 and "Invalid container name" in body["message"]


def test_missing_command_and_missing_container(api):
    status, body = api.post("/containers/create", {"Image": "busybox"})
    assert status == 400 and "No command specified" in body["message"]
    for method, path in (("GET", "/containers/nope/json"), ("POST", "/containers/nope/start"),
                         ("POST", "/containers/nope/stop"), ("DELETE", "/containers/nope"),
                         ("POST", "/containers/nope/wait"), ("GET", "/containers/nope/logs?stdout=1")):
        status, body, _ = api.request(method, path)
        assert status == 404 and body["message"] == "No such container: nope", (method, path, body)


def test_command_not_found_is_127_and_auto_remove_cleans_up(api, engine):
    cid = api.create(["nosuchcommand"])
    try:
        status, body = api.post(f"/containers/{cid}/start")
        assert status == 400 and "executable file not found" in body["message"]
        state = api.inspect(cid)["State"]
        assert state["ExitCode"] == 127 and "executable file not found" in state["Error"]
        assert not state["Running"]
    finally:
        api.remove(cid)
    before = container_dirs(engine)
    cid = api.create(["/etc/passwd"], HostConfig={"AutoRemove": True})
    status, body = api.post(f"/containers/{cid}/start")
    assert status == 400 and "permission denied" in body["message"]
    eventually(lambda: api.get(f"/containers/{cid}/json")[0] == 404)
    assert container_dirs(engine) == before


def test_exec_into_stopped_container_is_409(api):
    cid = api.create(["true"])
    try:
        status, body = api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})
        assert status == 409 and "is not running" in body["message"]
    finally:
        api.remove(cid)


def _tar(*members: tuple[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_paths_cannot_leave_the_container(api, engine, tmp_path):
    outside = tmp_path / "host-side"
    outside.mkdir()
    # A symlink in the container pointing (as the host would read it) at a host directory.
    cid = api.create(["sh", "-c", f"mkdir -p /data; ln -s ../../../../../../..{outside} /escape; sleep 600"])
    try:
        api.start(cid)
        eventually(lambda: api.request("HEAD", f"/containers/{cid}/archive", path="/escape")[0] == 200)
        status, _, headers = api.request("PUT", f"/containers/{cid}/archive", raw=_tar(("planted", b"x")),
                                         path="/escape")
        assert status in (200, 404)
        assert not (outside / "planted").exists()
        # ..-paths resolve inside the container: /../../tmp is the container's /tmp
        status, _, _ = api.request("PUT", f"/containers/{cid}/archive", raw=_tar(("dotdot", b"y")),
                                   path="/../../../tmp")
        assert status == 200
        assert api.request("HEAD", f"/containers/{cid}/archive", path="/tmp/dotdot")[0] == 200
        # entries that climb out of the destination are refused, and nothing of the archive is written
        status, body, _ = api.request("PUT", f"/containers/{cid}/archive",
                                      raw=_tar(("fine", b"1"), ("../../../../evil", b"2")), path="/data")
        assert status == 400 and "outside" in body["message"]
        assert api.request("HEAD", f"/containers/{cid}/archive", path="/data/fine")[0] == 404
        # a missing destination and a missing source are 404 with dockerd's words
        status, body, _ = api.request("PUT", f"/containers/{cid}/archive", raw=_tar(("a", b"")), path="/nope")
        assert status == 404 and body["message"] == f"Could not find the file /nope in container {api.inspect(cid)['Name'][1:]}"
        status, _, headers = api.request("HEAD", f"/containers/{cid}/archive", path="/tmp")
        stat = json.loads(__import__("base64").b64decode(headers["X-Docker-Container-Path-Stat"]))
        assert stat["name"] == "tmp" and stat["mode"] == (1 << 31) | (1 << 20) | 0o777
        status, _, headers = api.request("HEAD", f"/containers/{cid}/archive", path="/escape")
        stat = json.loads(__import__("base64").b64decode(headers["X-Docker-Container-Path-Stat"]))
        assert stat["mode"] & (1 << 27) and stat["linkTarget"].endswith(str(outside))
    finally:
        api.remove(cid)
    assert list(outside.iterdir()) == []


def test_update_limits_and_restart_policy(api):
    cid = api.create(["sleep", "600"], HostConfig={"Memory": 64 << 20})
    try:
        api.start(cid)
        status, body = api.post(f"/containers/{cid}/update", {"Memory": 128 << 20, "MemorySwap": 256 << 20,
                                                              "RestartPolicy": {"Name": "unless-stopped"}})
        assert status == 200, body
        info = api.inspect(cid)
        assert info["HostConfig"]["Memory"] == 128 << 20
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        if os.path.isdir("/sys/fs/cgroup/memory"):
            with open(f"/sys/fs/cgroup/memory/dockyard/{cid}/memory.limit_in_bytes") as f:
                assert int(f.read()) == 128 << 20
        status, body = api.post(f"/containers/{cid}/update", {"Memory": 1000})
        assert status == 400 and "Minimum memory limit" in body["message"]
    finally:
        api.remove(cid)
