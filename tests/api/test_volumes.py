"""Volumes through the Engine API: the docker SDK and our client as callers, a real daemon, real mounts."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.engine import import_busybox

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def sdk(engine, busybox_image):
    client = engine.docker_sdk()
    yield client
    client.close()


def _cli(engine, *args: str):
    """Our CLI against the engine, its output as text."""
    got = engine.dockyard(*args)
    got.stdout, got.stderr = got.stdout.decode(), got.stderr.decode()
    return got


def _events(engine, since: float, kind: str = "volume") -> list[dict]:
    out = engine.client().request("GET", "/events", [("since", str(since)), ("until", str(time.time() + 0.5)),
                                                     ("filters", json.dumps({"type": [kind]}))]).read()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_sdk_creates_lists_inspects_and_removes(sdk, engine):
    import docker.errors

    volume = sdk.volumes.create("sdkvol", labels={"k": "v"})
    try:
        assert volume.name == "sdkvol"
        assert volume.attrs["Driver"] == "local" and volume.attrs["Labels"] == {"k": "v"}
        assert volume.attrs["Mountpoint"] == str(engine.data_root / "volumes" / "sdkvol" / "_data")
        assert os.path.isdir(volume.attrs["Mountpoint"])
        assert [v.name for v in sdk.volumes.list(filters={"name": "sdkv"})] == ["sdkvol"]
        assert sdk.volumes.list(filters={"label": "k=other"}) == []
        again = sdk.volumes.create("sdkvol")  # an existing name: the same volume back
        assert again.attrs["Labels"] == {"k": "v"}
    finally:
        volume.remove()
    with pytest.raises(docker.errors.NotFound, match="get sdkvol: no such volume"):
        sdk.volumes.get("sdkvol")
    assert not (engine.data_root / "volumes" / "sdkvol").exists()


def test_a_volume_outlives_its_containers_and_is_copied_up_once(sdk, engine):
    out = sdk.containers.run("busybox", ["sh", "-c", "ls /etc; echo kept > /etc/mark"], remove=True,
                             volumes={"keep": {"bind": "/etc", "mode": "rw"}}, network_mode="none")
    assert b"passwd" in out  # the empty volume got the image's /etc
    out = sdk.containers.run("busybox", ["cat", "/v/mark", "/v/passwd"], remove=True,
                             volumes=["keep:/v:ro"], network_mode="none")
    assert out.startswith(b"kept\n")
    mountpoint = engine.data_root / "volumes" / "keep" / "_data"
    assert (mountpoint / "mark").read_text() == "kept\n"
    # A volume that is not empty is not filled again.
    (mountpoint / "passwd").unlink()
    sdk.containers.run("busybox", "true", remove=True, volumes=["keep:/etc"], network_mode="none")
    assert not (mountpoint / "passwd").exists()
    sdk.volumes.get("keep").remove()


def test_in_use_volumes_cannot_be_removed_and_rm_v_takes_anonymous_ones(sdk, engine):
    import docker.errors

    ctr = sdk.containers.create("busybox", "true", volumes=["named1:/n", "/anon"], network_mode="none")
    mounts = {m["Destination"]: m for m in ctr.attrs["Mounts"]}
    anonymous = mounts["/anon"]["Name"]
    assert mounts["/n"]["Name"] == "named1" and len(anonymous) == 64
    for name in ("named1", anonymous):
        with pytest.raises(docker.errors.APIError) as info:
            sdk.volumes.get(name).remove(force=True)
        assert info.value.status_code == 409
        assert f"remove {name}: volume is in use - [{ctr.id}]" in str(info.value)
    assert anonymous in [v.name for v in sdk.volumes.list(filters={"dangling": "false"})]
    assert [c.id for c in sdk.containers.list(all=True, filters={"volume": "named1"})] == [ctr.id]
    assert [c.id for c in sdk.containers.list(all=True, filters={"volume": "/anon"})] == [ctr.id]
    ctr.remove(v=True)
    names = [v.name for v in sdk.volumes.list()]
    assert "named1" in names and anonymous not in names
    assert "named1" in [v.name for v in sdk.volumes.list(filters={"dangling": "true"})]
    sdk.volumes.get("named1").remove()


def test_run_rm_removes_anonymous_volumes_and_events_say_what_happened(engine, busybox_image):
    since = time.time()
    got = _cli(engine, "run", "--rm", "--network", "none", "-v", "/scratch", "-v", "evvol:/ev:ro",
                          "busybox", "sh", "-c", "echo > /scratch/x && ls /scratch")
    assert (got.returncode, got.stdout) == (0, "x\n"), got.stderr
    events = _events(engine, since)
    anonymous = next(e["Actor"]["ID"] for e in events if e["Actor"]["ID"] != "evvol")
    actions = [(e["Action"], e["Actor"]["ID"]) for e in events]
    for action in ("create", "mount", "unmount", "destroy"):
        assert (action, anonymous) in actions
    assert ("destroy", "evvol") not in actions
    mount = next(e for e in events if e["Action"] == "mount" and e["Actor"]["ID"] == "evvol")
    assert mount["Actor"]["Attributes"] == {"container": mount["Actor"]["Attributes"]["container"],
                                            "destination": "/ev", "driver": "local", "propagation": "",
                                            "read/write": "false"}
    assert engine.client().volumes({"name": [anonymous]}) == []
    engine.client().volume_remove("evvol")


def test_prune_removes_unused_volumes_without_options(sdk):
    sdk.volumes.create("prune-a", labels={"keep": "no"})
    sdk.volumes.create("prune-b", labels={"keep": "yes"})
    sdk.volumes.create("prune-t", driver_opts={"type": "tmpfs", "device": "tmpfs"})
    ctr = sdk.containers.create("busybox", "true", volumes=["prune-used:/u"], network_mode="none")
    try:
        report = sdk.volumes.prune(filters={"label!": "keep=yes"})
        assert report["VolumesDeleted"] == ["prune-a"]
        assert {"prune-b", "prune-t", "prune-used"} <= {v.name for v in sdk.volumes.list()}
    finally:
        ctr.remove(v=True)
        for name in ("prune-b", "prune-t", "prune-used"):
            sdk.volumes.get(name).remove()


def test_bad_volume_input_changes_nothing(engine, busybox_image):
    client = engine.client()
    before = sorted(os.listdir(engine.data_root / "volumes"))
    for args, message in (
            (["-v", "bad/name:/x"], "includes invalid characters for a local volume name"),
            (["--mount", "type=volume,src=v,dst=/x"], "volume name is too short"),
            (["--mount", "type=volume,dst=/x,volume-driver=nodriver"], 'plugin "nodriver" not found'),
            (["-v", "newvol:/x", "--mount", "type=tmpfs,dst=/x"], "Duplicate mount point: /x"),
            (["-v", "newvol:/x", "--name", "bad name"], "Invalid container name")):
        got = _cli(engine, "run", "--rm", *args, "busybox", "true")
        assert got.returncode == 125 and message in got.stderr, (args, got.stderr)
    # A create that fails after its volumes were made takes back the ones it made.
    got = _cli(engine, "create", "-v", "newvol2:/x", "-v", "/anon2", "-w", "/bin/busybox", "busybox", "true")
    assert got.returncode == 1 and "not a directory" in got.stderr, got.stderr
    assert sorted(os.listdir(engine.data_root / "volumes")) == before
    assert not {"newvol", "newvol2"} & {v["Name"] for v in client.volumes()}


def test_volumes_survive_a_daemon_crash_and_mounts_are_taken_back(fresh_engine, busybox_tar):
    """kill -9 of the daemon: volumes, their data and a running container's use of a tmpfs volume are all
    there after the restart; the tmpfs is unmounted once the container ends."""
    import_busybox(fresh_engine, busybox_tar)
    client = fresh_engine.client()
    client.volume_create({"Name": "crashvol"})
    client.volume_create({"Name": "crashtmp", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}})
    got = _cli(fresh_engine, "run", "-d", "--name", "holder", "--network", "none", "-v", "crashvol:/d",
                                "-v", "crashtmp:/t", "busybox", "sh", "-c", "echo data > /d/f; echo t > /t/f; "
                                "sleep 600")
    assert got.returncode == 0, got.stderr
    mountpoint = fresh_engine.data_root / "volumes" / "crashtmp" / "_data"
    assert str(mountpoint) in open("/proc/self/mountinfo").read()
    fresh_engine.kill()
    fresh_engine.start()
    assert {v["Name"] for v in client.volumes()} == {"crashvol", "crashtmp"}
    busy = _cli(fresh_engine, "volume", "rm", "crashtmp")
    assert busy.returncode == 1 and "volume is in use" in busy.stderr
    got = _cli(fresh_engine, "exec", "holder", "cat", "/d/f", "/t/f")
    assert got.stdout == "data\nt\n"
    assert _cli(fresh_engine, "rm", "-f", "holder").returncode == 0
    deadline = time.monotonic() + 10
    while str(mountpoint) in open("/proc/self/mountinfo").read() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert str(mountpoint) not in open("/proc/self/mountinfo").read()
    assert (fresh_engine.data_root / "volumes" / "crashvol" / "_data" / "f").read_text() == "data\n"
    got = _cli(fresh_engine, "volume", "rm", "crashvol", "crashtmp")
    assert (got.returncode, got.stdout) == (0, "crashvol\ncrashtmp\n"), got.stderr


def test_a_bind_volume_never_takes_the_host_files_with_it(engine, busybox_image, tmp_path):
    """`-o type=none -o o=bind -o device=DIR` lends a host directory; removing the volume unmounts it and
    leaves the directory's files alone."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "precious").write_text("keep me")
    client = engine.client()
    client.volume_create({"Name": "bindvol", "DriverOpts": {"type": "none", "o": "bind", "device": str(host)}})
    got = _cli(engine, "run", "--rm", "--network", "none", "-v", "bindvol:/h", "busybox", "sh", "-c",
                          "cat /h/precious; echo new > /h/new")
    assert (got.returncode, got.stdout) == (0, "keep me"), got.stderr
    assert (host / "new").read_text() == "new\n"
    client.volume_remove("bindvol")
    assert (host / "precious").read_text() == "keep me"


