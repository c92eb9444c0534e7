"""Layers: the tar reader, applying layers (whiteouts, safety), and writing them back."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest
import zstandard

from dockyard.diff import (
    Compression,
    TarReader,
    Whiteouts,
    apply_layer,
    clean_path,
    detect,
    unpack_blob,
    write_diff,
    write_tree,
)
from dockyard.errors import InvalidArgument

ROOT = os.geteuid() == 0


# -- building test archives -------------------------------------------------------------------

def make_tar(entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink|fifo, payload bytes or target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for item in entries:
            name, kind, payload = item[:3]
            extra = item[3] if len(item) > 3 else {}
            info = tarfile.TarInfo(name)
            info.mtime = extra.get("mtime", 1_600_000_000)
            info.mode = extra.get("mode", 0o755 if kind == "dir" else 0o644)
            info.uid, info.gid = extra.get("uid", 0), extra.get("gid", 0)
            if "pax" in extra:
                info.pax_headers = extra["pax"]
            data = None
            if kind == "file":
                info.size = len(payload)
                data = io.BytesIO(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, data)
    return buf.getvalue()


def apply_bytes(data: bytes, root, whiteouts=Whiteouts.NATIVE):
    return apply_layer(TarReader(io.BytesIO(data)), str(root), whiteouts)


def tree(root) -> dict:
    """path -> (kind, content or target) for everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", open(path, "rb").read())
            else:
                out[rel] = ("other", st.st_mode)
    return out


# -- the reader ----------------------------------------------------------------------------------

def test_reader_pax_long_names_xattrs_and_times():
    long = "d/" + "n" * 150 + "/file"
    data = make_tar([("d", "dir", None), (long, "file", b"x" * 700,
                     {"pax": {"SCHILY.xattr.user.k": "v", "mtime": "1600000000.5"}})])
    reader = TarReader(io.BytesIO(data))
    entries = []
    for e in reader:
        entries.append((e.path, e.type, e.size, e.xattrs, e.mtime_ns, reader.read() if e.is_file else b""))
    assert entries[1][0] == long and entries[1][2] == 700
    assert entries[1][3] == {"user.k": b"v"}
    assert entries[1][4] == 1_600_000_000_500_000_000
    assert entries[1][5] == b"x" * 700


def test_reader_gnu_long_names_and_big_ids():
    data = make_tar([("a/" + "b" * 200, "file", b"hi", {"uid": 1 << 30, "gid": 3}),
                     ("l", "symlink", "t" * 150)], fmt=tarfile.GNU_FORMAT)
    entries = [(e.path, e.uid, e.gid, e.linkname) for e in TarReader(io.BytesIO(data))]
    assert entries[0] == ("a/" + "b" * 200, 1 << 30, 3, "")
    assert entries[1][3] == "t" * 150


def test_reader_hashes_everything_including_the_trailing_padding():
    data = make_tar([("f", "file", b"content")])
    h = hashlib.sha256()
    reader = TarReader(io.BytesIO(data), hasher=h)
    list(reader)
    reader.drain()
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert reader.offset == len(data)


def test_reader_refuses_a_corrupt_header():
    data = bytearray(make_tar([("f", "file", b"content")]))
    data[0:1] = b"g"  # the name changes, the checksum does not
    with pytest.raises(InvalidArgument, match="checksum"):
        list(TarReader(io.BytesIO(bytes(data))))


@pytest.mark.parametrize("cut", [100, 512 + 3, 1000])
def test_reader_refuses_a_truncated_archive(cut):
    data = make_tar([("f", "file", os.urandom(2000))])
    with pytest.raises(InvalidArgument, match="truncated"):
        reader = TarReader(io.BytesIO(data[:cut]))
        for _entry in reader:
            reader.read()


