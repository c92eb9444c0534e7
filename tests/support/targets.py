"""Engines the container CLI tests run against, each driven by our CLI and the real docker CLI.

    dockerd    PEER_DOCKER_HOST when it answers, else a private dockerd started here
               (tests/support/dockerd.py: own data root, exec root and socket; no
               bridge or iptables, so containers use --network none)
    dockyardd  our engine on a temporary socket (tests/support/engine.py)

Both have a busybox image named `bb:latest`. A `Target` runs either CLI with
its host set and stdin from /dev/null unless input is given, so a terminal
the tests happen to run on never leaks in. Containers the tests create carry
the session's label (`Target.label`), which listings filter on: the peer
dockerd may be shared with other suites.

Fixtures (import them into a test module): `dockerd_target`, `dockyardd_target`
(session scope) and `target`, parametrized over both. On dockyardd, a test
that needs the engine's container endpoints is marked xfail, with the
missing endpoint as its reason, while the engine does not serve them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from dockyard.client.api import ApiError, EngineClient
from tests.support.busybox import make_rootfs
from tests.support.dockerd import DockerdDidNotStart, PrivateDockerd
from tests.support.engine import DOCKER, DOCKYARD, Engine, answers, make_busybox_tar

SESSION_LABEL = f"dockyard.test.session={uuid.uuid4().hex[:12]}"


class Target:
    """One engine, and the two CLIs pointed at it."""

    def __init__(self, name: str, host: str, root: Path):
        self.name = name
        self.host = host
        self.root = root
        self.label = SESSION_LABEL

    def __repr__(self) -> str:
        return f"<{self.name} at {self.host}>"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST", "DOCKER_CONTEXT")}
        env.update(DOCKER_HOST=self.host, DOCKYARD_HOST=self.host, DOCKER_CONFIG=str(self.root / "docker-config"),
                   DOCKER_BUILDKIT="0")
        env.update(extra)
        return env

    def _run(self, argv: list[str], input: bytes | None, timeout: float, env: dict | None
             ) -> subprocess.CompletedProcess:
        stdin = subprocess.DEVNULL if input is None else None
        return subprocess.run(argv, input=input, stdin=stdin, capture_output=True, timeout=timeout,
                              env=env or self.env())

    def dockyard(self, *args: str, input: bytes | None = None, timeout: float = 60,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        return self._run([DOCKYARD, *args], input, timeout, env)

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               env: dict | None = None) -> subprocess.CompletedProcess:
        return self._run([DOCKER, *args], input, timeout, env)

    def cli(self, which: str):  # noqa: ANN201
        return self.dockyard if which == "dockyard" else self.docker

    def client(self) -> EngineClient:
        return EngineClient(self.host)

    def serves(self, method: str, path: str) -> bool:
        """Whether the engine has a route for `path` (a 404 naming the route means it has none)."""
        client = self.client()
        try:
            client.request(method, path).read()
        except ApiError as exc:
            return not (exc.status in (404, 405) and ("page not found" in exc.message.lower()
                                                      or "no route" in exc.message.lower()
                                                      or "not found" == exc.message.lower().strip()))
        finally:
            client.close()
        return True

    def remove_test_containers(self) -> None:
        client = self.client()
        try:
            for container in client.containers(all=True, filters={"label": [self.label]}):
                try:
                    client.container_remove(container["Id"], force=True)
                except ApiError:
                    pass
        except ApiError:
            pass
        finally:
            client.close()


# --- dockerd ---------------------------------------------------------------------------------


def _ensure_bb(host: str, tmp: Path) -> None:
    client = EngineClient(host)
    try:
        client.image_inspect("bb:latest")
        return
    except ApiError:
        pass
    finally:
        client.close()
    tarball = make_busybox_tar(tmp / "bb.tar")
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(tmp / "docker-config"))
    subprocess.run([DOCKER, "import", str(tarball), "bb:latest"], env=env, check=True, capture_output=True)


# dockerd's own network setup is off: no docker0, no iptables rules (containers use --network none).
PRIVATE_DOCKERD_ARGS = ("--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false")


@pytest.fixture(scope="session")
def dockerd_target(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    root = tmp_path_factory.mktemp("dockerd-target")
    peer = os.environ.get("PEER_DOCKER_HOST")
    dockerd = None
    if peer and answers(peer):
        host = peer
    else:
        if shutil.which("dockerd") is None or not os.path.exists(DOCKER):
            pytest.skip("dockerd or the docker CLI is missing (Debian package docker.io, the Makefile's TEST_DEBS)")
        dockerd = PrivateDockerd(args=PRIVATE_DOCKERD_ARGS)
        try:
            dockerd.start()
        except DockerdDidNotStart as exc:
            dockerd.remove()
            pytest.skip(f"a private dockerd did not start: {exc}")
        host = dockerd.host
    try:
        _ensure_bb(host, root)
        target = Target("dockerd", host, root)
        try:
            yield target
        finally:
            target.remove_test_containers()
    finally:
        if dockerd is not None:
            dockerd.stop()
            dockerd.remove()


# --- dockyardd -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dockyardd_target(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("dockyardd needs root")
    root = tmp_path_factory.mktemp("dockyardd-target")
    engine = Engine(root / "engine").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rootfs = make_rootfs(os.path.join(tmp, "rootfs"))
            tarball = os.path.join(tmp, "bb.tar")
            subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
            with open(tarball, "rb") as f:
                list(engine.client().image_import(f, "-", "bb:latest"))
        target = Target("dockyardd", engine.host, root)
        target.engine = engine
        yield target
        target.remove_test_containers()
    finally:
        engine.cleanup()


@pytest.fixture(scope="module", params=["dockerd", "dockyardd"])
def target(request):
    engine = request.getfixturevalue(f"{request.param}_target")
    if request.param == "dockyardd" and not engine.serves("GET", "/containers/json"):
        pytest.xfail("daemon: dockyardd does not serve the container endpoints yet (GET /containers/json is 404)")
    return engine
