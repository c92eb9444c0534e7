"""libc through ctypes, raw syscall numbers, and the error every wrapper raises."""

from __future__ import annotations

import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)

_MACHINE = os.uname().machine

# Numbers for calls glibc has no wrapper for (or had none in older releases).
# close_range and pidfd_* share one number on every architecture (since 5.1).
_NUMBERS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "bpf": 321, "close_range": 436, "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "bpf": 280, "close_range": 436, "mount_setattr": 442},
}
NR = _NUMBERS.get(_MACHINE, {})

libc.syscall.restype = ctypes.c_long


class SyscallError(OSError):
    """A system call failed.  The message names the call, its arguments and flags.

    It is an `OSError`, so `errno` and `strerror` are set and callers can test
    `err.errno == errno.ENOENT` as with any other OS error.
    """

    def __init__(self, call: str, args: tuple = (), err: int = 0, flags=""):
        if isinstance(flags, tuple):  # (flag class, value): named only now that it failed
            from .flags import names

            flags = names(*flags)
        self.call = call
        self.call_args = args
        self.flag_names = flags
        shown = ", ".join(_show(a) for a in args)
        if flags:
            shown = f"{shown}, {flags}" if shown else flags
        super().__init__(err, f"{call}({shown}): {os.strerror(err)}")


def _show(value) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _encode(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return value


def call(name: str, fn, *args, shown: tuple | None = None, flags="") -> int:
    """Run one libc function, retry on EINTR, raise SyscallError on -1.

    `flags` names the flags for the error: a string, or a (flag class, value)
    pair that is only turned into names if the call fails (naming costs more
    than the syscall, and mounts are made by the dozen).
    """
    while True:
        ret = fn(*args)
        if ret != -1:
            return ret
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise SyscallError(name, shown if shown is not None else args, err, flags)


def raw(name: str, *args, shown: tuple | None = None, flags="") -> int:
    """Run a raw syscall by name (see `NR`), retry on EINTR, raise on failure."""
    try:
        number = NR[name]
    except KeyError:
        raise SyscallError(name, shown or args, errno.ENOSYS, flags) from None
    return call(name, libc.syscall, ctypes.c_long(number), *args, shown=shown if shown is not None else args,
                flags=flags)


def cstr(value):
    """A path or name for a libc call: bytes, or None."""
    return _encode(value)
