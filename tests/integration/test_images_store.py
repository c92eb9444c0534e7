"""The image store on overlayfs: layers shared on disk, bad input refused with nothing stored or lost."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat

import pytest

from dockyard.daemon.images import ImageService
from dockyard.errors import InvalidArgument, NotFound
from dockyard.linux.mount import mounts_under
from dockyard.snapshots import mount_all, overlay_supported, unmount_all
from tests.support.images import ArchiveWriter, Img, layer_tar, legacy_archive, oci_archive, sha, store_state
from tests.unit.test_diff import make_tar

pytestmark = pytest.mark.root

MB = 1 << 20


@pytest.fixture
def svc(tmp_path):
    if not overlay_supported(str(tmp_path)):
        pytest.skip("overlayfs cannot be mounted here")
    service = ImageService(str(tmp_path / "root"), snapshotter="overlay")
    yield service
    assert mounts_under(str(tmp_path)) == []


def disk_usage(root: str) -> tuple[int, int]:
    """(bytes of allocated blocks, number of files of 100 MB or more), hard links counted once."""
    used, big, seen = 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            if stat.S_ISREG(st.st_mode) and st.st_size >= 100 * MB:
                big += 1
    return used, big


def test_ten_images_on_one_base_store_it_once(svc, tmp_path):
    base = layer_tar({"big": os.urandom(100 * MB), "etc": None, "etc/os": b"base"})
    images = [Img([base, layer_tar({f"app{i}": f"app {i}".encode()})], [f"app{i}:1"]) for i in range(10)]
    # Two separate loads, each archive carrying the base: the second finds it already there.
    list(svc.load(io.BytesIO(legacy_archive(images[:5])), quiet=True))
    list(svc.load(io.BytesIO(oci_archive(images[5:])), quiet=True))
    used, big = disk_usage(svc.data_root)
    # Once as a blob (for save/push) and once unpacked (for containers); ten copies would be 2 GB.
    assert big == 2
    assert used < 2 * 100 * MB + 20 * MB
    usage = svc.disk_usage()
    assert len(usage.images) == 10 and all(s.shared_size >= 100 * MB for s in usage.images)
    assert 100 * MB < usage.layers_size < 101 * MB
    # Every image sees the base through its own stack.
    where = str(tmp_path / "mnt")
    os.mkdir(where)
    mount_all(svc.mounts_for_container("app7:1", "c7"), where)
    try:
        assert open(os.path.join(where, "app7"), "rb").read() == b"app 7"
        assert os.path.getsize(os.path.join(where, "big")) == 100 * MB
    finally:
        unmount_all(where)
    svc.release_container("c7")
    for i in range(9):
        svc.remove(f"app{i}:1")
    assert disk_usage(svc.data_root)[1] == 2  # app9 still needs the base
    svc.remove("app9:1")
    assert disk_usage(svc.data_root)[1] == 0
    assert store_state(svc) == ([], [], [], [], [])


# -- bad input ---------------------------------------------------------------------------------------

GOOD = Img([layer_tar({"bin": None, "bin/tool": b"tool"})], ["good:1"])


def _img_with_layer(entries) -> Img:
    return Img([make_tar(entries)], ["evil:1"])


_KEEP = object()


def _legacy_with(layer=_KEEP, config=_KEEP, manifest=_KEEP) -> bytes:
    """A legacy archive of one image with a member replaced (bytes) or left out (None)."""
    img = Img([layer_tar({"a": b"A" * 3000})], ["bad:1"])
    config_name = img.id[7:] + ".json"
    members = {
        "l1/layer.tar": img.layers[0] if layer is _KEEP else layer,
        config_name: img.config if config is _KEEP else config,
        "manifest.json": json.dumps([{"Config": config_name, "RepoTags": ["bad:1"],
                                      "Layers": ["l1/layer.tar"]}]).encode() if manifest is _KEEP else manifest,
    }
    w = ArchiveWriter()
    for name, data in members.items():
        if data is not None:
            w.file(name, data)
    return w.bytes()


def _cut_before_manifest() -> bytes:
    data = legacy_archive([GOOD])
    at = data.rindex(b"manifest.json")
    return data[:at - at % 512]


def _oci_blob_swapped() -> bytes:
    img = Img([layer_tar({"a": b"A"})], ["swap:1"])
    data = oci_archive([img])
    return data.replace(b"A" + b"\0" * 511, b"B" + b"\0" * 511, 1)


def _outer_escape() -> bytes:
    w = ArchiveWriter()
    w.file("../escaped", b"x")
    return w.bytes()


def _outer_link_escape() -> bytes:
    w = ArchiveWriter()
    w.symlink("l1/layer.tar", "../../../etc/passwd")
    w.file("manifest.json", b"[]")
    return w.bytes()


BAD_ARCHIVES = {
    "empty": (lambda: b"", "empty"),
    "garbage": (lambda: os.urandom(4096), "corrupt archive"),
    "truncated in a layer": (lambda: legacy_archive([GOOD])[:1700], "truncated"),
    "truncated before the manifest": (_cut_before_manifest, "manifest.json"),
    "layer digest mismatch": (lambda: _legacy_with(layer=layer_tar({"a": b"B" * 3000})), "digest mismatch"),
    "config missing": (lambda: _legacy_with(config=None), "config .* is missing"),
    "config not json": (lambda: _legacy_with(config=b"{"), "invalid image config"),
    "layer missing": (lambda: _legacy_with(layer=None), "layer .* is missing from the archive"),
    "manifest not json": (lambda: _legacy_with(manifest=b"{nope"), "invalid manifest.json"),
    "oci blob digest mismatch": (_oci_blob_swapped, "digest mismatch"),
    "member escaping the archive": (_outer_escape, "escape"),
    "link escaping the archive": (_outer_link_escape, "outside the archive"),
    "layer with ..": (lambda: legacy_archive([_img_with_layer([("../../evil", "file", b"x")])]), "escape"),
    "layer with an absolute path": (lambda: legacy_archive([_img_with_layer([("/evil", "file", b"x")])]),
                                    "absolute"),
    "layer writing through a symlink": (lambda: legacy_archive([_img_with_layer([
        ("l", "symlink", "/tmp"), ("l/evil", "file", b"x")])]), "symlink"),
    "layer hard-linking outside": (lambda: legacy_archive([_img_with_layer([("h", "hardlink", "../../etc/passwd")])]),
                                   "escape"),
    "corrupt gzip layer": (lambda: legacy_archive([Img([layer_tar({"z": os.urandom(50000)})], ["z:1"],
                                                       compress=True)]).replace(b"\x1f\x8b\x08", b"\x1f\x8b\x08\xff"),
                           "corrupt"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archives_are_refused_and_change_nothing(svc, case, tmp_path):
    list(svc.load(io.BytesIO(legacy_archive([GOOD])), quiet=True))
    before = store_state(svc)
    make, message = BAD_ARCHIVES[case]
    with pytest.raises(InvalidArgument, match=message):
        list(svc.load(io.BytesIO(make()), quiet=True))
    assert store_state(svc) == before
    assert not os.path.exists("/tmp/evil") and not os.path.exists(str(tmp_path / "evil"))
    # What was there before still works.
    assert svc.inspect("good:1").id == GOOD.id


def test_a_corrupt_gzip_layer_is_caught_by_its_diff_id(svc):
    # Flip a byte of compressed data but keep the gzip stream valid: only the DiffID can tell.
    raw = layer_tar({"f": b"x" * 1000})
    img = Img([raw], ["gz:1"], compress=True)
    blob = gzip.compress(layer_tar({"f": b"y" * 1000}), mtime=0)
    archive = oci_archive([img]).replace(img.blobs()[0], blob.ljust(len(img.blobs()[0]), b"\0")[:len(blob)])
    before = store_state(svc)
    with pytest.raises(InvalidArgument):
        list(svc.load(io.BytesIO(archive), quiet=True))
    assert store_state(svc) == before


def test_import_refuses_malicious_tarballs(svc):
    before = store_state(svc)
    for tarball in (make_tar([("../x", "file", b"x")]), make_tar([("l", "symlink", "/"), ("l/etc/x", "file", b"")]),
                    b"not a tarball at all" * 100):
        with pytest.raises(InvalidArgument):
            svc.import_rootfs(io.BytesIO(tarball), "imp", "1")
    assert store_state(svc) == before


def test_unknown_and_invalid_references(svc):
    list(svc.load(io.BytesIO(legacy_archive([GOOD])), quiet=True))
    before = store_state(svc)
    for call in (lambda: svc.inspect("nope"), lambda: svc.history("nope:2"), lambda: svc.remove("nope"),
                 lambda: svc.tag("nope", "x"), lambda: svc.save(["nope"], io.BytesIO()),
                 lambda: svc.mounts_for_container("nope", "k")):
        with pytest.raises(NotFound, match="No such image: nope"):
            call()
    for call in (lambda: svc.tag("good:1", "Bad/Name"), lambda: svc.tag("good:1", "ok", "bad tag!"),
                 lambda: svc.inspect("UPPER"), lambda: svc.import_rootfs(io.BytesIO(b""), "in valid")):
        with pytest.raises(InvalidArgument, match="invalid reference format"):
            call()
    assert store_state(svc) == before


def test_layers_of_all_kinds_of_entries_unpack_with_metadata(svc, tmp_path):
    layer = make_tar([("dev/", "dir", None), ("f", "file", b"x", {"uid": 1000, "gid": 1001, "mode": 0o2750}),
                      ("x", "file", b"y", {"pax": {"SCHILY.xattr.user.note": "hello",
                                                    "SCHILY.xattr.trusted.overlay.opaque": "y"}})])
    img = Img([layer], ["meta:1"])
    list(svc.load(io.BytesIO(legacy_archive([img])), quiet=True))
    where = str(tmp_path / "mnt")
    os.mkdir(where)
    mount_all(svc.mounts_for_container("meta:1", "m"), where)
    try:
        st = os.lstat(os.path.join(where, "f"))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o2750)
        assert os.getxattr(os.path.join(where, "x"), "user.note") == b"hello"
        assert st.st_mtime == 1_600_000_000
    finally:
        unmount_all(where)
    svc.release_container("m")
    upper = svc.snapshotter.dir_of(svc.snapshotter.stat(sha(layer)).id)
    with pytest.raises(OSError):  # the layer may not smuggle in overlayfs' own attributes
        os.getxattr(os.path.join(upper, "fs", "x"), "trusted.overlay.opaque")
