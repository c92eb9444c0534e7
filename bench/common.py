"""What the benchmark scripts share: timing a command, a process's memory, the peer dockerd."""

from __future__ import annotations

import os
import subprocess
import time

DOCKER = "docker"
# Where ../shared/peers/start-peers.sh puts the peer dockerd's socket by default.
DEFAULT_PEER = "unix:///tmp/dockyard-peers/docker.sock"


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    """Wall seconds of one run of `argv`; a failure is an error, not a fast sample."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def _kib(path: str, key: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    return _kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def peer_host(arg: str | None = None) -> str | None:
    """The first docker host that answers: --peer-host, PEER_DOCKER_HOST, DOCKER_HOST, the peers' default."""
    for host in (arg, os.environ.get("PEER_DOCKER_HOST"), os.environ.get("DOCKER_HOST"), DEFAULT_PEER):
        if host and subprocess.run([DOCKER, "version"], capture_output=True,
                                   env=dict(os.environ, DOCKER_HOST=host)).returncode == 0:
            return host
    return None
