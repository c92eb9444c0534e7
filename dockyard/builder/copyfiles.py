"""COPY and ADD: files written into an image's root filesystem, as dockerd's legacy builder writes them.

Sources are host paths already resolved inside the context (or inside an
earlier stage's mounted image); destinations are resolved inside the image's
root with its symlinks clamped to that root (`within_root`), so nothing is
ever written outside it.  Files keep their mode and modification time and
belong to 0:0 unless `--chown` says otherwise (names looked up in the image's
/etc/passwd and /etc/group); `--chmod` replaces the mode.  ADD unpacks a local
tar archive (plain or compressed) into the destination directory with the
archive's owners.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile

from ..errors import InvalidArgument
from .context import within_root


def _lookup(path: str, name: str, field_index: int = 2) -> int | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) > field_index and parts[0] == name:
                    return int(parts[field_index])
    except (OSError, ValueError):
        return None
    return None


def _numeric_id(root: str, db: str, name: str, what: str) -> int:
    """A user or group name (or number) as a number, names looked up in the image's /etc files."""
    if name.isdigit():
        return int(name)
    found = _lookup(within_root(root, f"/etc/{db}"), name)
    if found is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: can't find {what[0]}id for "
                          f"{what} {name}: no such {what}: {name}")
    return found


def owner(root: str, chown: str | None) -> tuple[int, int]:
    """--chown's user[:group]; without a group, the user's primary group (or the uid itself)."""
    if not chown:
        return 0, 0
    user, sep, group = chown.partition(":")
    uid = _numeric_id(root, "passwd", user, "user")
    if sep:
        return uid, _numeric_id(root, "group", group, "group")
    if user.isdigit():
        return uid, uid
    return uid, _lookup(within_root(root, "/etc/passwd"), user, 3) or 0


def _is_archive(path: str) -> bool:
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _place(root: str, rel: str) -> str:
    """A destination inside the image root: parents made, symlinks clamped to the root."""
    target = within_root(root, rel)
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    return target


def _set(target: str, st: os.stat_result, uid: int, gid: int, mode: int | None) -> None:
    os.lchown(target, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, mode if mode is not None else stat.S_IMODE(st.st_mode))
    try:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    except OSError:
        pass


def copy_into(root: str, src: str, dest: str, uid: int, gid: int, mode: int | None, add: bool) -> None:
    st = os.lstat(src)
    if add and _is_archive(src):
        directory = dest if dest.endswith("/") else dest
        base = _place(root, directory.rstrip("/") + "/.")
        os.makedirs(base, 0o755, exist_ok=True)
        _extract_archive(root, src, directory.rstrip("/") or "/")
        return
    if stat.S_ISDIR(st.st_mode):
        top = _place(root, dest.rstrip("/") + "/.")
        os.makedirs(top, 0o755, exist_ok=True)
        _set(top, st, uid, gid, mode)
        for entry in sorted(os.listdir(src)):
            copy_into(root, os.path.join(src, entry), posixpath.join(dest.rstrip("/") or "/", entry), uid, gid,
                       mode, False)
        return
    if dest.endswith("/"):
        dest = dest + os.path.basename(src)
    target = _place(root, dest)
    if os.path.isdir(target) and not os.path.islink(target):
        target = _place(root, posixpath.join(dest, os.path.basename(src)))
    if os.path.lexists(target) and not os.path.isdir(target):
        os.unlink(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, target, follow_symlinks=False)
    else:
        return
    _set(target, st, uid, gid, mode)


def _extract_archive(root: str, archive: str, dest: str) -> None:
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = posixpath.normpath("/" + member.name).lstrip("/")
            if not name or name == ".":
                continue
            target = _place(root, posixpath.join(dest, name))
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            else:
                if os.path.lexists(target) and not os.path.isdir(target):
                    os.unlink(target)
                if member.issym():
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    os.link(_place(root, posixpath.join(dest, posixpath.normpath("/" + member.linkname)
                                                        .lstrip("/"))), target)
                elif member.isfile():
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                else:
                    continue
            os.lchown(target, member.uid, member.gid)
            if not member.issym():
                os.chmod(target, member.mode & 0o7777)
                os.utime(target, (member.mtime, member.mtime))
