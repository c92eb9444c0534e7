"""Capabilities: names, capget/capset, the bounding and ambient sets."""

from __future__ import annotations

import ctypes
import errno

from .flags import CapAmbient, Prctl
from .proc import prctl
from .syscall import SyscallError, call, libc

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
NUMBER = {name: i for i, name in enumerate(NAMES)}

_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def number(name: str) -> int:
    """The number of a capability named `CAP_X` (or `X`); ValueError for an unknown name."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return NUMBER[key]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def mask(names) -> int:
    bits = 0
    for name in names:
        bits |= 1 << number(name)
    return bits


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    header = _Header(_VERSION_3, pid)
    data = (_Data * 2)()
    call("capget", libc.capget, ctypes.byref(header), data, shown=(pid,))
    return tuple((getattr(data[1], k) << 32) | getattr(data[0], k)
                 for k in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for i, shift in ((0, 0), (1, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    call("capset", libc.capset, ctypes.byref(header), data,
         shown=(hex(effective), hex(permitted), hex(inheritable)))


def drop_bounding(keep: int) -> None:
    """Drop from the bounding set every capability not in `keep`."""
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            try:
                prctl(Prctl.CAPBSET_DROP, cap)
            except SyscallError as err:
                if err.errno != errno.EINVAL:  # a capability this kernel does not know
                    raise


def set_ambient(caps: int) -> list[int]:
    """Raise the ambient capabilities in `caps`; returns those the kernel refused.

    A capability can only be ambient while it is both permitted and
    inheritable: specs that list it as ambient only (runc's default) get it
    refused with EPERM, which runc ignores too.
    """
    prctl(Prctl.CAP_AMBIENT, CapAmbient.CLEAR_ALL)
    refused = []
    for cap in range(last_cap() + 1):
        if caps & (1 << cap):
            try:
                prctl(Prctl.CAP_AMBIENT, CapAmbient.RAISE, cap)
            except SyscallError as err:
                if err.errno != errno.EPERM:
                    raise
                refused.append(cap)
    return refused
