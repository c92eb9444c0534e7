"""podman drives dockyard-runtime: the runtime behind `podman run`, `exec`, `stop`, `pause`, `kill`, `update`.

podman runs with private storage, run root, tmp dir and config (the user's podman
state is never touched), the cgroupfs manager, no network set-up (`netns =
"none"`), its containers under a cgroup parent of their own (removed at the end),
and `--runtime` pointing at a `runc`-named link to our runtime: podman picks
features (JSON logs) by the runtime's basename.  It sends no `--root`, so its
containers live under our runtime's default root, where `dockyard-runtime state`
reads them: that is how the tests know our runtime, not runc, holds them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from tests.support import peers
from tests.support.runtime import RUNTIME, Runtime

pytestmark = [
    pytest.mark.root,
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (Debian package podman)"),
    pytest.mark.timeout(120),
]

# podman's default ulimits (nofile 1048576) can exceed the hard limits a host allows.
CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "{tmp}"
"""


class Podman(peers.Manager):
    image = "localhost/dockyard-bb:latest"
    exec_missing_status = 127

    def __init__(self, base: str):
        self.base = base
        self.link = peers.runc_link(os.path.join(base, "bin"))
        self.tmp = os.path.join(base, "tmp")
        os.makedirs(self.tmp)
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(tmp=self.tmp))
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.runtime = Runtime(RUNTIME, peers.DEFAULT_RUNTIME_ROOT)
        self.cgroup_parent = f"/dockyard-test-podman-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []

    def argv(self, *args) -> list[str]:
        return ["podman", "--root", os.path.join(self.base, "root"), "--runroot", os.path.join(self.base, "run"),
                "--tmpdir", self.tmp, "--runtime", self.link, "--cgroup-manager", "cgroupfs",
                "--storage-driver", "overlay", *map(str, args)]

    def run_argv(self, *args) -> list[str]:
        return self.argv("run", "--cgroup-parent", self.cgroup_parent, *args)

    def container_cgroup(self, cid: str) -> str:
        return f"{self.cgroup_parent}/libpod-{cid}"

    def start_container(self, *cmd, opts=()) -> str:
        cid = super().start_container(*cmd, opts=opts)
        self.ids.append(cid)
        return cid


@pytest.fixture(scope="module")
def podman(busybox_rootfs):
    # Short paths: conmon's attach socket lives below the run root and must fit sun_path.
    base = tempfile.mkdtemp(prefix="dy-podman-")
    p = Podman(base)
    try:
        p("import", peers.busybox_tarball(busybox_rootfs, os.path.join(base, "bb.tar")), p.image)
        yield p
    finally:
        try:
            p("rm", "--all", "--force", "--time", "0")
        finally:
            peers.remove_tree(base)
            peers.remove_cgroup(p.cgroup_parent)
    left = [c for c in p.ids if os.path.exists(os.path.join(peers.DEFAULT_RUNTIME_ROOT, c))]
    assert not left, f"runtime state left behind for {left}"


def test_run_rm(podman, tmp_path):
    podman.ids.append(peers.check_run_rm(podman, tmp_path))


def test_run_missing_program_is_127(podman):
    peers.check_missing_program(podman)


def test_detached_exec_stop_rm(podman):
    cid = podman.start_container(*peers.check_detached_exec_stop_rm.PROGRAM)
    info = podman.inspect(cid)
    assert info["OCIRuntime"] == podman.link
    assert podman.runtime.state(cid)["bundle"].endswith(f"/{cid}/userdata")
    peers.check_detached_exec_stop_rm(podman, cid)
    assert podman("container", "exists", cid, check=False).returncode == 1


def test_run_it_and_exec_it_on_a_terminal(podman):
    peers.check_terminal(podman)


def test_pause_unpause(podman):
    peers.check_pause_unpause(podman)


def test_kill_with_a_signal_and_by_default(podman):
    peers.check_kill(podman)


def test_memory_limit_at_run_and_by_update(podman):
    # podman 4.3 sends `update --resources=FILE`; its inspect keeps showing the run-time value.
    cid = peers.check_memory_limit(podman, ("--memory", "32m"), ("--memory", "64m"))
    podman("rm", "--force", "--time", "0", cid)
