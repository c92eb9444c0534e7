"""Apply a layer (a tar stream) to a directory, safely and fast.

Safety rules (each violation is an `InvalidArgument` naming the entry; the
caller unpacks into a fresh directory and discards it on error, so nothing is
left half-written):
  * no absolute member names and no `..` components;
  * nothing is ever written through a symlink: every parent of an entry must be
    a real directory inside the root (symlinks already in the tree are
    replaced, never followed); files are created with O_NOFOLLOW|O_EXCL;
  * a hard link must point at a path inside the root that exists already
    (and is not reached through a symlink);
  * `trusted.overlay.*` xattrs from the archive are dropped: they would let a
    layer steer overlayfs (redirects, opaque markers) on its own.

Whiteouts (OCI `.wh.<name>` and `.wh..wh..opq`) become, per `Whiteouts`:
  OVERLAY  a 0/0 character device named `<name>`, and the xattr
           `trusted.overlay.opaque=y` on the directory (overlayfs' own form);
  NATIVE   the deletion itself, applied to the tree below (which holds the
           parent snapshot's files): remove `<name>`, or empty the directory of
           everything not written by this layer.

Ownership (numeric ids, when running as root), modes including set-id bits,
device numbers, xattrs and nanosecond times are preserved.  Directory times
are set last, deepest first, since creating children changes them.
"""

from __future__ import annotations

import enum
import os
import shutil
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import InvalidArgument
from .tarstream import (
    BLOCKDEV,
    CHAR,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    Entry,
    TarReader,
    copy_range,
    write_all,
)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# Regular files of a layer unpacked into an empty directory are created by a few
# threads: creating files is mostly waiting on the filesystem, so they overlap.
# The parser stays in one thread and keeps every ordering that matters (see
# `_Applier._wait_for`).  Small files travel as bytes, large ones as an offset
# into the layer file, copied in the kernel.
FILE_WORKERS = 4
_BATCH = 24
_INLINE = 1 << 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _file_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FILE_WORKERS, thread_name_prefix="dockyard-files")
        return _pool


def _write_files(batch: list, src_fd: int | None) -> None:
    for path, mode, owner, chmod, xattrs, times, data, offset, size in batch:
        fd = os.open(path, _OPEN_NEW, mode & 0o777)
        try:
            if data:
                write_all(fd, data)
            elif size:
                copy_range(src_fd, fd, offset, size)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            if chmod:
                os.fchmod(fd, mode)
            if xattrs:
                _set_xattrs(fd, xattrs, True)
            os.utime(fd, ns=times)
        finally:
            os.close(fd)


def _set_xattrs(target, xattrs: dict, follow: bool) -> None:
    for key, value in xattrs.items():
        if key.startswith(_OVERLAY_XATTR_PREFIX):
            continue
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except OSError as err:
            # As Docker does: a filesystem without xattr support, or user.* on a symlink.
            if err.errno not in (95, 1):  # EOPNOTSUPP, EPERM
                raise


def _read_umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


_UMASK = _read_umask()


class Whiteouts(enum.Enum):
    OVERLAY = "overlay"
    NATIVE = "native"


@dataclass(frozen=True)
class ApplyResult:
    size: int       # bytes of regular-file content written
    entries: int    # archive members processed


def clean_path(name: str, what: str = "entry") -> str:
    """The member name relative to the root, or InvalidArgument if it would escape."""
    if name.startswith("./"):
        name = name[2:]
    if "/." not in name and "//" not in name and name[:1] not in ("/", "."):
        return name[:-1] if name.endswith("/") else name
    if name.startswith("/"):
        raise InvalidArgument(f"refusing {what} {name!r}: absolute paths are not allowed in a layer")
    parts = []
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            raise InvalidArgument(f"refusing {what} {name!r}: '..' would escape the root")
        parts.append(part)
    return "/".join(parts)


