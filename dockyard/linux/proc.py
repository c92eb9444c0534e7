"""Process attributes: prctl(2), hostname, session keyrings, close_range(2)."""

from __future__ import annotations

import ctypes

from .flags import Prctl, name
from .syscall import SyscallError, call, cstr, libc, raw

libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
libc.setdomainname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)

CLOSE_RANGE_CLOEXEC = 1 << 2
KEYCTL_JOIN_SESSION_KEYRING = 1


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    try:
        return call("prctl", libc.prctl, option, arg2, arg3, arg4, arg5, shown=(option, arg2, arg3))
    except SyscallError as err:
        raise SyscallError("prctl", (name(Prctl, option), arg2, arg3), err.errno) from None


def set_child_subreaper() -> None:
    prctl(Prctl.SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(signum: int) -> None:
    prctl(Prctl.SET_PDEATHSIG, signum)


def set_no_new_privs() -> None:
    prctl(Prctl.SET_NO_NEW_PRIVS, 1)


def set_keepcaps(on: bool) -> None:
    prctl(Prctl.SET_KEEPCAPS, 1 if on else 0)


def sethostname(name: str) -> None:
    data = name.encode()
    call("sethostname", libc.sethostname, data, len(data), shown=(name,))


def setdomainname(name: str) -> None:
    data = name.encode()
    call("setdomainname", libc.setdomainname, data, len(data), shown=(name,))


def join_session_keyring(name: str | None = None) -> int:
    """Give the process a new session keyring, so containers do not share the host's keys."""
    return raw("keyctl", ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_char_p(cstr(name)),
               shown=("KEYCTL_JOIN_SESSION_KEYRING", name))


def cloexec_from(first: int) -> None:
    """Mark every fd from `first` up close-on-exec: nothing stray leaks through execve."""
    raw("close_range", ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(CLOSE_RANGE_CLOEXEC),
        shown=(first, "~0U"), flags="CLOSE_RANGE_CLOEXEC")
