"""dockerd drives dockyard-runtime: `docker run --runtime dockyard` through containerd's runc shim.

One private dockerd for the module (a PrivateDockerd, tests/support/dockerd.py:
its own data root, exec root, socket, pid file and config file; no bridge, no
iptables, no ip_forward change; containers under a cgroup parent of its own
that is removed at the end), started with
`--add-runtime dockyard=<dockyard-runtime>`.  containerd's shim calls the
runtime with `--root <exec-root>/runtime-runc/moby`, so a container is ours when
`dockyard-runtime --root` there reads its state.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from tests.support import peers
from tests.support.dockerd import PrivateDockerd
from tests.support.runtime import RUNTIME, Runtime

pytestmark = [
    pytest.mark.root,
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed (Debian package docker.io)"),
    pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed"),
    pytest.mark.timeout(120),
]


class Dockerd(peers.Manager):
    image = "dockyard-bb:latest"
    exec_missing_status = 126

    def __init__(self):
        self.cgroup_parent = f"/dockyard-test-docker-{uuid.uuid4().hex[:8]}"
        self.daemon = PrivateDockerd(config={}, args=[
            # Leave the host's network alone: no docker0, no iptables rules, no ip_forward.
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent,
            "--add-runtime", f"dockyard={RUNTIME}"])
        self.base = self.daemon.state
        self.env = dict(os.environ, DOCKER_HOST=self.daemon.host, DOCKER_CONFIG=os.path.join(self.base, "cli"))
        self.runtime = Runtime(RUNTIME, os.path.join(self.daemon.exec_root, "runtime-runc", "moby"))

    def argv(self, *args) -> list[str]:
        return ["docker", *map(str, args)]

    def run_argv(self, *args) -> list[str]:
        return self.argv("run", "--runtime", "dockyard", "--network", "none", *args)

    def container_cgroup(self, cid: str) -> str:
        return f"{self.cgroup_parent}/{cid}"

    def stop(self) -> None:
        if not self.daemon.stop(timeout=60):
            raise AssertionError(f"dockerd ignored SIGTERM:\n{self.daemon.log_tail()}")


@pytest.fixture(scope="module")
def docker(busybox_rootfs):
    d = Dockerd()
    try:
        d.daemon.start()
        d("import", peers.busybox_tarball(busybox_rootfs, os.path.join(d.base, "bb.tar")), d.image)
        yield d
    finally:
        try:
            if d.daemon.running:
                ids = d("ps", "-aq", check=False).stdout.split()
                if ids:
                    d("rm", "-f", *ids)
        finally:
            try:
                d.stop()
            finally:
                d.daemon.remove()
                peers.remove_cgroup(d.cgroup_parent)


def test_run_rm(docker, tmp_path):
    peers.check_run_rm(docker, tmp_path)


def test_run_missing_program_is_127(docker):
    peers.check_missing_program(docker)


def test_detached_exec_top_stop_rm(docker):
    cid = docker.start_container(*peers.check_detached_exec_stop_rm.PROGRAM)
    assert docker.inspect(cid)["HostConfig"]["Runtime"] == "dockyard"
    pid = docker.inspect(cid)["State"]["Pid"]
    # `docker top` asks the runtime (`ps --format json`) which pids are in the container.
    top = docker("top", cid, "-o", "pid,args").stdout.splitlines()
    listed = {int(line.split()[0]) for line in top[1:]}
    ours = set(json.loads(docker.runtime("ps", "--format", "json", cid, check=True).stdout))
    assert listed == ours and pid in ours and len(ours) == 2, (top, ours)
    assert any("sleep 300" in line for line in top)
    peers.check_detached_exec_stop_rm(docker, cid)


def test_run_it_and_exec_it_on_a_terminal(docker):
    peers.check_terminal(docker)


def test_pause_unpause(docker):
    peers.check_pause_unpause(docker)


def test_kill_with_a_signal_and_by_default(docker):
    peers.check_kill(docker)


def test_memory_limit_at_run_and_by_update(docker):
    # containerd sends `update --resources -`: the new resources on stdin.
    cid = peers.check_memory_limit(docker, ("--memory", "32m", "--memory-swap", "64m"),
                                   ("--memory", "64m", "--memory-swap", "128m"))
    assert docker.inspect(cid)["HostConfig"]["Memory"] == 64 << 20
    docker("rm", "-f", cid)
