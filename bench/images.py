"""Image speed, side by side: `dockyard load` vs `docker load`, and layer unpack vs `tar -x`.

    sudo .venv/bin/python bench/images.py [--runs 5] [--peer-host unix:///path/docker.sock] [--json]

The archive is a ~200 MB `docker save` of four layers shaped like a real
image (an OS layer of many small files, a runtime of large ones, an
application, a small config layer with whiteouts), generated once and kept
in --cache.  Each run loads it into a fresh state of both daemons (the image
is removed in between), alternating ours and docker's so that noise hits both
alike; the table shows medians and their ratio.  Goals (issue 3):
`dockyard load` / `docker load` <= 0.7; our unpack time / `tar -x` time <= 2
for the same uncompressed layers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common import peer_host  # noqa: E402

from dockyard.diff import Whiteouts, unpack_blob  # noqa: E402
from tests.support.engine import DOCKER, Engine  # noqa: E402

TAG = "dyk-bench-load:1"
MB = 1 << 20


# -- the archive -------------------------------------------------------------------------------

def _layer(rng: random.Random, files: list[tuple[str, int]], extra=()) -> bytes:
    buf = io.BytesIO()
    dirs = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in files:
            parent = os.path.dirname(name)
            chain = []
            while parent and parent not in dirs:
                chain.append(parent)
                dirs.add(parent)
                parent = os.path.dirname(parent)
            for d in reversed(chain):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(rng.randbytes(size)))
        for item in extra:
            tar.addfile(item[0], item[1])
    return buf.getvalue()


def _sizes(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    # Log-uniform: many small files, a few large ones, as in a distribution's /usr.
    return [int(low * (high / low) ** rng.random()) for _ in range(count)]


def build_archive(path: str) -> None:
    rng = random.Random(20261127)
    os_files = [(f"usr/lib/pkg{i % 300}/file{i}.so", s) for i, s in enumerate(_sizes(rng, 7000, 256, 50_000))]
    runtime = [(f"opt/runtime/lib/big{i}.bin", s) for i, s in enumerate(_sizes(rng, 19, 2 * MB, 9 * MB))]
    runtime += [(f"opt/runtime/share/s{i}.txt", s) for i, s in enumerate(_sizes(rng, 600, 256, 20_000))]
    app = [(f"srv/app/mod{i % 80}/src{i}.py", s) for i, s in enumerate(_sizes(rng, 3000, 200, 40_000))]
    app += [(f"srv/app/assets/blob{i}.dat", 5 * MB) for i in range(3)]
    whiteout = tarfile.TarInfo("usr/lib/pkg1/.wh.file1.so")
    opaque = tarfile.TarInfo("srv/app/mod3/.wh..wh..opq")
    config = [(f"etc/conf.d/c{i}.conf", s) for i, s in enumerate(_sizes(rng, 50, 100, 4000))]
    layers = [_layer(rng, os_files), _layer(rng, runtime), _layer(rng, app),
              _layer(rng, config, [(whiteout, None), (opaque, None)])]
    diff_ids = ["sha256:" + _sha(layer) for layer in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-11-27T00:00:00Z",
                      "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                      "history": [{"created": "2026-11-27T00:00:00Z", "created_by": f"layer {i}"}
                                  for i in range(len(layers))]}).encode()
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            name = diff_id[7:] + "/layer.tar"
            info = tarfile.TarInfo(name)
            info.size = len(layer)
            tar.addfile(info, io.BytesIO(layer))
            paths.append(name)
        for name, data in ((_sha(cfg) + ".json", cfg),
                           ("manifest.json", json.dumps([{"Config": _sha(cfg) + ".json", "RepoTags": [TAG],
                                                          "Layers": paths}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def layers_of(archive: str, into: str) -> list[tuple[str, str]]:
    """(path, digest) of each layer.tar, extracted from the archive once."""
    out = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith("/layer.tar"):
                path = os.path.join(into, member.name.split("/")[0] + ".tar")
                with tar.extractfile(member) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, MB)
                out.append((path, "sha256:" + member.name.split("/")[0]))
    return out


# -- measuring --------------------------------------------------------------------------------

def run(argv: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, capture_output=True, **kw)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace')}")
    return proc


def timed(fn) -> float:
    os.sync()  # start each measurement with nothing of the previous one still being written back
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_load(archive: str, runs: int, peer: str | None, tmp: str) -> dict:
    engine = Engine(os.path.join(tmp, "engine")).start()
    ours, theirs = [], []
    docker_env = dict(os.environ, DOCKER_HOST=peer) if peer else None
    try:
        for _ in range(runs):
            ours.append(timed(lambda: engine.dockyard("load", "-i", archive, timeout=600)))
            engine.dockyard("rmi", TAG)
            if docker_env:
                subprocess.run([DOCKER, "rmi", "-f", TAG], env=docker_env, capture_output=True)
                theirs.append(timed(lambda: run([DOCKER, "load", "-i", archive], docker_env)))
                run([DOCKER, "rmi", "-f", TAG], docker_env)
    finally:
        engine.stop()
        engine.cleanup()
    return {"dockyard_load_s": statistics.median(ours), "docker_load_s": statistics.median(theirs) if theirs else None,
            "load_ratio": statistics.median(ours) / statistics.median(theirs) if theirs else None,
            "load_runs": {"dockyard": ours, "docker": theirs}}


def bench_unpack(layers: list[tuple[str, str]], runs: int, tmp: str) -> dict:
    ours, tars = [], []
    for _ in range(runs):
        for kind in ("ours", "tar"):
            target = os.path.join(tmp, f"unpack-{kind}")
            total = 0.0
            for path, digest in layers:
                shutil.rmtree(target, ignore_errors=True)
                os.makedirs(target)
                if kind == "ours":
                    total += timed(lambda p=path, d=digest, t=target: unpack_blob(p, t, Whiteouts.OVERLAY,
                                                                                  blob_digest=d))
                else:
                    total += timed(lambda p=path, t=target: run(["tar", "-xf", p, "-C", t, "-p", "--same-owner",
                                                                 "--numeric-owner"]))
            shutil.rmtree(target, ignore_errors=True)
            (ours if kind == "ours" else tars).append(total)
    size = sum(os.path.getsize(p) for p, _ in layers)
    return {"unpack_bytes": size, "unpack_ours_s": statistics.median(ours), "unpack_tar_s": statistics.median(tars),
            "unpack_ratio": statistics.median(ours) / statistics.median(tars),
            "unpack_ours_mb_s": size / MB / statistics.median(ours), "unpack_tar_mb_s": size / MB / statistics.median(tars)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer-host", default=None)
    parser.add_argument("--cache", default="/var/tmp/dockyard-bench")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/images.py needs root (it starts dockyardd and unpacks as root)", file=sys.stderr)
        return 1
    os.makedirs(ns.cache, exist_ok=True)
    archive = os.path.join(ns.cache, "images-200m.tar")
    if not os.path.exists(archive):
        print(f"generating {archive} …", file=sys.stderr)
        build_archive(archive)
    peer = peer_host(ns.peer_host)
    results: dict = {"runs": ns.runs, "archive_mb": round(os.path.getsize(archive) / MB, 1)}
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-", dir="/var/tmp") as tmp:
        results.update(bench_load(archive, ns.runs, peer, tmp))
        results.update(bench_unpack(layers_of(archive, tmp), ns.runs, tmp))
    rows = [
        ("load ~200 MB archive (median s)", results["dockyard_load_s"], results["docker_load_s"],
         results["load_ratio"], "<= 0.7"),
        ("unpack layers (median s)", results["unpack_ours_s"], results["unpack_tar_s"], results["unpack_ratio"],
         "<= 2.0"),
    ]
    print(f"{'':34} {'dockyard':>10} {'peer':>10} {'ratio':>7}  goal")
    for name, a, b, ratio, goal in rows:
        fmt = lambda v: f"{v:10.3f}" if isinstance(v, float) else f"{'-':>10}"  # noqa: E731
        print(f"{name:34} {fmt(a)} {fmt(b)} {ratio if ratio is None else round(ratio, 2)!s:>7}  {goal}")
    print(f"(archive {results['archive_mb']} MB; unpack throughput ours {results['unpack_ours_mb_s']:.0f} MB/s, "
          f"tar -x {results['unpack_tar_mb_s']:.0f} MB/s; peer: 'tar -x' for unpack, dockerd {peer or 'absent'} for load)")
    if ns.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
