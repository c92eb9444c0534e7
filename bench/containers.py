"""Containers through the engine: start-up latency and what supervising them costs, side by side with dockerd.

    sudo .venv/bin/python bench/containers.py [--runs 20] [--sleepers 50] [--peer-host unix:///…] [--json]

Latency (runs alternate, medians reported):
  - `dockyard run --rm busybox true` against dockyardd         (issue 4: <= 0.35 x docker's)
  - the docker CLI's `run --rm busybox true` against dockyardd
  - the docker CLI's `run --rm bb true` against the peer dockerd   (issue 4: ours <= 0.5 x this)
The peer's default bridge may be missing on this machine; then both sides run
with `--network none` for the ratios, and ours is also timed on its default
bridge (`dockyard_run_bridge_ms`: namespace, veth and address included).

Memory (issue 4: <= 1 MiB per running container):
  `--sleepers` detached `sleep` containers on each engine; what the engine adds per
  container is the growth of dockyardd plus the monitor (PSS, from
  /proc/PID/smaps_rollup), divided by their number. The monitor's whole PSS
  divided by the number of containers is reported as well. For dockerd, the same
  growth of dockerd + containerd, and the PSS of the containerd shims.
  Also: dockyardd's idle RSS with no containers (goal <= 60 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common import peer_host, pss_kib, rss_kib, timed  # noqa: E402

from tests.support.engine import DOCKER, DOCKYARD, Engine, import_busybox, make_busybox_tar  # noqa: E402


def pids_named(fragment: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if fragment.encode() in f.read().replace(b"\0", b" "):
                    out.append(int(entry))
        except OSError:
            continue
    return out


def peer_network_args(env: dict[str, str]) -> list[str]:
    """`--network none` when the peer's default bridge does not work on this machine."""
    probe = subprocess.run([DOCKER, "run", "--rm", "bb", "true"], env=env, capture_output=True)
    return [] if probe.returncode == 0 else ["--network", "none"]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def latency(engine: Engine, peer: str | None, runs: int, results: dict) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
    ours_env = dict(base, DOCKER_HOST=engine.host)
    peer_env = dict(base, DOCKER_HOST=peer) if peer else None
    net = peer_network_args(peer_env) if peer_env else []
    commands = {
        "dockyard_run": ([DOCKYARD, "-H", engine.host, "run", "--rm", *net, "busybox", "true"], base),
        "docker_cli_to_dockyardd": ([DOCKER, "run", "--rm", *net, "busybox", "true"], ours_env),
    }
    if net:
        commands["dockyard_run_bridge"] = ([DOCKYARD, "-H", engine.host, "run", "--rm", "busybox", "true"], base)
    if peer_env:
        commands["docker_cli_to_dockerd"] = ([DOCKER, "run", "--rm", *net, "bb", "true"], peer_env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv, env in commands.values():
        timed(argv, env)  # warm caches (and start the monitor)
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            samples[name].append(timed(argv, env))
    for name, values in samples.items():
        results[f"{name}_ms"] = median_ms(values)
    results["peer_network_args"] = " ".join(net)
    if peer_env:
        docker_ms = results["docker_cli_to_dockerd_ms"]
        results["ratio_dockyard_vs_docker"] = round(results["dockyard_run_ms"] / docker_ms, 2)
        results["ratio_docker_cli_dockyardd_vs_dockerd"] = round(results["docker_cli_to_dockyardd_ms"] / docker_ms, 2)


def sleepers_ours(engine: Engine, count: int, results: dict) -> None:
    env = dict(os.environ, DOCKER_HOST=engine.host)
    daemon = engine.proc.pid  # type: ignore[union-attr]
    monitor = engine.monitor_pid()
    assert monitor is not None, "the monitor runs after the latency runs"
    time.sleep(1.0)
    before = pss_kib(daemon) + pss_kib(monitor)
    monitor_before = pss_kib(monitor)
    ids = []
    for _ in range(count):
        out = subprocess.run([DOCKER, "run", "-d", "--network", "none", "busybox", "sleep", "600"], env=env,
                             capture_output=True, check=True)
        ids.append(out.stdout.decode().strip())
    time.sleep(2.0)
    after = pss_kib(daemon) + pss_kib(monitor)
    monitor_after = pss_kib(monitor)
    # Anything of ours per container other than the monitor? (There should be none.)
    extra = [p for p in pids_named("dockyard") if p not in (daemon, monitor)
             and b"dockyard" in open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0]]
    results["ours_per_container_kib"] = round((after - before) / count)
    results["ours_monitor_pss_mib"] = round(monitor_after / 1024, 1)
    results["ours_monitor_pss_per_container_kib"] = round(monitor_after / count)
    results["ours_monitor_growth_per_container_kib"] = round((monitor_after - monitor_before) / count)
    results["ours_daemon_pss_mib"] = round(pss_kib(daemon) / 1024, 1)
    results["ours_other_resident_processes"] = len(extra)
    subprocess.run([DOCKER, "rm", "-f", *ids], env=env, capture_output=True, check=True)