def test_reader_refuses_sparse_files():
    info = tarfile.TarInfo("s")
    info.type = tarfile.GNUTYPE_SPARSE
    buf = io.BytesIO(info.tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    with pytest.raises(InvalidArgument, match="sparse"):
        list(TarReader(buf))


def test_reader_copies_large_members_file_to_file(tmp_path):
    payload = os.urandom(3 << 20)
    path = tmp_path / "l.tar"
    path.write_bytes(make_tar([("big", "file", payload), ("small", "file", b"s")]))
    reader = TarReader.open_file(str(path))
    out = {}
    for e in reader:
        fd = os.open(tmp_path / e.path, os.O_WRONLY | os.O_CREAT)
        reader.write_to(fd)
        os.close(fd)
        out[e.path] = (tmp_path / e.path).read_bytes()
    reader.close()
    assert out == {"big": payload, "small": b"s"}


# -- applying -------------------------------------------------------------------------------------

def test_apply_preserves_content_modes_times_and_links(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    data = make_tar([
        ("etc", "dir", None, {"mode": 0o750, "mtime": 1_500_000_000}),
        ("etc/conf", "file", b"k=v\n", {"mode": 0o4755, "mtime": 1_400_000_000}),
        ("etc/link", "symlink", "conf"),
        ("etc/hard", "hardlink", "etc/conf"),
        ("run/pipe", "fifo", None, {"mode": 0o600}),
        ("./opt/", "dir", None),
    ])
    result = apply_bytes(data, root)
    assert result.size == 4 and result.entries == 6
    st = os.lstat(root / "etc/conf")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 1_400_000_000
    assert os.lstat(root / "etc").st_mtime == 1_500_000_000  # set after its children were made
    assert stat.S_IMODE(os.lstat(root / "etc").st_mode) == 0o750
    assert os.readlink(root / "etc/link") == "conf"
    assert os.lstat(root / "etc/hard").st_ino == st.st_ino
    assert stat.S_ISFIFO(os.lstat(root / "run/pipe").st_mode)
    assert (root / "opt").is_dir()


@pytest.mark.skipif(not ROOT, reason="ownership needs root")
def test_apply_preserves_ownership(tmp_path):
    data = make_tar([("f", "file", b"x", {"uid": 1234, "gid": 5678}), ("d", "dir", None, {"uid": 7, "gid": 8})])
    apply_bytes(data, tmp_path)
    assert (os.lstat(tmp_path / "f").st_uid, os.lstat(tmp_path / "f").st_gid) == (1234, 5678)
    assert (os.lstat(tmp_path / "d").st_uid, os.lstat(tmp_path / "d").st_gid) == (7, 8)


def test_native_whiteouts_delete_and_opaque_directories_hide_lower_files(tmp_path):
    apply_bytes(make_tar([("a/old", "file", b"1"), ("a/keep", "file", b"2"), ("b/x", "file", b"3"),
                          ("c", "file", b"4")]), tmp_path)
    apply_bytes(make_tar([("b/.wh..wh..opq", "file", b""), ("b/new", "file", b"5"),
                          ("a/.wh.old", "file", b""), (".wh.c", "file", b"")]), tmp_path)
    assert tree(tmp_path) == {"a": ("dir", None), "a/keep": ("file", b"2"), "b": ("dir", None),
                              "b/new": ("file", b"5")}


def test_opaque_marker_after_siblings_keeps_what_the_same_layer_wrote(tmp_path):
    apply_bytes(make_tar([("d/lower", "file", b"1"), ("d/sub/lower", "file", b"1")]), tmp_path)
    apply_bytes(make_tar([("d/sub/mine", "file", b"2"), ("d/.wh..wh..opq", "file", b"")]), tmp_path)
    assert tree(tmp_path) == {"d": ("dir", None), "d/sub": ("dir", None), "d/sub/mine": ("file", b"2")}


def test_entries_replace_what_is_there(tmp_path):
    apply_bytes(make_tar([("x", "dir", None), ("x/inner", "file", b"1"), ("y", "file", b"old"),
                          ("z", "symlink", "/etc")]), tmp_path)
    apply_bytes(make_tar([("x", "file", b"now a file"), ("y", "dir", None), ("z", "file", b"not a link")]),
                tmp_path)
    assert tree(tmp_path) == {"x": ("file", b"now a file"), "y": ("dir", None), "z": ("file", b"not a link")}


@pytest.mark.parametrize("entries, message", [
    ([("../evil", "file", b"x")], "'..' would escape"),
    ([("a/../../evil", "file", b"x")], "'..' would escape"),
    ([("/etc/evil", "file", b"x")], "absolute"),
    ([("link", "symlink", "/"), ("link/evil", "file", b"x")], "symlink"),
    ([("link", "symlink", "../.."), ("link/evil", "file", b"x")], "symlink"),
    ([("d", "dir", None), ("d/l", "symlink", "/tmp"), ("d/l/sub/evil", "file", b"x")], "symlink"),
    ([("hard", "hardlink", "../outside")], "'..' would escape"),
    ([("hard", "hardlink", "/etc/passwd")], "absolute"),
    ([("link", "symlink", "/etc"), ("hard", "hardlink", "link/passwd")], "symlink"),
    ([("hard", "hardlink", "missing")], "not in the layer"),
    ([("d/.wh...", "file", b"")], "names no file"),
])
def test_escaping_entries_are_refused_and_nothing_outside_changes(tmp_path, entries, message):
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    root = tmp_path / "a" / "b" / "root"
    root.mkdir(parents=True)
    with pytest.raises(InvalidArgument, match=message):
        apply_bytes(make_tar(entries), root)
    assert outside.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["a", "outside"]
    assert not os.path.exists("/evil") and not os.path.exists("/tmp/sub/evil")


def test_clean_path():
    assert clean_path("./a/b/") == "a/b"
    assert clean_path("a//b/./c") == "a/b/c"
    assert clean_path("./") == ""
    assert clean_path(".hidden/x") == ".hidden/x"
    with pytest.raises(InvalidArgument):
        clean_path("a/..")


# -- compression and DiffIDs ---------------------------------------------------------------------

@pytest.mark.parametrize("compress, kind", [
    (lambda b: b, Compression.NONE),
    (gzip.compress, Compression.GZIP),
    (lambda b: zstandard.ZstdCompressor().compress(b), Compression.ZSTD),
])
def test_unpack_blob_computes_the_diff_id_of_the_uncompressed_tar(tmp_path, compress, kind):
    raw = make_tar([("f", "file", os.urandom(200_000)), ("d/g", "file", b"g")])
    blob = compress(raw)
    assert detect(blob[:6]) is kind
    path = tmp_path / "blob"
    path.write_bytes(blob)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    result = unpack_blob(str(path), str(out), Whiteouts.NATIVE, expected_diff_id=diff_id)
    assert result.diff_id == diff_id and result.tar_size == len(raw)
    assert (out / "d/g").read_bytes() == b"g"


def test_unpack_blob_refuses_a_wrong_diff_id(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(gzip.compress(make_tar([("f", "file", b"x")])))
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgument, match="DiffID mismatch"):
        unpack_blob(str(path), str(tmp_path / "out"), Whiteouts.NATIVE, expected_diff_id="sha256:" + "0" * 64)


def test_unpack_blob_refuses_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(make_tar([("f", "file", os.urandom(100_000))])))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "blob"
    path.write_bytes(bytes(data))
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgument):
        unpack_blob(str(path), str(tmp_path / "out"), Whiteouts.NATIVE)


