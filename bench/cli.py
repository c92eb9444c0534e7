"""`dockyard images` against dockyardd vs `docker images` against dockerd, and dockyardd's idle memory.

    sudo .venv/bin/python bench/cli.py [--runs 30] [--peer-host unix:///path/docker.sock] [--json]

Both daemons hold one busybox image. Runs alternate (ours, docker, ours, …)
so that machine noise hits both alike; we report medians and their ratio.
The goal in issue 3 is a ratio <= 0.5; see the notes printed at the end for
the floor a Python process puts under it. The peer is found from
--peer-host, then PEER_DOCKER_HOST, then DOCKER_HOST; without one the docker
rows are skipped.

Also measured: the real docker CLI against dockyardd (same command, other
daemon), bare interpreter start-up, and the idle daemon's RSS.
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

from common import peer_host, rss_kib, timed  # noqa: E402

from tests.support.engine import DOCKER, DOCKYARD, Engine, import_busybox, make_busybox_tar  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--peer-host", default=None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    ns = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/cli.py needs root (it starts dockyardd)", file=sys.stderr)
        return 1
    # Byte-compile once, as an installed package would be: the environment may
    # forbid writing .pyc files, and compiling on every run is not what users see.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "dockyard")], check=True)
    peer = peer_host(ns.peer_host)
    results: dict[str, float | int | str | None] = {"runs": ns.runs}
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        engine = Engine(os.path.join(tmp, "engine")).start()
        try:
            import_busybox(engine, make_busybox_tar(os.path.join(tmp, "busybox.tar")), "bb:latest")
            time.sleep(1.0)
            results["dockyardd_idle_rss_mib"] = round(rss_kib(engine.proc.pid) / 1024, 1)  # type: ignore[union-attr]
            base_env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
            ours = [DOCKYARD, "-H", engine.host, "images"]
            docker_ours_env = dict(base_env, DOCKER_HOST=engine.host, DOCKER_CONFIG=os.path.join(tmp, "cfg"))
            docker_peer_env = dict(base_env, DOCKER_HOST=peer or "", DOCKER_CONFIG=os.path.join(tmp, "cfg"))
            series: dict[str, list[float]] = {"ours": [], "docker_peer": [], "docker_ours": [], "python_bare": [],
                                              "python_site": []}
            for argv, env in ((ours, base_env), ([DOCKER, "images"], docker_ours_env)):
                timed(argv, env)  # warm the page cache
            for _ in range(ns.runs):
                series["ours"].append(timed(ours, base_env))
                if peer:
                    series["docker_peer"].append(timed([DOCKER, "images"], docker_peer_env))
                series["docker_ours"].append(timed([DOCKER, "images"], docker_ours_env))
                series["python_bare"].append(timed([sys.executable, "-I", "-S", "-c", "pass"], base_env))
                series["python_site"].append(timed([sys.executable, "-c", "pass"], base_env))
            time.sleep(0.5)
            results["dockyardd_rss_after_bench_mib"] = round(rss_kib(engine.proc.pid) / 1024, 1)  # type: ignore[union-attr]
        finally:
            engine.cleanup()
    medians = {k: statistics.median(v) * 1000 for k, v in series.items() if v}
    results.update({f"{k}_ms": round(v, 2) for k, v in medians.items()})
    if "docker_peer" in medians:
        results["ratio_images"] = round(medians["ours"] / medians["docker_peer"], 3)
        results["ratio_docker_cli_ours_vs_dockerd"] = round(medians["docker_ours"] / medians["docker_peer"], 3)

    rows = [
        ("dockyard images -> dockyardd", medians["ours"]),
        ("docker images -> dockerd (peer)", medians.get("docker_peer")),
        ("docker images -> dockyardd", medians["docker_ours"]),
        ("python -I -S -c pass (floor)", medians["python_bare"]),
        ("python -c pass (with site)", medians["python_site"]),
    ]
    print(f"{'command':40} {'median ms':>10}   (runs: {ns.runs}, alternating)")
    for name, value in rows:
        shown = f"{value:.2f}" if value is not None else "skipped"
        print(f"{name:40} {shown:>10}")
    if "ratio_images" in results:
        print(f"{'ratio dockyard/docker images':40} {results['ratio_images']:>10}   (goal <= 0.5)")
        print(f"{'ratio docker CLI: dockyardd/dockerd':40} {results['ratio_docker_cli_ours_vs_dockerd']:>10}")
    print(f"{'dockyardd idle RSS (MiB)':40} {results['dockyardd_idle_rss_mib']:>10}   (goal <= 60)")
    print(f"{'dockyardd RSS after the runs (MiB)':40} {results['dockyardd_rss_after_bench_mib']:>10}")
    if ns.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
