"""Snapshotters on a real kernel: both implementations, real mounts, whiteouts both ways, deep stacks."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile

import pytest

from dockyard.diff import TarReader, Whiteouts, apply_layer, write_tree
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.linux.mount import mounts_under
from dockyard.snapshots import (
    Kind,
    NativeSnapshotter,
    OverlaySnapshotter,
    mount_all,
    overlay_supported,
    unmount_all,
)
from dockyard.snapshots.mount import OPTIONS_LIMIT
from tests.support.images import layer_tar

pytestmark = pytest.mark.root

KINDS = ["overlay", "native"]


@pytest.fixture(params=KINDS)
def snap(request, tmp_path):
    root = str(tmp_path / "snapshots")
    if request.param == "overlay":
        if not overlay_supported(str(tmp_path)):
            pytest.skip("overlayfs cannot be mounted here")
        yield OverlaySnapshotter(root)
    else:
        yield NativeSnapshotter(root)
    leaked = mounts_under(str(tmp_path))
    unmount_all(str(tmp_path))
    assert not leaked, f"mounts leaked: {leaked}"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "mnt"
    path.mkdir()
    yield str(path)
    unmount_all(str(path))


def add_layer(snap, name: str, parent: str | None, data: bytes) -> str:
    key = f"extract-{name}"
    snap.prepare(key, parent)
    apply_layer(TarReader(io.BytesIO(data)), snap.upper_dir(key), snap.whiteout_mode())
    snap.commit(name, key)
    return name


def whiteout_tar(entries: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in entries:
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                content = b"" if "/.wh." in "/" + name else name.encode()
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def listing(path: str) -> dict[str, bytes | None]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), path)] = None
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


def test_stacked_layers_with_whiteouts_and_opaque_dirs(snap, target):
    add_layer(snap, "l1", None, whiteout_tar(["a/", "a/gone", "a/kept", "b/", "b/old", "b/sub/", "b/sub/deep"]))
    add_layer(snap, "l2", "l1", whiteout_tar(["a/.wh.gone", "b/.wh..wh..opq", "b/new", "c/"]))
    mounts = snap.prepare("ctr", "l2")
    mount_all(mounts, target)
    try:
        assert listing(target) == {"a": None, "a/kept": b"a/kept", "b": None, "b/new": b"b/new", "c": None}
        with open(os.path.join(target, "written"), "w") as f:
            f.write("rw")
    finally:
        unmount_all(target)
    upper = snap.upper_dir("ctr")
    assert open(os.path.join(upper, "written")).read() == "rw"
    assert snap.usage("ctr").size >= 2
    if snap.whiteout_mode() is Whiteouts.OVERLAY:
        # overlayfs' own forms in the committed layer directory, and back to OCI form when archived.
        l2 = os.path.join(snap.dir_of(snap.stat("l2").id), "fs")
        st = os.lstat(os.path.join(l2, "a", "gone"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert os.getxattr(os.path.join(l2, "b"), "trusted.overlay.opaque") == b"y"
        out = io.BytesIO()
        write_tree(l2, out, Whiteouts.OVERLAY)
        names = [e.path for e in TarReader(io.BytesIO(out.getvalue()))]
        assert names == ["a/", "a/.wh.gone", "b/", "b/.wh..wh..opq", "b/new", "c/"]


def test_views_are_read_only(snap, target):
    add_layer(snap, "l1", None, layer_tar({"f": b"1"}))
    add_layer(snap, "l2", "l1", layer_tar({"g": b"2"}))
    mount_all(snap.view("v", "l2"), target)
    try:
        assert listing(target) == {"f": b"1", "g": b"2"}
        with pytest.raises(OSError) as err:
            open(os.path.join(target, "new"), "w")
        assert err.value.errno == errno.EROFS
    finally:
        unmount_all(target)
    assert snap.stat("v").kind is Kind.VIEW


def test_lifecycle_rules(snap, target):
    add_layer(snap, "base", None, layer_tar({"f": b"1"}))
    snap.prepare("child", "base")
    with pytest.raises(Conflict, match="parent of 1"):
        snap.remove("base")
    with pytest.raises(Conflict, match="already exists"):
        snap.prepare("child", "base")
    with pytest.raises(InvalidArgument, match="not committed"):
        snap.prepare("grandchild", "child")
    with pytest.raises(NotFound):
        snap.prepare("x", "missing")
    mount_all(snap.mounts("child"), target)
    unmount_all(target)
    with pytest.raises(Conflict, match="still mounted"):
        _remove_with_a_mount_inside(snap, "child")
    snap.remove("child")
    snap.remove("base")
    assert list(snap.walk()) == []


def _remove_with_a_mount_inside(snap, key):
    # A rootfs with /proc still mounted in it must not be deleted: the guard refuses.
    inside = os.path.join(snap.upper_dir(key), "m")
    os.mkdir(inside)
    from dockyard.linux.mount import mount
    mount("tmpfs", inside, "tmpfs")
    try:
        snap.remove(key)
    finally:
        unmount_all(inside)


def test_commit_of_a_taken_name_conflicts(snap):
    add_layer(snap, "same", None, layer_tar({"f": b"1"}))
    snap.prepare("again", None)
    with pytest.raises(Conflict, match="already exists"):
        snap.commit("same", "again")
    snap.remove("again")


def test_leftovers_of_a_crash_are_cleaned(snap, tmp_path):
    add_layer(snap, "base", None, layer_tar({"f": b"1"}))
    os.mkdir(os.path.join(snap.snapshots_dir, "new-deadbeef"))
    os.mkdir(os.path.join(snap.snapshots_dir, "999"))
    reopened = type(snap)(snap.root)
    assert sorted(os.listdir(reopened.snapshots_dir)) == [str(snap.stat("base").id)]


def test_deep_stack_beyond_the_mount_option_limit(tmp_path, target):
    if not overlay_supported(str(tmp_path)):
        pytest.skip("overlayfs cannot be mounted here")
    # A long root path makes every absolute lowerdir long: 150 layers need far more than a page.
    root = tmp_path / ("x" * 60) / ("y" * 60) / "snapshots"
    snap = OverlaySnapshotter(str(root))
    parent = None
    for i in range(150):
        parent = add_layer(snap, f"layer{i:03d}", parent, layer_tar({f"f{i:03d}": str(i).encode()}))
    mounts = snap.prepare("ctr", parent)
    assert len(",".join(mounts[0].options)) > OPTIONS_LIMIT
    mount_all(mounts, target)
    try:
        files = listing(target)
        assert len(files) == 150 and files["f000"] == b"0" and files["f149"] == b"149"
        assert os.getcwd() != snap.snapshots_dir  # the chdir stayed in the helper thread
    finally:
        unmount_all(target)
    assert mounts_under(target) == []
