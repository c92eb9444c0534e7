"""Images across tools: the real dockerd, skopeo and umoci read what we write, and we read what they write."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid

import pytest

from dockyard.daemon.images import ImageService
from dockyard.snapshots import mount_all, overlay_supported, unmount_all
from tests.support.dockerd import need_tool, peer_docker  # noqa: F401  (fixture)
from tests.support.images import fs_tree

pytestmark = [pytest.mark.root, pytest.mark.peers]

# What `docker create` adds on top of an image (its init layer) and what an export leaves empty.
DOCKER_INIT = (".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab")

DOCKERFILE = b"""FROM bb
RUN mkdir -p /data/sub /data/keep && echo one > /data/sub/f && echo k > /data/keep/k \\
 && echo x > /etc/x && chmod 4755 /etc/x && chown 12:34 /etc/x && echo gone > /data/gone
RUN rm -rf /data/sub && mkdir /data/sub && echo two > /data/sub/g && rm /bin/vi /etc/x /data/gone \\
 && ln -s /data/keep/k /data/link && mknod /data/null c 1 3 && mkfifo /data/fifo && chmod 1777 /data/sub
CMD ["/bin/sh"]
"""


@pytest.fixture(scope="module")
def built(peer_docker):  # noqa: F811
    """A three-layer image built by the peer (whiteouts, an opaque directory, devices, set-id bits)."""
    tag = f"dyk-interop-{uuid.uuid4().hex[:8]}:1"
    peer_docker.run("build", "--network", "none", "-q", "-t", tag, "-", input=DOCKERFILE)
    yield tag
    peer_docker.run("rmi", "-f", tag, check=False)


@pytest.fixture
def svc(tmp_path):
    if not overlay_supported(str(tmp_path)):
        pytest.skip("overlayfs cannot be mounted here")
    return ImageService(str(tmp_path / "root"), snapshotter="overlay")


def mounted_tree(svc, image: str, where: str, skip=()) -> dict:
    key = "view-" + uuid.uuid4().hex[:8]
    os.makedirs(where, exist_ok=True)
    mount_all(svc.mounts_for_container(image, key), where)
    try:
        return fs_tree(where, skip)
    finally:
        unmount_all(where)
        svc.release_container(key)


def docker_tree(docker, image: str, where: str) -> dict:
    """The image's filesystem as the peer dockerd sees it (docker create + export)."""
    cid = docker.run("create", "--network", "none", image).stdout.decode().strip()
    try:
        exported = docker.run("export", cid).stdout
    finally:
        docker.run("rm", "-f", cid, check=False)
    os.makedirs(where)
    subprocess.run(["tar", "-C", where, "-xpf", "-", "--same-owner", "--numeric-owner"], input=exported, check=True)
    return fs_tree(where, DOCKER_INIT)


def test_docker_save_loads_and_its_tree_matches(peer_docker, built, svc, tmp_path):  # noqa: F811
    archive = peer_docker.run("save", built).stdout
    messages = list(svc.load(io.BytesIO(archive), quiet=True))
    assert messages == [{"stream": f"Loaded image: {built}\n"}]
    inspect = json.loads(peer_docker.run("image", "inspect", built).stdout)[0]
    ours = svc.inspect(built)
    assert ours.id == inspect["Id"]
    assert list(ours.layers) == inspect["RootFS"]["Layers"]
    assert ours.config["Cmd"] == ["/bin/sh"]
    expected = docker_tree(peer_docker, built, str(tmp_path / "docker"))
    got = mounted_tree(svc, built, str(tmp_path / "ours"), DOCKER_INIT)
    assert got == expected
    assert "data/gone" not in got and "bin/vi" not in got and "data/sub/f" not in got
    assert got["data/sub/g"][4] is not None and got["data/null"][4] == (1, 3)


