"""Perform the mounts a snapshotter returns (and undo them).

Mount options have to fit in one page (4096 bytes with the trailing NUL).
An overlay of a deep stack with absolute lower paths does not; then the
paths are rewritten relative to the directory they share (the snapshotter's
`snapshots/`, where each layer is just `<id>/fs`) and the mount is made from
a helper thread whose working directory is that directory.  The thread first
unshares its filesystem context (CLONE_FS), so its chdir does not move the
rest of the process.  That keeps up to the kernel's own limit of 500 layers
mountable in one overlay.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence

from ..errors import InvalidArgument, NotSupported
from ..linux.flags import MountFlag, UmountFlag
from ..linux.mount import mount, mounts_under, remount, umount
from ..linux.ns import unshare
from .base import Mount

OPTIONS_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1
_CLONE_FS = 0x00000200  # unshare only this thread's cwd/root/umask

_FLAG_OPTIONS = {
    "ro": MountFlag.RDONLY, "nosuid": MountFlag.NOSUID, "nodev": MountFlag.NODEV,
    "noexec": MountFlag.NOEXEC, "noatime": MountFlag.NOATIME, "nodiratime": MountFlag.NODIRATIME,
    "relatime": MountFlag.RELATIME, "strictatime": MountFlag.STRICTATIME,
}
_PATH_OPTIONS = ("lowerdir", "upperdir", "workdir")


def _split_options(options: Sequence[str]) -> tuple[int, bool, bool, list[str]]:
    flags = 0
    bind = recursive = False
    data = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[opt]
        elif opt == "rw":
            continue
        elif opt in ("bind", "rbind"):
            bind = True
            recursive = recursive or opt == "rbind"
        else:
            data.append(opt)
    return flags, bind, recursive, data


def _target(root: str, rel: str) -> str:
    if not rel or rel == "/":
        return root
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"mount target {rel!r} escapes the root")
    return os.path.join(root, *parts)


def shorten(data: list[str]) -> tuple[str | None, list[str]]:
    """(directory, options) with overlay paths made relative to their common directory."""
    paths = []
    for opt in data:
        key, _, value = opt.partition("=")
        if key in _PATH_OPTIONS:
            paths.extend(value.split(":"))
    if not paths or not all(os.path.isabs(p) for p in paths):
        return None, data
    common = os.path.commonpath(paths)
    if common in paths:  # one of the paths would become "."
        common = os.path.dirname(common)
    out = []
    for opt in data:
        key, _, value = opt.partition("=")
        if key in _PATH_OPTIONS:
            opt = key + "=" + ":".join(os.path.relpath(p, common) for p in value.split(":"))
        out.append(opt)
    return common, out


def _in_directory(directory: str, fn) -> None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            unshare(_CLONE_FS)
            os.chdir(directory)
            fn()
        except BaseException as err:  # handed to the calling thread
            failure.append(err)

    worker = threading.Thread(target=run, name="dockyard-mount")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def mount_one(m: Mount, dest: str) -> None:
    flags, bind, recursive, data = _split_options(m.options)
    if m.type == "bind" or bind:
        mount(m.source, dest, None, MountFlag.BIND | (MountFlag.REC if recursive else 0))
        if flags:
            remount(dest, flags)
        return
    text = ",".join(data)
    if len(text) <= OPTIONS_LIMIT:
        mount(m.source, dest, m.type, flags, text)
        return
    directory, short = shorten(data)
    short_text = ",".join(short)
    if directory is None or len(short_text) > OPTIONS_LIMIT:
        lowers = next((o for o in data if o.startswith("lowerdir=")), "").count(":") + 1
        raise NotSupported(f"cannot mount {m.type} at {dest}: {lowers} layers need {len(short_text)} bytes of "
                           f"mount options, more than the limit of {OPTIONS_LIMIT}")
    _in_directory(directory, lambda: mount(m.source, dest, m.type, flags, short_text))


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each of `mounts` at `target` (or below it, per `Mount.target`), in order.

    On failure, whatever was already mounted is unmounted again.
    """
    done: list[str] = []
    try:
        for m in mounts:
            dest = _target(target, m.target)
            mount_one(m, dest)
            done.append(dest)
    except BaseException:
        for dest in reversed(done):
            _unmount(dest)
        raise


def _unmount(path: str) -> None:
    try:
        umount(path)
    except OSError as err:
        if err.errno == errno.EINVAL:  # not a mount point (any more)
            return
        if err.errno != errno.EBUSY:
            raise
        umount(path, UmountFlag.DETACH)


def unmount_all(target: str) -> None:
    """Unmount everything mounted at or below `target`, deepest first."""
    for path in mounts_under(os.path.realpath(target)):
        _unmount(path)
