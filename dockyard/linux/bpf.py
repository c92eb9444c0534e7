"""eBPF: the bpf(2) commands Dockyard uses, and an encoder for the instructions it emits.

Only what the cgroup v2 device filter needs: load a program, attach it to a
cgroup (replacing or stacking on programs already there), list and detach the
programs attached to a cgroup.  The `union bpf_attr` layouts below are the
kernel's (include/uapi/linux/bpf.h); fields we do not set stay zero, which the
kernel requires of every byte past the ones it knows.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from enum import IntEnum, IntFlag

from .syscall import SyscallError, raw


class Cmd(IntEnum):
    PROG_LOAD = 5
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_GET_FD_BY_ID = 13
    PROG_QUERY = 16


class ProgType(IntEnum):
    CGROUP_DEVICE = 15


class AttachType(IntEnum):
    CGROUP_DEVICE = 6


class AttachFlag(IntFlag):
    ALLOW_OVERRIDE = 1
    ALLOW_MULTI = 2
    REPLACE = 4


# Instruction encoding (Documentation/bpf/standardization/instruction-set.rst).
# Classes
LDX = 0x01
JMP = 0x05
ALU = 0x04
ALU64 = 0x07
# Size and mode for loads
W = 0x00
MEM = 0x60
# Source operand: immediate or register
K = 0x00
X = 0x08
# ALU operations
AND = 0x50
RSH = 0x70
MOV = 0xB0
# Jump operations
JEQ = 0x10
JNE = 0x50
EXIT = 0x90

INSN_SIZE = 8


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction: opcode, dst/src register nibbles, 16-bit offset, 32-bit immediate."""
    regs = (src << 4 | dst) if sys.byteorder == "little" else (dst << 4 | src)
    return struct.pack("=BBhi", opcode, regs, off, imm)


def load_word(dst: int, src: int, off: int) -> bytes:
    """dst = *(u32 *)(src + off)"""
    return insn(LDX | MEM | W, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> bytes:
    return insn(ALU | op | K, dst, imm=imm)


def mov32_reg(dst: int, src: int) -> bytes:
    return insn(ALU | MOV | X, dst, src)


def mov64_imm(dst: int, imm: int) -> bytes:
    return insn(ALU64 | MOV | K, dst, imm=imm)


def jump_imm(op: int, dst: int, imm: int, off: int) -> bytes:
    """if (dst <op> imm) skip `off` instructions."""
    return insn(JMP | op | K, dst, imm=imm, off=off)


def exit_insn() -> bytes:
    return insn(JMP | EXIT)


class BpfError(SyscallError):
    """A bpf(2) call failed; for a refused program, `verifier_log` holds the verifier's reasons."""

    def __init__(self, call: str, args: tuple, err: int, flags: str = "", verifier_log: str = ""):
        super().__init__(call, args, err, flags)
        self.verifier_log = verifier_log
        if verifier_log:
            self.strerror = f"{self.strerror}\nverifier log:\n{verifier_log}"


# The size we pass for every `union bpf_attr`.  Bigger than the fields we set
# because the kernel writes some answers past them (PROG_QUERY's `revision`
# since 6.6); the zero tail is accepted by every kernel.
ATTR_SIZE = 256


def _bpf(cmd: Cmd, attr: bytes, shown: tuple, flags: str = "") -> tuple[int, ctypes.Array]:
    """Run one bpf(2) command; returns its result and the attr buffer (the kernel may have written to it)."""
    buf = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    ret = raw("bpf", ctypes.c_int(cmd), buf, ctypes.c_uint(ATTR_SIZE), shown=(f"BPF_{cmd.name}", *shown),
              flags=flags)
    return ret, buf


def prog_load(prog_type: ProgType, insns: bytes, *, license: str = "Apache-2.0",
              expected_attach_type: int = 0, name: str = "") -> int:
    """Load a program; returns its fd (close-on-exec).  A refusal carries the verifier log."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    prog_name = name.encode()[:15].ljust(16, b"\0")
    shown = (prog_type.name, f"{len(insns) // INSN_SIZE} insns")

    def attempt(log_level: int, log_size: int):
        log = ctypes.create_string_buffer(log_size) if log_size else None
        attr = struct.pack(
            "=IIQQIIQII16sII",
            int(prog_type), len(insns) // INSN_SIZE, ctypes.addressof(code), ctypes.addressof(lic),
            log_level, log_size, ctypes.addressof(log) if log else 0,
            0,  # kern_version
            0,  # prog_flags
            prog_name,
            0,  # prog_ifindex
            expected_attach_type,
        )
        try:
            fd, _ = _bpf(Cmd.PROG_LOAD, attr, shown)
        except SyscallError as err:
            return None, err, (log.value.decode(errors="replace").strip() if log else "")
        return fd, None, ""

    fd, err, _ = attempt(0, 0)
    if err is None:
        return fd
    if err.errno in (errno.EACCES, errno.EINVAL):
        # Load again with the verifier's log switched on, only to say why.
        fd, err2, log = attempt(1, 1 << 16)
        if err2 is None:
            return fd
        raise BpfError("bpf", err.call_args, err2.errno, verifier_log=log) from None
    raise err


def prog_attach(target_fd: int, prog_fd: int, attach_type: AttachType, flags: AttachFlag = AttachFlag(0),
                replace_fd: int = 0) -> None:
    attr = struct.pack("=IIIII", target_fd, prog_fd, int(attach_type), int(flags), replace_fd)
    _bpf(Cmd.PROG_ATTACH, attr, (target_fd, prog_fd, attach_type.name), flags=_flag_names(flags))


def prog_detach(target_fd: int, prog_fd: int, attach_type: AttachType) -> None:
    attr = struct.pack("=IIII", target_fd, prog_fd, int(attach_type), 0)
    _bpf(Cmd.PROG_DETACH, attr, (target_fd, prog_fd, attach_type.name))


def prog_query(target_fd: int, attach_type: AttachType) -> list[int]:
    """The ids of the programs attached to `target_fd` (a cgroup directory) for `attach_type`."""
    count = 64
    while True:
        ids = (ctypes.c_uint32 * count)()
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = struct.pack("=IIIIQI4x", target_fd, int(attach_type), 0, 0, ctypes.addressof(ids), count)
        try:
            _, buf = _bpf(Cmd.PROG_QUERY, attr, (target_fd, attach_type.name))
        except SyscallError as err:
            if err.errno == errno.ENOSPC and count < 1 << 16:
                count *= 4
                continue
            raise
        found = struct.unpack_from("=I", buf.raw, 24)[0]
        return list(ids[:found])


def prog_fd_by_id(prog_id: int) -> int:
    attr = struct.pack("=III", prog_id, 0, 0)
    fd, _ = _bpf(Cmd.PROG_GET_FD_BY_ID, attr, (prog_id,))
    return fd


def open_cgroup(path: str) -> int:
    """An fd for a cgroup directory, as PROG_ATTACH/DETACH/QUERY take it."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _flag_names(flags: AttachFlag) -> str:
    return "|".join(f"BPF_F_{m.name}" for m in AttachFlag if m in flags) if flags else ""