def test_unsupported_compression_is_named():
    with pytest.raises(InvalidArgument, match="xz"):
        detect(b"\xfd7zXZ\x00")


# -- writing layers ---------------------------------------------------------------------------

def test_write_tree_round_trips_and_is_deterministic(tmp_path):
    src = tmp_path / "src"
    apply_bytes(make_tar([("a/f", "file", b"1" * 3000, {"mode": 0o640}), ("a/l", "symlink", "f"),
                          ("a/h", "hardlink", "a/f"), ("e", "dir", None)]), src.mkdir() or src)
    out1, out2 = io.BytesIO(), io.BytesIO()
    r1 = write_tree(str(src), out1, Whiteouts.NATIVE)
    r2 = write_tree(str(src), out2, Whiteouts.NATIVE)
    assert r1 == r2 and r1.diff_id == "sha256:" + hashlib.sha256(out1.getvalue()).hexdigest()
    dst = tmp_path / "dst"
    dst.mkdir()
    apply_bytes(out1.getvalue(), dst)
    assert tree(dst) == tree(src)
    assert os.lstat(dst / "a/h").st_ino == os.lstat(dst / "a/f").st_ino


def test_write_diff_records_changes_and_deletions(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    base = make_tar([("keep", "file", b"same"), ("gone", "file", b"x"), ("dir/old", "file", b"o"),
                     ("change", "file", b"v1")])
    lower.mkdir()
    upper.mkdir()
    apply_bytes(base, lower)
    apply_bytes(base, upper)
    apply_bytes(make_tar([(".wh.gone", "file", b""), ("change", "file", b"v2", {"mtime": 1_700_000_000}),
                          ("dir/new", "file", b"n")]), upper)
    out = io.BytesIO()
    write_diff(str(lower), str(upper), out)
    names = [e.path for e in TarReader(io.BytesIO(out.getvalue()))]
    assert names == ["change", "dir/", "dir/new", ".wh.gone"]
    # Applying the diff to the lower tree gives the upper tree.
    apply_bytes(out.getvalue(), lower)
    assert tree(lower) == tree(upper)


# -- files created by the worker threads ------------------------------------------------------

def test_parallel_creation_keeps_the_archive_order(tmp_path):
    entries = [("a", "file", b"v1"), ("a", "file", b"v2"), ("b", "file", b"file"), ("b", "dir", None),
               ("b/c", "file", b"in dir"), ("h", "hardlink", "a"), ("d", "file", b"gone soon"),
               (".wh.d", "file", b""), ("e", "file", b"x"), ("e", "symlink", "a")]
    entries += [(f"many/f{i}", "file", bytes([i % 256]) * i) for i in range(300)]
    apply_bytes(make_tar(entries), tmp_path)
    got = tree(tmp_path)
    assert got["a"] == ("file", b"v2") and got["b"] == ("dir", None) and got["b/c"] == ("file", b"in dir")
    assert got["h"] == ("file", b"v2") and "d" not in got and got["e"] == ("symlink", "a")
    assert os.lstat(tmp_path / "h").st_ino == os.lstat(tmp_path / "a").st_ino
    assert all(got[f"many/f{i}"] == ("file", bytes([i % 256]) * i) for i in range(300))


def test_unpacking_from_a_file_matches_gnu_tar(tmp_path):
    import random
    import subprocess
    rng = random.Random(7)
    entries = [(f"d{i % 17}/f{i}", "file", rng.randbytes(rng.choice([0, 10, 4000, 70_000, 300_000])),
                {"mode": rng.choice([0o644, 0o755, 0o600, 0o4755]), "mtime": 1_500_000_000 + i})
               for i in range(400)]
    entries.append(("d3/link", "symlink", "f3"))
    path = tmp_path / "layer.tar"
    path.write_bytes(make_tar(entries))
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    reader = TarReader.open_file(str(path))
    try:
        result = apply_layer(reader, str(ours), Whiteouts.OVERLAY)
    finally:
        reader.close()
    subprocess.run(["tar", "-xpf", str(path), "-C", str(theirs)], check=True)
    from tests.support.images import fs_tree
    assert fs_tree(str(ours)) == fs_tree(str(theirs))
    assert result.size == sum(len(e[2]) for e in entries if e[1] == "file")
    for name in ("d1/f1", "d5/f5"):
        assert os.lstat(ours / name).st_mtime == os.lstat(theirs / name).st_mtime
