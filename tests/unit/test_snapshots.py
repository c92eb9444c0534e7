"""Snapshotter bookkeeping without mounting anything: keys, parents, commits, removal, crash leftovers,
and how mount options are shortened for deep stacks."""

from __future__ import annotations

import io
import os

import pytest

from dockyard.diff import TarReader, apply_layer
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.snapshots import Kind, Mount, NativeSnapshotter, chain_ids
from dockyard.snapshots.base import tree_usage
from dockyard.snapshots.mount import OPTIONS_LIMIT, shorten
from tests.support.images import layer_tar


@pytest.fixture
def snap(tmp_path):
    return NativeSnapshotter(str(tmp_path / "native"))


def commit_layer(snap, name, parent, files):
    snap.prepare("tmp-" + name, parent)
    apply_layer(TarReader(io.BytesIO(layer_tar(files))), snap.upper_dir("tmp-" + name), snap.whiteout_mode())
    snap.commit(name, "tmp-" + name)


def test_native_snapshots_are_full_copies(snap):
    commit_layer(snap, "l1", None, {"a": b"1", "d": None, "d/x": b"x"})
    commit_layer(snap, "l2", "l1", {"b": b"2", "d/.wh.x": b""})
    mounts = snap.prepare("ctr", "l2")
    assert mounts == [Mount("bind", snap.dir_of(snap.stat("ctr").id), ("rbind", "rw"))]
    top = snap.upper_dir("ctr")
    assert sorted(os.listdir(top)) == ["a", "b", "d"] and os.listdir(os.path.join(top, "d")) == []
    # The parents are untouched by what the child does.
    assert os.path.exists(os.path.join(snap.content_dir("l1"), "d", "x"))
    info = snap.stat("l2")
    assert (info.kind, info.parent) == (Kind.COMMITTED, "l1")
    assert [i.key for i in snap.walk()] == ["l1", "l2", "ctr"]
    assert snap.children("l1") == ["l2"]
    assert snap.usage("l1").size == 2
    assert snap.view("v", "l1")[0].options == ("rbind", "ro")


def test_rules(snap):
    commit_layer(snap, "base", None, {"f": b"1"})
    with pytest.raises(InvalidArgument, match="must not be empty"):
        snap.prepare("", "base")
    with pytest.raises(NotFound, match="does not exist"):
        snap.stat("nope")
    with pytest.raises(InvalidArgument, match="not active"):
        snap.commit("again", "base")
    with pytest.raises(InvalidArgument, match="committed"):
        snap.mounts("base")
    snap.prepare("c", "base")
    with pytest.raises(Conflict, match="parent of 1"):
        snap.remove("base")
    with pytest.raises(InvalidArgument, match="not committed"):
        snap.view("v", "c")
    snap.remove("c")
    snap.remove("base")
    assert list(snap.walk()) == []
    assert os.listdir(snap.snapshots_dir) == [] and os.listdir(snap.trash_dir) == []


def test_reopening_removes_crash_leftovers(snap):
    commit_layer(snap, "base", None, {"f": b"1"})
    kept = snap.stat("base").id
    os.mkdir(os.path.join(snap.snapshots_dir, "new-0123"))          # a creation that never got its row
    os.mkdir(os.path.join(snap.trash_dir, "half-removed"))           # a removal that never finished
    with snap.db.transaction() as db:                                 # a row whose directory is gone
        db.execute("INSERT INTO snapshots (key, parent, kind, created) VALUES ('ghost', NULL, 'active', 0)")
    again = NativeSnapshotter(snap.root)
    assert [i.key for i in again.walk()] == ["base"]
    assert os.listdir(again.snapshots_dir) == [str(kept)] and os.listdir(again.trash_dir) == []


def test_tree_usage_counts_hard_links_once(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c").write_bytes(b"y" * 10)
    usage = tree_usage(str(tmp_path))
    assert usage.size == 110 and usage.inodes == 4


def test_chain_ids_name_committed_layers():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    ids = chain_ids([a, b])
    assert ids[0] == a and ids[1] != b and ids[1].startswith("sha256:")


def test_deep_overlay_options_are_made_relative_to_the_snapshots_directory():
    root = "/var/lib/dockyard/snapshots/overlay/snapshots"
    lowers = ":".join(f"{root}/{i}/fs" for i in range(400, 0, -1))
    data = ["index=off", f"lowerdir={lowers}", f"upperdir={root}/401/fs", f"workdir={root}/401/work"]
    assert len(",".join(data)) > OPTIONS_LIMIT
    directory, short = shorten(data)
    assert directory == root
    assert short[1].startswith("lowerdir=400/fs:399/fs:") and short[2] == "upperdir=401/fs"
    assert len(",".join(short)) <= OPTIONS_LIMIT
    # Relative paths or no paths at all: nothing to shorten.
    assert shorten(["lowerdir=a:b"]) == (None, ["lowerdir=a:b"])
