"""Which daemon the CLI talks to: -H, DOCKYARD_HOST, and starting one for the default socket."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.support.engine import DOCKYARD

pytestmark = pytest.mark.root

DEFAULT_SOCKET = "/run/dockyard.sock"
DEFAULT_PIDFILE = "/run/dockyard.pid"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DOCKYARD_HOST", "DOCKER_HOST")}
    base.update(env or {})
    return subprocess.run([DOCKYARD, *args], capture_output=True, text=True, timeout=60, env=base)


def test_host_flag_and_environment(engine, tmp_path):
    missing = f"unix://{tmp_path}/none.sock"
    out = run("-H", missing, "images")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == f"Cannot connect to the Dockyard daemon at {missing}. Is the dockyard daemon running?\n"
    out = run("images", env={"DOCKYARD_HOST": missing})
    assert out.returncode == 1 and "Starting dockyardd" not in out.stderr, "never start a daemon for an explicit host"
    out = run("images", env={"DOCKYARD_HOST": engine.host})
    assert out.returncode == 0 and out.stdout.startswith("REPOSITORY")
    out = run("-H", engine.host, "images", env={"DOCKYARD_HOST": missing})
    assert out.returncode == 0, "-H wins over DOCKYARD_HOST"
    out = run("--host=" + engine.host, "version", "--format", "{{.Server.ApiVersion}}")
    assert (out.returncode, out.stdout) == (0, "1.41\n")
    out = run("-H", "tcp://127.0.0.1:2375", "images")
    assert out.returncode == 1 and "unix socket" in out.stderr


def _default_daemon_running() -> bool:
    if not os.path.exists(DEFAULT_PIDFILE):
        return False
    with open(DEFAULT_PIDFILE) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def test_first_command_starts_a_daemon_on_the_default_socket():
    if _default_daemon_running() or os.path.exists(DEFAULT_SOCKET):
        pytest.skip("a dockyardd already serves the default socket on this machine")
    created = [p for p in (DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT) if not os.path.exists(p)]
    pid = None
    try:
        out = run("images")
        assert out.returncode == 0, out.stderr
        assert out.stderr == f"Starting dockyardd in the background (log: {DEFAULT_EXEC_ROOT}/dockyardd.log)\n"
        assert out.stdout.startswith("REPOSITORY   TAG")
        pid = int(open(DEFAULT_PIDFILE).read())
        again = run("images")
        assert again.returncode == 0 and again.stderr == "", "the second command finds the daemon running"
        assert "API listening" in open(f"{DEFAULT_EXEC_ROOT}/dockyardd.log").read()
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
    assert not os.path.exists(DEFAULT_SOCKET) and not os.path.exists(DEFAULT_PIDFILE)