def test_our_save_loads_into_dockerd_and_runs(peer_docker, built, svc, tmp_path, busybox_rootfs):  # noqa: F811
    list(svc.load(io.BytesIO(peer_docker.run("save", built).stdout), quiet=True))
    rootfs_tar = subprocess.run(["tar", "-C", busybox_rootfs, "-cf", "-", "."], capture_output=True,
                                check=True).stdout
    name = f"dyk-ours-{uuid.uuid4().hex[:8]}"
    imported = svc.import_rootfs(io.BytesIO(rootfs_tar), name, "imported",
                                 ['CMD ["/bin/sh", "-c", "echo from-import $A"]', "ENV A=42"])
    svc.tag(built, name, "rebuilt")
    for layout in ("oci", "legacy"):
        out = io.BytesIO()
        svc.save([f"{name}:imported", f"{name}:rebuilt"], out, layout=layout)
        loaded = peer_docker.run("load", input=out.getvalue()).stdout.decode()
        assert f"Loaded image: {name}:imported" in loaded and f"Loaded image: {name}:rebuilt" in loaded
        try:
            run = peer_docker.run("run", "--rm", "--network", "none", f"{name}:imported")
            assert run.stdout == b"from-import 42\n"
            run = peer_docker.run("run", "--rm", "--network", "none", f"{name}:rebuilt", "cat", "/data/sub/g")
            assert run.stdout == b"two\n"
            peer_docker.run("run", "--rm", "--network", "none", f"{name}:rebuilt", "true")
            assert json.loads(peer_docker.run("image", "inspect", f"{name}:imported").stdout)[0]["Id"] == imported
        finally:
            peer_docker.run("rmi", "-f", f"{name}:imported", f"{name}:rebuilt", check=False)


def test_skopeo_copies_our_oci_layout_and_back(peer_docker, built, svc, tmp_path):  # noqa: F811
    skopeo = need_tool("skopeo", "skopeo")
    list(svc.load(io.BytesIO(peer_docker.run("save", built).stdout), quiet=True))
    first, second = str(tmp_path / "layout1"), str(tmp_path / "layout2")
    assert svc.export_oci_layout(built, first) == "1"
    # skopeo compresses our plain layers on the way (gzip, and zstd for the third copy).
    subprocess.run([skopeo, "copy", "-q", f"oci:{first}:1", f"oci:{second}:copied"], check=True)
    subprocess.run([skopeo, "copy", "-q", "--dest-compress-format", "zstd", f"oci:{first}:1",
                    f"oci:{second}:zstd"], check=True)
    other = ImageService(str(tmp_path / "other"), snapshotter="overlay")
    assert other.import_oci_layout(second, "back:gzip", ref="copied") == [svc.resolve(built)]
    assert other.import_oci_layout(second, "back:zstd", ref="zstd") == [svc.resolve(built)]
    manifest = json.loads(other.content.read(other.store.get(other.resolve("back:gzip")).manifest))
    assert all(layer["mediaType"].endswith("+gzip") for layer in manifest["layers"])
    assert mounted_tree(other, "back:zstd", str(tmp_path / "m1")) == mounted_tree(svc, built, str(tmp_path / "m2"))
    # skopeo also reads our docker-save archives.
    archive = tmp_path / "ours.tar"
    with open(archive, "wb") as f:
        svc.save([built], f)
    subprocess.run([skopeo, "copy", "-q", f"docker-archive:{archive}", f"oci:{second}:fromarchive"], check=True)
    # (skopeo rewrites a docker-archive's config into OCI form, so the image ID changes; the layers do not.)
    other.import_oci_layout(second, "back:archive", ref="fromarchive")
    assert other.inspect("back:archive").layers == svc.inspect(built).layers


def test_umoci_unpacks_our_oci_layout(peer_docker, built, svc, tmp_path):  # noqa: F811
    umoci = need_tool("umoci", "umoci")
    list(svc.load(io.BytesIO(peer_docker.run("save", built).stdout), quiet=True))
    layout = str(tmp_path / "layout")
    svc.export_oci_layout(built, layout, ref="v1")
    bundle = str(tmp_path / "bundle")
    subprocess.run([umoci, "unpack", "--image", f"{layout}:v1", bundle], check=True, capture_output=True)
    assert fs_tree(os.path.join(bundle, "rootfs")) == mounted_tree(svc, built, str(tmp_path / "ours"))
