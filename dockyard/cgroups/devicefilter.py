"""The cgroup v2 device filter: a device policy as a BPF_PROG_TYPE_CGROUP_DEVICE program.

v2 has no devices.allow: the kernel asks an eBPF program attached to the
group, once per open(2) or mknod(2) of a device node, and the access is
allowed when the program returns 1.  The program gets a
`struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
where access_type is (access bits << 16) | device type.

The policy is `resources.DeviceState` (the v1 model), so a rule list means
the same on both hierarchies.  Layout of the program:

    r2 = type, r3 = access bits, r4 = major, r5 = minor      (prologue)
    for each exception:                                       (one block each)
        if r2 != its type: go to next block
        r1 = r3 & mask; test r1                               (access check)
        if r4 != its major: go to next block                  (unless wildcard)
        if r5 != its minor: go to next block                  (unless wildcard)
        r0 = the opposite of the default; exit
    r0 = the default; exit                                    (epilogue)

Under a deny-all default an exception matches when it holds every requested
bit (mask = ~bits, jump away if r1 != 0); under allow-all when it holds any
(mask = bits, jump away if r1 == 0).  Every block starts with a type check,
so no block is unconditional and the verifier never sees unreachable code.
"""

from __future__ import annotations

import os

from ..linux import bpf
from .resources import ALL_ACCESS, DeviceState

DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
_TYPE = {"b": DEV_BLOCK, "c": DEV_CHAR}

R0, R1, R2, R3, R4, R5 = range(6)


def _block(key: tuple, bits: int, default_allow: bool) -> list:
    """Instructions for one exception; jumps are ("next", op, reg, imm) until placed."""
    kind, major, minor = key
    body: list = [("next", bpf.JNE, R2, _TYPE[kind])]
    if default_allow:
        if bits != ALL_ACCESS:  # every request holds at least one bit: a full mask always matches
            body += [bpf.mov32_reg(R1, R3), bpf.alu32_imm(bpf.AND, R1, bits), ("next", bpf.JEQ, R1, 0)]
    elif bits != ALL_ACCESS:
        body += [bpf.mov32_reg(R1, R3), bpf.alu32_imm(bpf.AND, R1, ~bits & ALL_ACCESS), ("next", bpf.JNE, R1, 0)]
    if major is not None:
        body.append(("next", bpf.JNE, R4, major))
    if minor is not None:
        body.append(("next", bpf.JNE, R5, minor))
    body += [bpf.mov64_imm(R0, 0 if default_allow else 1), bpf.exit_insn()]
    out = []
    for i, item in enumerate(body):
        if isinstance(item, tuple):
            _, op, reg, imm = item
            out.append(bpf.jump_imm(op, reg, imm, len(body) - i - 1))  # to the first insn after the block
        else:
            out.append(item)
    return out


def program(state: DeviceState) -> bytes:
    """The filter enforcing `state`, as instructions ready for BPF_PROG_LOAD."""
    insns = [
        bpf.load_word(R2, R1, 0),
        bpf.alu32_imm(bpf.AND, R2, 0xFFFF),
        bpf.load_word(R3, R1, 0),
        bpf.alu32_imm(bpf.RSH, R3, 16),
        bpf.load_word(R4, R1, 4),
        bpf.load_word(R5, R1, 8),
    ]
    for key, bits in state.exceptions.items():
        insns += _block(key, bits, state.default_allow)
    insns += [bpf.mov64_imm(R0, 1 if state.default_allow else 0), bpf.exit_insn()]
    return b"".join(insns)


def install(group_dir: str, state: DeviceState) -> None:
    """Load the filter for `state` and make it the only device program on the group.

    The new program is attached next to the old ones before they are
    detached (with several attached, an access needs every program's yes),
    so there is never a moment without a filter.  With exactly one old
    program the kernel swaps them in one step (BPF_F_REPLACE).
    """
    code = program(state)
    cgroup_fd = bpf.open_cgroup(group_dir)
    old_fds: list[int] = []
    prog_fd = -1
    try:
        for prog_id in bpf.prog_query(cgroup_fd, bpf.AttachType.CGROUP_DEVICE):
            old_fds.append(bpf.prog_fd_by_id(prog_id))
        prog_fd = bpf.prog_load(bpf.ProgType.CGROUP_DEVICE, code, name="dockyard_dev",
                                expected_attach_type=bpf.AttachType.CGROUP_DEVICE)
        multi = bpf.AttachFlag.ALLOW_MULTI
        if len(old_fds) == 1:
            bpf.prog_attach(cgroup_fd, prog_fd, bpf.AttachType.CGROUP_DEVICE, multi | bpf.AttachFlag.REPLACE,
                            replace_fd=old_fds[0])
        else:
            bpf.prog_attach(cgroup_fd, prog_fd, bpf.AttachType.CGROUP_DEVICE, multi)
            for old in old_fds:
                bpf.prog_detach(cgroup_fd, old, bpf.AttachType.CGROUP_DEVICE)
    finally:
        # The attachment holds its own reference to the program.
        for fd in (prog_fd, *old_fds, cgroup_fd):
            if fd >= 0:
                os.close(fd)


def attached(group_dir: str) -> list[int]:
    """Ids of the device programs attached to a group."""
    cgroup_fd = bpf.open_cgroup(group_dir)
    try:
        return bpf.prog_query(cgroup_fd, bpf.AttachType.CGROUP_DEVICE)
    finally:
        os.close(cgroup_fd)