class _Applier:
    def __init__(self, root: str, whiteouts: Whiteouts, same_owner: bool, workers: bool = True,
                 source_fd: int | None = None):
        self.root = os.path.abspath(root)
        st = os.lstat(self.root)
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"cannot apply a layer to {root}: not a directory")
        # Only into an empty directory: then a file can exist already only if this layer made it,
        # which `created` tells without asking the filesystem.
        with os.scandir(self.root) as it:
            empty = next(it, None) is None
        self.pool = _file_pool() if workers and empty and FILE_WORKERS > 1 else None
        self.batch: list = []
        self.futures: list[Future] = []
        self.pending: set[str] = set()      # files handed to the pool, not known to be written yet
        self.created: set[str] = set()
        self.source_fd = source_fd
        self.whiteouts = whiteouts
        self.same_owner = same_owner
        self.euid = os.geteuid()
        self.egid = os.getegid()
        # Directories known to be real (not symlinks) in this tree -> their setgid bit.
        self.dirs: dict[str, bool] = {"": bool(st.st_mode & stat.S_ISGID)}
        self.dir_times: list[tuple[str, int, int]] = []
        self.native = whiteouts is Whiteouts.NATIVE
        self.written: set[str] = set()
        self.ancestors: set[str] = set()
        self.size = 0
        self.entries = 0

    # -- paths ------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

    def _parent(self, rel_parent: str, entry: str, create: bool = True) -> str:
        """Make sure `rel_parent` is a real directory chain inside the root; return its path."""
        if rel_parent in self.dirs:
            return self._abs(rel_parent)
        prefix = ""
        for part in rel_parent.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self.dirs:
                continue
            if prefix in self.pending:
                self._wait_for_pool()
            path = self._abs(prefix)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise InvalidArgument(f"refusing {entry!r}: {prefix!r} does not exist in the layer") from None
                os.mkdir(path, 0o755)
                os.chmod(path, 0o755)
                self.dirs[prefix] = False
                continue
            if stat.S_ISLNK(st.st_mode):
                raise InvalidArgument(
                    f"refusing {entry!r}: its parent {prefix!r} is a symlink; writing through it could "
                    f"escape the root")
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"refusing {entry!r}: its parent {prefix!r} is not a directory")
            self.dirs[prefix] = bool(st.st_mode & stat.S_ISGID)
        return self._abs(rel_parent)

    def _remove(self, rel: str, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            prefix = rel + "/"
            for known in [d for d in self.dirs if d == rel or d.startswith(prefix)]:
                del self.dirs[known]
        else:
            os.unlink(path)

    def _mark(self, rel: str) -> None:
        if self.native:
            self.written.add(rel)
            parent = rel.rpartition("/")[0]
            while parent and parent not in self.ancestors:
                self.ancestors.add(parent)
                parent = parent.rpartition("/")[0]

    # -- metadata -------------------------------------------------------------------

    def _needs_chown(self, e: Entry, parent_rel: str) -> bool:
        if not self.same_owner:
            return False
        return e.uid != self.euid or e.gid != self.egid or self.dirs.get(parent_rel, True)

    def _xattrs(self, target, e: Entry, follow: bool) -> None:
        _set_xattrs(target, e.xattrs, follow)

    # -- the file pool --------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.batch:
            self.futures.append(self.pool.submit(_write_files, self.batch, self.source_fd))
            self.batch = []

    def _wait_for_pool(self) -> None:
        """Every file handed to the pool exists now (or its error is raised)."""
        if self.pool is None:
            return
        self._flush()
        futures, self.futures = self.futures, []
        self.pending.clear()
        first = None
        for future in futures:
            try:
                future.result()
            except BaseException as err:  # wait for all before raising the first
                first = first or err
        if first is not None:
            raise first

    def _file_async(self, rel: str, path: str, parent_rel: str, e: Entry, reader: TarReader) -> None:
        data, offset = reader.detach_data(_INLINE)
        mode = e.mode
        owner = (e.uid, e.gid) if self._needs_chown(e, parent_rel) else None
        chmod = owner is not None or bool(mode & 0o7000 or mode & _UMASK)
        times = (e.atime_ns if e.atime_ns is not None else e.mtime_ns, e.mtime_ns)
        self.batch.append((path, mode, owner, chmod, e.xattrs, times, data, offset, e.size))
        self.size += e.size
        self.pending.add(rel)
        self.created.add(rel)
        if len(self.batch) >= _BATCH:
            self._flush()

    # -- one entry ------------------------------------------------------------------

    def entry(self, e: Entry, reader: TarReader) -> None:
        self.entries += 1
        rel = clean_path(e.path)
        if not rel:
            if e.type != DIRECTORY:
                raise InvalidArgument(f"refusing {e.path!r}: the root of a layer must be a directory")
            self._dir_meta(self.root, "", e)
            return
        parent_rel, _, base = rel.rpartition("/")
        pdir = self._parent(parent_rel, e.path)
        kind = e.type
        if self.pool is not None:
            if kind == REGULAR and rel not in self.created and rel not in self.dirs \
                    and not base.startswith(WHITEOUT_PREFIX) and (self.source_fd is not None or e.size <= _INLINE):
                self._file_async(rel, pdir + "/" + base, parent_rel, e, reader)
                self._mark(rel)
                return
            whited = f"{parent_rel}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/")
            if rel in self.pending or kind == HARDLINK or base == OPAQUE_MARKER or whited in self.pending:
                self._wait_for_pool()
            self.created.add(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent_rel, pdir, base, e)
            return
        path = pdir + "/" + base
        if kind == REGULAR:
            self._file(rel, path, parent_rel, e, reader)
        elif kind == DIRECTORY:
            self._directory(rel, path, e)
        elif kind == SYMLINK:
            self._retry(rel, path, lambda: os.symlink(e.linkname, path))
            self._node_meta(path, parent_rel, e)
        elif kind == HARDLINK:
            self._hardlink(rel, path, e)
        elif kind in (CHAR, BLOCKDEV, FIFO):
            fmt = {CHAR: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}[kind]
            dev = os.makedev(e.devmajor, e.devminor)
            self._retry(rel, path, lambda: os.mknod(path, fmt | 0o600, dev))
            self._node_meta(path, parent_rel, e, chmod=True)
        self._mark(rel)

    def _retry(self, rel: str, path: str, create) -> None:
        try:
            create()
        except FileExistsError:
            self._remove(rel, path)
            create()

    def _file(self, rel: str, path: str, parent_rel: str, e: Entry, reader: TarReader) -> None:
        mode = e.mode
        try:
            fd = os.open(path, _OPEN_NEW, mode & 0o777)
        except FileExistsError:
            self._remove(rel, path)
            fd = os.open(path, _OPEN_NEW, mode & 0o777)
        try:
            if e.size:
                self.size += reader.write_to(fd)
            chowned = self._needs_chown(e, parent_rel)
            if chowned:
                os.fchown(fd, e.uid, e.gid)
            if chowned or mode & 0o7000 or mode & _UMASK:
                os.fchmod(fd, mode)
            if e.xattrs:
                self._xattrs(fd, e, True)
            mtime = e.mtime_ns
            os.utime(fd, ns=(e.atime_ns if e.atime_ns is not None else mtime, mtime))
        finally:
            os.close(fd)

    def _directory(self, rel: str, path: str, e: Entry) -> None:
        if rel not in self.dirs:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(rel, path)
                    os.mkdir(path, 0o700)
        self._dir_meta(path, rel, e)

    def _dir_meta(self, path: str, rel: str, e: Entry) -> None:
        if self.same_owner:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        os.chmod(path, e.mode)
        if e.xattrs:
            self._xattrs(path, e, False)
        self.dirs[rel] = bool(e.mode & stat.S_ISGID)
        mtime = e.mtime_ns
        self.dir_times.append((path, e.atime_ns if e.atime_ns is not None else mtime, mtime))

    def _node_meta(self, path: str, parent_rel: str, e: Entry, chmod: bool = False) -> None:
        if self._needs_chown(e, parent_rel):
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if chmod:
            os.chmod(path, e.mode)
        if e.xattrs:
            self._xattrs(path, e, False)
        mtime = e.mtime_ns
        os.utime(path, ns=(e.atime_ns if e.atime_ns is not None else mtime, mtime), follow_symlinks=False)

    def _hardlink(self, rel: str, path: str, e: Entry) -> None:
        target_rel = clean_path(e.linkname, "hard link target")
        if not target_rel:
            raise InvalidArgument(f"refusing hard link {e.path!r}: it points at the root")
        t_parent, _, t_base = target_rel.rpartition("/")
        target = self._parent(t_parent, e.path, create=False) + "/" + t_base
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise InvalidArgument(
                f"refusing hard link {e.path!r}: its target {e.linkname!r} is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"refusing hard link {e.path!r}: its target {e.linkname!r} is a directory")
        if target == path:
            return
        self._retry(rel, path, lambda: os.link(target, path, follow_symlinks=False))

    # -- whiteouts ------------------------------------------------------------------

    def _whiteout(self, parent_rel: str, pdir: str, base: str, e: Entry) -> None:
        if base == OPAQUE_MARKER:
            if self.native:
                self._make_opaque(parent_rel, pdir)
            else:
                os.setxattr(pdir, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the image
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"refusing whiteout {e.path!r}: it names no file")
        rel = f"{parent_rel}/{name}" if parent_rel else name
        path = pdir + "/" + name
        if self.native:
            self._remove(rel, path)
            return
        self._retry(rel, path, lambda: os.mknod(path, stat.S_IFCHR, os.makedev(0, 0)))
        if self.same_owner:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)

    def _make_opaque(self, rel: str, path: str) -> None:
        """Remove what lower layers put in `rel`, keeping what this layer wrote."""
        for entry in os.scandir(path):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if child in self.written or child in self.ancestors:
                if entry.is_dir(follow_symlinks=False):
                    self._make_opaque(child, entry.path)
                continue
            self._remove(child, entry.path)

    def finish(self) -> ApplyResult:
        self._wait_for_pool()
        for path, atime, mtime in reversed(self.dir_times):
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)
        return ApplyResult(self.size, self.entries)


def apply_layer(reader: TarReader, root: str, whiteouts: Whiteouts = Whiteouts.NATIVE,
                same_owner: bool | None = None) -> ApplyResult:
    """Unpack every member of `reader` into `root` (rules in the module docstring)."""
    applier = _Applier(root, whiteouts, os.geteuid() == 0 if same_owner is None else same_owner,
                       source_fd=reader.source_fd)
    try:
        for entry in reader:
            applier.entry(entry, reader)
    except BaseException:
        try:
            applier._wait_for_pool()  # no writer may still run when the caller discards the tree
        except BaseException:
            pass
        raise
    return applier.finish()
