"""dockerd for tests: the shared peer daemon, and daemons of a test's own.

`peer_docker` (a session fixture; import it into a test module) makes sure a
dockerd answers on the peers' private socket, with a `bb:latest` busybox
image, and returns a `Docker` that runs the docker CLI against it.  If this
session started the daemon, it stops it at the end.  Tools the Makefile's
TEST_DEBS install (docker.io, skopeo, umoci) are skipped with a stated reason
only when they are missing and cannot be installed.

`PrivateDockerd` is one dockerd with its own state directory (data root, exec
root, socket, pid file and log): started, waited for, stopped and removed.
The peer daemon is one; the container CLI tests (tests/support/targets.py) and
the runtime tests under dockerd (tests/integration/runtime/test_dockerd.py)
start their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.support.busybox import make_rootfs
from tests.support.engine import answers
from tests.support.peers import remove_tree, unmount_below

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


class DockerdDidNotStart(Exception):
    """dockerd exited at start or did not answer in time; the message ends with the tail of its log."""


class PrivateDockerd:
    """A dockerd of its own: data root, exec root, socket, pid file and log below one state directory.

    `args` are further dockerd options (no bridge, a runtime to add, ...).  Without
    a state directory it gets a short temporary one: containerd's sockets live
    below the exec root and must fit in a unix socket address.  `data_dir` and
    `exec_dir` name the roots inside the state directory.  With `config` (a dict,
    may be empty) it reads a daemon.json of its own, not the host's.
    """

    def __init__(self, state: str | os.PathLike | None = None, args: tuple | list = (), *,
                 data_dir: str = "data", exec_dir: str = "exec", config: dict | None = None):
        self.state = str(state) if state is not None else tempfile.mkdtemp(prefix="dyk-dockerd-")
        self.data_root = os.path.join(self.state, data_dir)
        self.exec_root = os.path.join(self.state, exec_dir)
        self.socket = os.path.join(self.state, "docker.sock")
        self.host = "unix://" + self.socket
        self.pidfile = os.path.join(self.state, "dockerd.pid")
        self.log_path = os.path.join(self.state, "dockerd.log")
        self.config = config
        self.config_path = os.path.join(self.state, "daemon.json")
        self.args = [str(arg) for arg in args]
        self.proc: subprocess.Popen | None = None
        self._log_start = 0

    def __repr__(self) -> str:
        return f"<dockerd at {self.host}>"

    def argv(self) -> list[str]:
        config = [] if self.config is None else ["--config-file", self.config_path]
        return ["dockerd", *config, "--data-root", self.data_root, "--exec-root", self.exec_root,
                "-H", self.host, "--pidfile", self.pidfile, *self.args]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> PrivateDockerd:
        """Start dockerd and wait until it answers; DockerdDidNotStart (after killing it) if it does not."""
        os.makedirs(self.state, exist_ok=True)
        if self.config is not None:
            with open(self.config_path, "w") as f:
                json.dump(self.config, f)
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not answers(self.host):
            if self.proc.poll() is not None:
                failure = f"dockerd exited at start (status {self.proc.returncode})"
            elif time.monotonic() > deadline:
                failure = f"dockerd did not answer on {self.host} within {timeout:g} s"
            else:
                time.sleep(0.1)
                continue
            self._kill()
            raise DockerdDidNotStart(f"{failure}; the end of {self.log_path}:\n{self.log_tail()}")
        return self

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what this run of dockerd logged."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(self._log_start, os.path.getsize(self.log_path) - chars))
                return f.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, and SIGKILL after `timeout` s: whether it ended on SIGTERM (or was not running)."""
        if not self.running:
            return True
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self._kill()
            return False

    def remove(self) -> None:
        """Delete the state directory, unmounting first what dockerd and containerd left mounted below it."""
        remove_tree(self.state)

    def _kill(self) -> None:
        if self.running:
            self.proc.kill()
        self.proc.wait()


class Docker:
    """The docker CLI pointed at the peer daemon."""

    def __init__(self, host: str = HOST):
        self.host = host
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], input=input, env=self.env, capture_output=True, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def answers(self) -> bool:
        return answers(self.host)


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
        # The layout start-peers.sh gives it; the state stays for the next session to reuse.
        started = PrivateDockerd(STATE, data_dir="docker-data", exec_dir="docker-exec")
        try:
            started.start()
        except DockerdDidNotStart as exc:
            pytest.skip(str(exc))
    try:
        _ensure_busybox(docker)
        yield docker
    finally:
        if started is not None:
            started.stop()
            unmount_below(STATE)  # dockerd leaves its data root and netns mounted; the files stay for reuse
