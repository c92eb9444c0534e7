"""Kernel flags, grouped by the call they belong to, with their names for error messages.

These are plain int constants in namespace classes rather than `enum.IntFlag`:
importing `enum` costs several milliseconds, and every `dockyard-runtime`
call pays its imports (runc is the yardstick).  `names()` gives errors the
same readable `CLONE_NEWNS|CLONE_NEWPID` an IntFlag would.
"""

from __future__ import annotations


class CloneFlag:
    PREFIX = "CLONE_"
    NEWNS = 0x00020000
    NEWCGROUP = 0x02000000
    NEWUTS = 0x04000000
    NEWIPC = 0x08000000
    NEWUSER = 0x10000000
    NEWPID = 0x20000000
    NEWNET = 0x40000000
    NEWTIME = 0x00000080


class MountFlag:
    PREFIX = "MS_"
    RDONLY = 1
    NOSUID = 2
    NODEV = 4
    NOEXEC = 8
    SYNCHRONOUS = 16
    REMOUNT = 32
    MANDLOCK = 64
    DIRSYNC = 128
    NOSYMFOLLOW = 256
    NOATIME = 1024
    NODIRATIME = 2048
    BIND = 4096
    MOVE = 8192
    REC = 16384
    SILENT = 32768
    POSIXACL = 1 << 16
    UNBINDABLE = 1 << 17
    PRIVATE = 1 << 18
    SLAVE = 1 << 19
    SHARED = 1 << 20
    RELATIME = 1 << 21
    KERNMOUNT = 1 << 22
    I_VERSION = 1 << 23
    STRICTATIME = 1 << 24
    LAZYTIME = 1 << 25


PROPAGATION = MountFlag.UNBINDABLE | MountFlag.PRIVATE | MountFlag.SLAVE | MountFlag.SHARED


class UmountFlag:
    PREFIX = "MNT_"
    FORCE = 1
    DETACH = 2
    EXPIRE = 4
    NOFOLLOW = 8


class Prctl:
    """prctl(2) options (values, not bits)."""

    PREFIX = "PR_"
    SET_PDEATHSIG = 1
    SET_DUMPABLE = 4
    SET_KEEPCAPS = 8
    SET_NAME = 15
    CAPBSET_READ = 23
    CAPBSET_DROP = 24
    SET_SECUREBITS = 28
    SET_CHILD_SUBREAPER = 36
    SET_NO_NEW_PRIVS = 38
    GET_NO_NEW_PRIVS = 39
    CAP_AMBIENT = 47


class CapAmbient:
    PREFIX = "PR_CAP_AMBIENT_"
    IS_SET = 1
    RAISE = 2
    LOWER = 3
    CLEAR_ALL = 4


def _members(kind: type) -> list[tuple[str, int]]:
    return [(k, v) for k, v in vars(kind).items() if k.isupper() and k != "PREFIX" and isinstance(v, int)]


def names(kind: type, value: int) -> str:
    """`CLONE_NEWNS|CLONE_NEWPID`-style text for a set of bit flags (`0` for none)."""
    if not value:
        return "0"
    parts, rest = [], value
    for name, bit in sorted(_members(kind), key=lambda m: m[1]):
        if bit and value & bit == bit and rest & bit:
            parts.append(kind.PREFIX + name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def name(kind: type, value: int) -> str:
    """The name of one option value (`PR_SET_KEEPCAPS`), or the number itself."""
    for key, v in _members(kind):
        if v == value:
            return kind.PREFIX + key
    return str(value)