def test_volumes_from_shares_volumes_and_binds(engine, busybox_image, tmp_path):
    """docker's backup recipe: a container with --volumes-from sees the other's volumes (and binds) at the
    same places, read-only when asked; rm -v of either keeps what the other still uses."""
    backup = tmp_path / "backup"
    backup.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    got = _cli(engine, "create", "--name", "datactr", "-v", "/dbdata", "-v", f"{shared}:/shared",
               "busybox", "true")
    assert got.returncode == 0, got.stderr
    try:
        got = _cli(engine, "run", "--rm", "--network", "none", "--volumes-from", "datactr", "busybox", "sh", "-c",
                   "echo rows > /dbdata/table; echo s > /shared/s")
        assert got.returncode == 0, got.stderr
        got = _cli(engine, "run", "--rm", "--network", "none", "--volumes-from", "datactr:ro", "-v",
                   f"{backup}:/backup", "busybox", "sh", "-c",
                   "tar -cf /backup/b.tar -C / dbdata; touch /dbdata/no 2>&1; echo $?")
        assert got.returncode == 0 and got.stdout.endswith("Read-only file system\n1\n"), got
        assert (backup / "b.tar").stat().st_size > 0 and (shared / "s").read_text() == "s\n"
        anonymous = next(m["Name"] for m in engine.client().container_inspect("datactr")["Mounts"]
                         if m["Destination"] == "/dbdata")
        assert anonymous in {v["Name"] for v in engine.client().volumes()}  # run --rm kept the other's
        missing = _cli(engine, "run", "--rm", "--volumes-from", "nosuchctr", "busybox", "true")
        assert missing.returncode == 125 and "No such container: nosuchctr" in missing.stderr
    finally:
        _cli(engine, "rm", "-v", "datactr")
    assert anonymous not in {v["Name"] for v in engine.client().volumes()}


def test_cp_of_a_stopped_container_sees_a_volume_with_options(engine, busybox_image, tmp_path):
    host = tmp_path / "lent"
    host.mkdir()
    (host / "inside").write_text("from the host\n")
    engine.client().volume_create({"Name": "cpvol", "DriverOpts": {"type": "none", "o": "bind", "device": str(host)}})
    assert _cli(engine, "create", "--name", "cpctr", "-v", "cpvol:/v", "busybox", "true").returncode == 0
    try:
        got = _cli(engine, "cp", "cpctr:/v/inside", str(tmp_path / "out"))
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "out").read_text() == "from the host\n"
        mountpoint = engine.data_root / "volumes" / "cpvol" / "_data"
        assert str(mountpoint) not in open("/proc/self/mountinfo").read()  # lent for the copy only
    finally:
        _cli(engine, "rm", "cpctr")
        engine.client().volume_remove("cpvol")
    assert (host / "inside").exists()
