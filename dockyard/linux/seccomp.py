"""libseccomp (Debian's libseccomp2) through ctypes: build a filter, load it.

A direct binding rather than the `pyseccomp` package: that one locates the
library with `ctypes.util.find_library`, which runs `ldconfig -p` in a
subprocess, and imports `typing`; together about 25 ms on every container
start with a seccomp profile (that is, every container docker or podman
makes).  The library's soname is stable, so it is opened by name.
"""

from __future__ import annotations

import ctypes

from .syscall import SyscallError

SONAME = "libseccomp.so.2"

# Actions (seccomp.h)
KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
TRAP = 0x00030000
LOG = 0x7FFC0000
ALLOW = 0x7FFF0000


def errno_action(value: int) -> int:
    return 0x00050000 | (value & 0xFFFF)


def trace_action(value: int) -> int:
    return 0x7FF00000 | (value & 0xFFFF)


# Filter attributes (enum scmp_filter_attr)
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7

# Comparison operators (enum scmp_compare)
OPERATORS = {"NE": 1, "LT": 2, "LE": 3, "EQ": 4, "GE": 5, "GT": 6, "MASKED_EQ": 7}

# Architecture tokens (AUDIT_ARCH_* values)
_LE, _64 = 0x40000000, 0x80000000
ARCHES = {
    "X86": 3 | _LE, "X86_64": 62 | _64 | _LE, "X32": 62 | _LE, "ARM": 40 | _LE, "AARCH64": 183 | _64 | _LE,
    "MIPS": 8, "MIPS64": 8 | _64, "MIPS64N32": 8 | _64 | 0x20000000, "MIPSEL": 8 | _LE,
    "MIPSEL64": 8 | _64 | _LE, "MIPSEL64N32": 8 | _64 | _LE | 0x20000000, "PPC": 20, "PPC64": 21 | _64,
    "PPC64LE": 21 | _64 | _LE, "S390": 22, "S390X": 22 | _64, "RISCV64": 243 | _64 | _LE,
}

NR_ERROR = -1  # __NR_SCMP_ERROR: a name libseccomp does not know


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib = None


def library():
    """The loaded libseccomp, with argument types set (OSError when it is not installed)."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(SONAME)
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_release.restype = None
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp))
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        _lib = lib
    return _lib


def version() -> str:
    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = library()
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _check(call: str, ret: int, *shown) -> None:
    # libseccomp returns -errno.
    if ret < 0:
        raise SyscallError(call, shown, -ret)


class Filter:
    """One libseccomp filter context; released when garbage-collected."""

    def __init__(self, default_action: int):
        self._lib = library()
        self._ctx = self._lib.seccomp_init(default_action)
        if not self._ctx:
            raise SyscallError("seccomp_init", (hex(default_action),), 22)

    def __del__(self):
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx:
            self._lib.seccomp_release(ctx)

    def set_attr(self, attr: int, value: int) -> None:
        _check("seccomp_attr_set", self._lib.seccomp_attr_set(self._ctx, attr, value), attr, value)

    def add_arch(self, arch: int) -> None:
        _check("seccomp_arch_add", self._lib.seccomp_arch_add(self._ctx, arch), hex(arch))

    def native_arch(self) -> int:
        return self._lib.seccomp_arch_native()

    def resolve(self, name: str) -> int:
        """The syscall's number (negative pseudo-numbers for other-arch calls); NR_ERROR if unknown."""
        return self._lib.seccomp_syscall_resolve_name(name.encode())

    def add_rule(self, action: int, syscall: int, conditions: list[tuple[int, int, int, int]]) -> None:
        """`conditions`: (arg index, operator, value, value two), all ANDed."""
        array = (_ArgCmp * len(conditions))(*[_ArgCmp(*c) for c in conditions])
        _check("seccomp_rule_add", self._lib.seccomp_rule_add_array(self._ctx, action, syscall, len(conditions),
                                                                    array), hex(action), syscall)

    def load(self) -> None:
        _check("seccomp_load", self._lib.seccomp_load(self._ctx))
