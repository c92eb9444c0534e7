"""The docker SDK (PyPI `docker`) as an outside client of our engine: the container calls it makes."""

from __future__ import annotations

import io
import tarfile
import time

import pytest

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def client(engine, busybox_image):
    sdk = engine.docker_sdk()
    yield sdk
    sdk.close()


def test_run_in_the_foreground_returns_the_output(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo from-sdk; echo err >&2"], remove=True)
    assert out == b"from-sdk\n"
    out = client.containers.run("busybox", "echo string-command", remove=True)
    assert out == b"string-command\n"


def test_run_failure_raises_container_error(client):
    import docker.errors

    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3 and b"bad" in info.value.stderr


def test_unknown_image_raises_image_not_found(client):
    import docker.errors

    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("nosuchimage:1", "true")


def test_detached_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo started; sleep 600"], detach=True, name="sdk-life",
                              labels={"suite": "sdk"})
    try:
        assert c.status == "created" or c.status == "running"
        c.reload()
        assert c.status == "running" and c.name == "sdk-life" and c.labels == {"suite": "sdk"}
        assert c.image.id.startswith("sha256:")
        assert c.ports == {}
        deadline = time.monotonic() + 10
        while b"started" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.logs() == b"started\n"
        assert [x.id for x in client.containers.list(filters={"label": "suite=sdk"})] == [c.id]
        result = c.exec_run(["sh", "-c", "echo exec-out; exit 2"])
        assert result.exit_code == 2 and result.output == b"exec-out\n"
        result = c.exec_run("cat", stdin=False, environment={"A": "1"}, workdir="/tmp", user="nobody")
        assert result.exit_code == 0
        result = c.exec_run(["sh", "-c", "echo $A $PWD; id -u"], environment={"A": "1"}, workdir="/tmp",
                            user="nobody")
        assert result.output == b"1 /tmp\n65534\n"
        top = c.top()
        assert any("sleep 600" in row[-1] for row in top["Processes"])
        stats = c.stats(stream=False)
        assert stats["id"] == c.id and stats["memory_stats"]["usage"] > 0
        stream = c.stats(stream=True, decode=True)
        first = next(stream)
        assert "cpu_stats" in first
        stream.close()
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.rename("sdk-life2")
        c.reload()
        assert c.name == "sdk-life2"
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)


def test_kill_and_wait(client):
    c = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        c.kill()
        assert c.wait(timeout=20)["StatusCode"] == 137
    finally:
        c.remove()


def test_attach_socket_sees_output(client):
    c = client.containers.create("busybox", ["sh", "-c", "sleep 0.2; echo through-attach"])
    try:
        sock = c.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1})
        c.start()
        raw = sock._sock if hasattr(sock, "_sock") else sock
        raw.settimeout(10)
        data = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.endswith(b"through-attach\n")
        assert c.wait()["StatusCode"] == 0
    finally:
        c.remove(force=True)


def test_archives_in_and_out(client):
    c = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"payload\n"
            info = tarfile.TarInfo("dir/in.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue())
        assert c.exec_run("cat /tmp/dir/in.txt").output == b"payload\n"
        chunks, stat = c.get_archive("/tmp/dir")
        assert stat["name"] == "dir" and stat["mode"] & (1 << 31)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            names = sorted(tar.getnames())
            assert names == ["dir", "dir/in.txt"]
            assert tar.extractfile("dir/in.txt").read() == b"payload\n"
        exported = b"".join(c.export())
        with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
            assert "tmp/dir/in.txt" in tar.getnames() and "bin/busybox" in tar.getnames()
        image = c.commit(repository="sdk-committed", tag="1", changes=["ENV COMMITTED=yes"])
        out = client.containers.run(image.id, ["sh", "-c", "cat /tmp/dir/in.txt; echo $COMMITTED"], remove=True)
        assert out == b"payload\nyes\n"
        assert "sdk-committed:1" in client.images.get("sdk-committed:1").tags
    finally:
        c.remove(force=True)
        try:
            client.images.remove("sdk-committed:1")
        except Exception:  # noqa: BLE001 - the image may not exist if the test failed early
            pass


def test_prune_and_diff(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo x > /tmp/new; rm /etc/group"], detach=True,
                              labels={"prune": "sdk"})
    c.wait()
    changes = {(d["Kind"], d["Path"]) for d in c.diff()}
    assert (1, "/tmp/new") in changes and (2, "/etc/group") in changes and (0, "/etc") in changes
    report = client.containers.prune(filters={"label": "prune=sdk"})
    assert report["ContainersDeleted"] == [c.id]
