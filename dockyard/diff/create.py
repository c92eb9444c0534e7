"""Directory -> layer tar: the reverse of `apply`, for commits and exports.

`write_tree` archives a whole directory; for an overlayfs upper directory it
turns overlay's whiteouts back into OCI form (a 0/0 character device becomes
`.wh.<name>`, `trusted.overlay.opaque=y` becomes `<dir>/.wh..wh..opq`).
`write_diff` compares two plain trees (the native snapshotter's parent and
child) and archives what changed, with `.wh.` entries for what was deleted.

Output is deterministic (sorted names, times truncated to seconds, PAX
headers, numeric owners only) so equal trees give equal DiffIDs, as Docker's.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from .apply import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, Whiteouts

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WriteResult:
    diff_id: str    # sha256 of the tar stream
    size: int       # bytes of the tar stream


class TarWriter:
    """A minimal streaming tar writer (PAX headers) that hashes and counts what it writes."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> None:
        self.hash.update(data)
        self.out.write(data)
        self.size += len(data)

    def header(self, info: tarfile.TarInfo) -> None:
        info.uname = info.gname = ""
        self.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def add_bytes(self, name: str, data: bytes, mtime: int = 0, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), mtime, mode
        self.header(info)
        self.write(data)
        self.pad(len(data))

    def add_dir(self, name: str, mtime: int = 0, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name.rstrip("/") + "/")
        info.type, info.mtime, info.mode = tarfile.DIRTYPE, mtime, mode
        self.header(info)

    def add_symlink(self, name: str, target: str, mtime: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime, info.mode = tarfile.SYMTYPE, target, mtime, 0o777
        self.header(info)

    def add_stream(self, name: str, stream: BinaryIO, size: int, mtime: int = 0, mode: int = 0o644) -> None:
        """A member of exactly `size` bytes read from `stream`."""
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, mode
        self.header(info)
        self.copy(stream, size)

    def copy(self, stream: BinaryIO, size: int) -> None:
        left = size
        while left:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                raise OSError(f"source ended {left} bytes early while writing a tar member")
            self.write(chunk)
            left -= len(chunk)
        self.pad(size)

    def pad(self, size: int) -> None:
        if size % 512:
            self.write(bytes(512 - size % 512))

    def close(self) -> None:
        self.write(bytes(1024))


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


class _Writer:
    def __init__(self, out: BinaryIO):
        self.tar = TarWriter(out)
        self.links: dict[tuple[int, int], str] = {}

    def add(self, rel: str, path: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(rel + "/" if stat.S_ISDIR(st.st_mode) else rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        mode = st.st_mode
        data = False
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type = tarfile.LNKTYPE
                info.linkname = self.links[key]
            else:
                if st.st_nlink > 1:
                    self.links[key] = rel
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                data = True
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets are not archived (as in Docker)
        xattrs = _xattrs(path)
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
        self.tar.header(info)
        if data:
            self._copy(path, st.st_size)

    def add_whiteout(self, rel: str) -> None:
        self.tar.add_bytes(rel, b"")

    def _copy(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:
                    # The file shrank while being archived: pad with zeros to keep the tar valid.
                    chunk = bytes(min(_CHUNK, left))
                self.tar.write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        self.tar.pad(size)

    def close(self) -> WriteResult:
        self.tar.close()
        return WriteResult("sha256:" + self.tar.hash.hexdigest(), self.tar.size)


def _is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_tree(root: str, out: BinaryIO, whiteouts: Whiteouts = Whiteouts.OVERLAY) -> WriteResult:
    """Archive everything under `root` (not `root` itself) as a layer."""
    writer = _Writer(out)
    overlay = whiteouts is Whiteouts.OVERLAY

    def walk(rel_dir: str, dir_path: str) -> None:
        for name in sorted(os.listdir(dir_path)):
            path = f"{dir_path}/{name}"
            rel = f"{rel_dir}/{name}" if rel_dir else name
            st = os.lstat(path)
            if overlay and _is_overlay_whiteout(st):
                parent = f"{rel_dir}/" if rel_dir else ""
                writer.add_whiteout(parent + WHITEOUT_PREFIX + name)
                continue
            writer.add(rel, path, st)
            if stat.S_ISDIR(st.st_mode):
                if overlay and _is_opaque(path):
                    writer.add_whiteout(f"{rel}/{OPAQUE_MARKER}")
                walk(rel, path)

    walk("", root)
    return writer.close()


def _same(a: os.stat_result, b: os.stat_result, a_path: str, b_path: str) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return False
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return False
    if stat.S_ISDIR(a.st_mode):  # as Docker: a directory whose mtime moved counts as changed
        return a.st_mtime_ns == b.st_mtime_ns and _xattrs(a_path) == _xattrs(b_path)
    if a.st_mtime_ns != b.st_mtime_ns or a.st_size != b.st_size or a.st_rdev != b.st_rdev:
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(a_path) == os.readlink(b_path)
    return _xattrs(a_path) == _xattrs(b_path)


def write_diff(lower: str, upper: str, out: BinaryIO) -> WriteResult:
    """Archive the changes that turn tree `lower` into tree `upper`."""
    writer = _Writer(out)

    def walk(rel_dir: str) -> None:
        lo_dir = f"{lower}/{rel_dir}" if rel_dir else lower
        up_dir = f"{upper}/{rel_dir}" if rel_dir else upper
        lo_names = set(os.listdir(lo_dir)) if os.path.isdir(lo_dir) and not os.path.islink(lo_dir) else set()
        up_names = os.listdir(up_dir)
        entries = sorted(set(up_names) | lo_names)
        up_set = set(up_names)
        for name in entries:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            up_path = f"{up_dir}/{name}"
            if name not in up_set:
                parent = f"{rel_dir}/" if rel_dir else ""
                writer.add_whiteout(parent + WHITEOUT_PREFIX + name)
                continue
            up_st = os.lstat(up_path)
            lo_st = None
            if name in lo_names:
                lo_st = os.lstat(f"{lo_dir}/{name}")
            if stat.S_ISDIR(up_st.st_mode):
                lo_is_dir = lo_st is not None and stat.S_ISDIR(lo_st.st_mode)
                if not lo_is_dir or not _same(lo_st, up_st, f"{lo_dir}/{name}", up_path):
                    writer.add(rel, up_path, up_st)
                if lo_is_dir:
                    walk(rel)
                else:
                    _walk_all(writer, rel, up_path)
                continue
            if lo_st is None or not _same(lo_st, up_st, f"{lo_dir}/{name}", up_path) or (
                    stat.S_ISREG(up_st.st_mode) and not _same_content(f"{lo_dir}/{name}", up_path, lo_st, up_st)):
                writer.add(rel, up_path, up_st)

    walk("")
    return writer.close()


def _walk_all(writer: _Writer, rel_dir: str, dir_path: str) -> None:
    for name in sorted(os.listdir(dir_path)):
        path = f"{dir_path}/{name}"
        rel = f"{rel_dir}/{name}"
        st = os.lstat(path)
        writer.add(rel, path, st)
        if stat.S_ISDIR(st.st_mode):
            _walk_all(writer, rel, path)


def _same_content(a_path: str, b_path: str, a: os.stat_result, b: os.stat_result) -> bool:
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        return True
    # Same size and second: compare nanoseconds first, then bytes only when those agree.
    if a.st_mtime_ns != b.st_mtime_ns:
        return False
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True
