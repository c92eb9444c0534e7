"""Mounts: mount(2), umount2(2), pivot_root(2) and what is built from them."""

from __future__ import annotations

import ctypes
import errno

from .flags import MountFlag, UmountFlag
from .syscall import SyscallError, call, cstr, libc, raw

libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    call("mount", libc.mount, cstr(source), cstr(target), cstr(fstype), int(flags), cstr(data),
         shown=(source, target, fstype, data), flags=(MountFlag, flags))


def umount(target: str, flags: int = 0) -> None:
    call("umount2", libc.umount2, cstr(target), int(flags), shown=(target,), flags=(UmountFlag, flags))


def pivot_root(new_root: str, put_old: str) -> None:
    raw("pivot_root", ctypes.c_char_p(cstr(new_root)), ctypes.c_char_p(cstr(put_old)),
        shown=(new_root, put_old))


def bind(source: str, target: str, recursive: bool = False) -> None:
    flags = MountFlag.BIND | (MountFlag.REC if recursive else 0)
    mount(source, target, None, flags)


def remount(target: str, flags: int, bind_mount: bool = True) -> None:
    """Change the per-mount flags of what is mounted at `target`.

    Locked flags (set by a more privileged mount namespace, e.g. nodev on a
    host mount seen from a user namespace) must be kept, or the kernel says
    EPERM: on EPERM retry with the flags the mount already has.
    """
    base = MountFlag.REMOUNT | (MountFlag.BIND if bind_mount else 0)
    try:
        mount(None, target, None, base | flags)
    except SyscallError as err:
        if err.errno != errno.EPERM:
            raise
        mount(None, target, None, base | flags | current_flags(target))


_OPT_FLAGS = {
    "ro": MountFlag.RDONLY, "nosuid": MountFlag.NOSUID, "nodev": MountFlag.NODEV,
    "noexec": MountFlag.NOEXEC, "noatime": MountFlag.NOATIME, "nodiratime": MountFlag.NODIRATIME,
    "relatime": MountFlag.RELATIME, "strictatime": MountFlag.STRICTATIME, "nosymfollow": MountFlag.NOSYMFOLLOW,
}


def current_flags(target: str) -> int:
    """The per-mount flags of the mount at `target`, read from /proc/self/mountinfo."""
    best = None
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if unescape(fields[4].decode()) == target:
                best = fields[5].decode()
    flags = 0
    for opt in (best or "").split(","):
        flags |= _OPT_FLAGS.get(opt, 0)
    return flags


def unescape(path: str) -> str:
    """Undo the octal escapes of /proc/self/mountinfo (`\\040` for a space)."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and len(path[i + 1:i + 4]) == 3 and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below `prefix`, deepest first (the order to unmount them in)."""
    prefix = prefix.rstrip("/")
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = unescape(line.split(b" ")[4].decode())
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


class _MountAttr:
    """struct mount_attr for mount_setattr(2) (built lazily: ctypes structs cost import time)."""

    RDONLY, NOSUID, NODEV, NOEXEC = 0x1, 0x2, 0x4, 0x8
    ATIME_MASK, NOATIME, STRICTATIME, NODIRATIME = 0x70, 0x10, 0x20, 0x80
    NOSYMFOLLOW = 0x200000


MOUNT_ATTR = _MountAttr
AT_RECURSIVE = 0x8000
AT_FDCWD = -100


def setattr_recursive(target: str, attr_set: int, attr_clr: int = 0) -> None:
    """Apply per-mount attributes to `target` and every mount below it (`rro`, `rnosuid`…)."""

    class mount_attr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = mount_attr(attr_set, attr_clr, 0, 0)
    raw("mount_setattr", ctypes.c_int(AT_FDCWD), ctypes.c_char_p(cstr(target)), ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
        shown=(target, hex(attr_set), hex(attr_clr)), flags="AT_RECURSIVE")
