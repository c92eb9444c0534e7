"""The peer dockerd for image interop tests, started (or reused) as start-peers.sh does.

`peer_docker` (a session fixture; import it into a test module) makes sure a
dockerd answers on the peers' private socket, with a `bb:latest` busybox
image, and returns a `Docker` that runs the docker CLI against it.  If this
session started the daemon, it stops it at the end.  Tools the Makefile's
TEST_DEBS install (docker.io, skopeo, umoci) are skipped with a stated reason
only when they are missing and cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.support.busybox import make_rootfs

STATE = os.environ.get("DOCKYARD_PEERS_DIR", "/tmp/dockyard-peers")
SOCKET = os.path.join(STATE, "docker.sock")
HOST = "unix://" + SOCKET
APT_NEED = os.path.join(os.path.dirname(__file__), "..", "..", ".ci", "apt-need")


def need_tool(binary: str, package: str) -> str:
    """The tool's path, installing its Debian package if needed; skip the test if impossible."""
    path = shutil.which(binary)
    if path is None and os.geteuid() == 0 and os.path.exists(APT_NEED):
        subprocess.run([APT_NEED, package], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed and the Debian package {package} could not be installed")
    return path


class Docker:
    """The docker CLI pointed at the peer daemon."""

    def __init__(self, host: str = HOST):
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], input=input, env=self.env, capture_output=True, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def answers(self) -> bool:
        try:
            return self.run("version", check=False, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _start_dockerd(docker: Docker) -> subprocess.Popen:
    os.makedirs(STATE, exist_ok=True)
    log = open(os.path.join(STATE, "dockerd.log"), "ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", os.path.join(STATE, "docker-data"), "--exec-root", os.path.join(STATE, "docker-exec"),
         "-H", HOST, "--pidfile", os.path.join(STATE, "dockerd.pid")],
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"dockerd exited at start (status {proc.returncode}); see {STATE}/dockerd.log")
        if docker.answers():
            return proc
        time.sleep(0.5)
    proc.terminate()
    pytest.skip(f"dockerd did not answer on {SOCKET} within 60 s")


def _ensure_busybox(docker: Docker) -> None:
    if docker.run("image", "inspect", "bb:latest", check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = make_rootfs(os.path.join(tmp, "rootfs"))
        tarball = os.path.join(tmp, "bb.tar")
        subprocess.run(["tar", "-C", root, "-cf", tarball, "."], check=True)
        docker.run("import", tarball, "bb:latest")


@pytest.fixture(scope="session")
def peer_docker():
    if os.geteuid() != 0:
        pytest.skip("the peer dockerd needs root")
    need_tool("dockerd", "docker.io")
    need_tool("docker", "docker.io")
    docker = Docker()
    started = None
    if not docker.answers():
        started = _start_dockerd(docker)
    _ensure_busybox(docker)
    yield docker
    if started is not None:
        started.send_signal(signal.SIGTERM)
        try:
            started.wait(30)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()
