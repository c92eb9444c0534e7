"""A real dockyardd on a temporary socket, for API and CLI tests (and the container tests after them).

    engine = Engine(tmp_dir).start()
    engine.client()          # our EngineClient
    engine.docker_sdk()      # the docker SDK (PyPI docker) pointed at it
    engine.docker("images")  # the real docker CLI, DOCKER_HOST at it
    engine.dockyard("images")  # our installed CLI, -H at it
    engine.stop()            # SIGTERM; checks the daemon cleaned up after itself
    engine.shutdown_monitor()  # kill every container and the monitor (a machine "reboot")

Each engine has its own data root, exec root, pid file and socket under the
given directory, so tests never touch the machine's /var/lib/dockyard or
/run/dockyard. Fixtures to import into a conftest are at the bottom.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.client.api import EngineClient
from tests.support.busybox import make_rootfs

BIN = os.path.dirname(sys.executable)
DOCKYARD = os.path.join(BIN, "dockyard")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def answers(host: str, timeout: float = 5) -> bool:
    """Whether an engine (ours or dockerd) at `host` answers /_ping."""
    client = EngineClient(host, timeout=timeout)
    try:
        return client.ping()
    except Exception:
        return False
    finally:
        client.close()


class Engine:
    def __init__(self, root: str | Path, extra_args: tuple[str, ...] = ()):
        self.extra_args = tuple(extra_args)  # more dockyardd flags (--default-runtime runc…)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "dockyard.sock"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "dockyardd.pid"
        self.log_path = self.root / "dockyardd.log"
        self.proc: subprocess.Popen | None = None
        # A default bridge of its own: engines of parallel tests must not share one.
        self.bridge = "dyt" + os.urandom(4).hex()

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "dockyard.api.dockyardd", "-H", self.host, "--data-root", str(self.data_root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile), "--bridge", self.bridge, "--debug",
                *self.extra_args]

    def start(self, timeout: float = 30) -> Engine:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the daemon keeps writing to it
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited with {self.proc.returncode}:\n{self.log()}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"dockyardd did not answer within {timeout}s:\n{self.log()}")

    def ping(self) -> bool:
        return answers(self.host, timeout=2)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait; returns the exit status. The socket and pid file must be gone."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"dockyardd ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        status = self.proc.returncode
        self.proc = None
        return status

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (socket and pid file stay behind)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def mounts_below(self) -> list[str]:
        root = str(self.root.resolve())
        found = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == root or point.startswith(root + "/"):
                    found.append(point)
        return found

    @property
    def monitor_socket(self) -> Path:
        return self.exec_root / "monitor.sock"

    def monitor_pid(self) -> int | None:
        """The pid of the container monitor serving this engine's exec root, if one runs."""
        try:
            pid = int((self.exec_root / "monitor.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"dockyard.daemon.monitor" not in f.read():
                    return None
        except FileNotFoundError:
            return None
        return pid

    def shutdown_monitor(self, timeout: float = 30) -> None:
        """Kill every container of this engine and stop its monitor (containers outlive the daemon)."""
        import socket

        from dockyard.daemon import monitorwire

        pid = self.monitor_pid()
        if pid is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.monitor_socket))
                sock.sendall(monitorwire.control({"op": "shutdown", "seq": 1}))
                sock.recv(4096)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop (if needed), stop the monitor and its containers, unmount anything left below the root,
        delete the tree."""
        try:
            self.stop()
            self.shutdown_monitor()
        finally:
            for point in sorted(self.mounts_below(), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False)
            self.remove_bridges()
            shutil.rmtree(self.root, ignore_errors=True)

    def remove_bridges(self) -> None:
        """The bridges (and our firewall rules for them) of this engine's networks: the engine leaves them
        when it stops, as dockerd leaves docker0."""
        import json

        from dockyard.network import firewall, links

        bridges = {self.bridge}
        for record in (self.data_root / "networks").glob("*.json"):
            try:
                bridges.add(json.loads(record.read_text())["Engine"]["Bridge"])
            except (OSError, ValueError, KeyError):
                continue
        for bridge in sorted(b for b in bridges if b):
            firewall.teardown_bridge(bridge)
            links.remove_bridge(bridge)

    # --- clients -------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKYARD_HOST=self.host)
        env.update(extra)
        return env

    def client(self) -> EngineClient:
        return EngineClient(self.host)

    def docker_sdk(self):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    def dockyard(self, *args: str, input: bytes | None = None, timeout: float = 120,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Our installed CLI with `-H` at this engine; its output as bytes."""
        return subprocess.run([DOCKYARD, "-H", self.host, *args], input=input, capture_output=True,
                              timeout=timeout, env=env or self.env())

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """The real docker CLI with DOCKER_HOST at this engine."""
        return subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=timeout,
                              env=self.env(DOCKER_CONFIG=str(self.root / "docker-config")))


def make_busybox_tar(path: str | Path) -> Path:
    """A root filesystem tarball from the host's busybox-static (bin/busybox, applet links, etc)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = make_rootfs(os.path.join(tmp, "rootfs"))

        def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        with tarfile.open(path, "w") as tar:
            tar.add(rootfs, arcname=".", filter=as_root)
    return path


def import_busybox(engine: Engine, tar: Path, name: str = "busybox:latest") -> str:
    """Import the busybox tarball under `name`; returns the image ID."""
    with open(tar, "rb") as f:
        messages = list(engine.client().image_import(f, "-", name))
    return messages[-1]["status"]


# --- fixtures (import them into a conftest) -------------------------------------------


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    return make_busybox_tar(tmp_path_factory.mktemp("busybox-tar") / "busybox.tar")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """One daemon shared by a test module (tests must not depend on each other's images)."""
    if os.geteuid() != 0:
        pytest.skip("dockyardd needs root")
    eng = Engine(tmp_path_factory.mktemp("engine")).start()
    try:
        yield eng
    finally:
        eng.cleanup()


@pytest.fixture
def fresh_engine(tmp_path):
    """A daemon of its own, for tests that count images or restart the daemon."""
    if os.geteuid() != 0:
        pytest.skip("dockyardd needs root")
    eng = Engine(tmp_path / "engine").start()
    try:
        yield eng
    finally:
        eng.cleanup()


@pytest.fixture(scope="module")
def busybox_image(engine, busybox_tar) -> str:
    """`busybox:latest` imported into the module's engine; its image ID."""
    return import_busybox(engine, busybox_tar)