def sleepers_peer(peer: str, count: int, results: dict) -> None:
    env = dict(os.environ, DOCKER_HOST=peer)
    net = peer_network_args(env)
    state = os.path.dirname(peer[len("unix://"):])
    daemons = pids_named(f"dockerd --data-root {state}")[:1] + pids_named(f"containerd --config {state}")[:1]
    shims_before = set(pids_named("containerd-shim"))
    before = sum(pss_kib(p) for p in daemons)
    ids = []
    try:
        for _ in range(count):
            out = subprocess.run([DOCKER, "run", "-d", *net, "bb", "sleep", "600"], env=env, capture_output=True,
                                 check=True)
            ids.append(out.stdout.decode().strip())
        time.sleep(2.0)
        shims = [p for p in pids_named("containerd-shim") if p not in shims_before]
        shim_pss = sum(pss_kib(p) for p in shims)
        shim_rss = sum(rss_kib(p) for p in shims)
        after = sum(pss_kib(p) for p in daemons)
        results["docker_shims"] = len(shims)
        results["docker_shim_pss_per_container_kib"] = round(shim_pss / count)
        results["docker_shim_rss_per_container_kib"] = round(shim_rss / max(1, len(shims)))
        results["docker_daemons_growth_per_container_kib"] = round((after - before) / count)
        results["docker_per_container_kib"] = round((after - before + shim_pss) / count)
    finally:
        if ids:
            subprocess.run([DOCKER, "rm", "-f", *ids], env=env, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sleepers", type=int, default=50)
    parser.add_argument("--peer-host", default=None)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/containers.py needs root (it starts dockyardd)", file=sys.stderr)
        return 1
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "dockyard")], check=True)
    peer = peer_host(ns.peer_host)
    results: dict = {"runs": ns.runs, "sleepers": ns.sleepers}
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        engine = Engine(os.path.join(tmp, "engine")).start()
        try:
            import_busybox(engine, make_busybox_tar(os.path.join(tmp, "busybox.tar")))
            time.sleep(1.0)
            results["dockyardd_idle_rss_mib"] = round(rss_kib(engine.proc.pid) / 1024, 1)  # type: ignore[union-attr]
            latency(engine, peer, ns.runs, results)
            sleepers_ours(engine, ns.sleepers, results)
        finally:
            engine.cleanup()
    if peer:
        sleepers_peer(peer, ns.sleepers, results)
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if peer:
        print(f"\ngoals: dockyard run <= 0.35 x docker ({results['ratio_dockyard_vs_docker']}), docker CLI to "
              f"dockyardd <= 0.5 x to dockerd ({results['ratio_docker_cli_dockyardd_vs_dockerd']}), "
              f"<= 1024 KiB per container ({results['ours_per_container_kib']}), idle <= 60 MiB "
              f"({results['dockyardd_idle_rss_mib']})")
    if ns.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
