"""Kernel flags as IntFlag, so errors and logs print their names."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class CloneFlag(IntFlag):
    NEWNS = 0x00020000
    NEWCGROUP = 0x02000000
    NEWUTS = 0x04000000
    NEWIPC = 0x08000000
    NEWUSER = 0x10000000
    NEWPID = 0x20000000
    NEWNET = 0x40000000
    NEWTIME = 0x00000080


class MountFlag(IntFlag):
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


class UmountFlag(IntFlag):
    FORCE = 1
    DETACH = 2
    EXPIRE = 4
    NOFOLLOW = 8


class Prctl(IntEnum):
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


class CapAmbient(IntEnum):
    IS_SET = 1
    RAISE = 2
    LOWER = 3
    CLEAR_ALL = 4


def names(flags: IntFlag) -> str:
    """`CLONE_NEWNS|CLONE_NEWPID`-style text for an error message."""
    prefix = {"CloneFlag": "CLONE_", "MountFlag": "MS_", "UmountFlag": "MNT_"}.get(type(flags).__name__, "")
    if not flags:
        return "0"
    parts = [prefix + member.name for member in type(flags) if member in flags and member.value]
    rest = int(flags) & ~sum(int(m) for m in type(flags) if m in flags)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)
