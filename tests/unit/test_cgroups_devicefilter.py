"""The v2 device filter program, run in a small eBPF interpreter against the v1 kernel model.

The interpreter knows only the instructions the filter may use, so a stray
opcode fails here; it also checks what the kernel's verifier would: every
jump lands inside the program and every instruction is reachable.
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from dockyard.cgroups import devicefilter, resources
from dockyard.cgroups.resources import ALL_ACCESS, DeviceState

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1


def decode(code: bytes) -> list[tuple]:
    assert len(code) % 8 == 0
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def successors(pc: int, insn: tuple) -> list[int]:
    op, _dst, _src, off, _imm = insn
    if op == 0x95:
        return []
    if op in (0x55, 0x15):
        return [pc + 1, pc + 1 + off]
    return [pc + 1]


def verify(insns: list[tuple]) -> None:
    reached, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in reached:
            continue
        assert 0 <= pc < len(insns), f"jump out of the program to {pc}"
        reached.add(pc)
        todo.extend(successors(pc, insns[pc]))
    assert reached == set(range(len(insns))), f"unreachable instructions: {set(range(len(insns))) - reached}"


def run(insns: list[tuple], dev_type: int, major: int, minor: int, access: int) -> int:
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [None] * 11
    regs[1] = "ctx"
    pc = 0
    for _ in range(10_000):
        op, dst, src, off, imm = insns[pc]
        pc += 1
        if op == 0x61:    # r_dst = *(u32 *)(r_src + off)
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:  # w_dst &= imm
            regs[dst] = (regs[dst] & imm) & MASK32
        elif op == 0x74:  # w_dst >>= imm
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif op == 0xBC:  # w_dst = w_src
            regs[dst] = regs[src] & MASK32
        elif op == 0xB7:  # r_dst = imm
            regs[dst] = imm & MASK64
        elif op in (0x55, 0x15):  # if r_dst != / == imm goto +off
            equal = regs[dst] == (imm & MASK64)
            if equal == (op == 0x15):
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("program did not exit")


KINDS = {"b": devicefilter.DEV_BLOCK, "c": devicefilter.DEV_CHAR}
PROBES = list(itertools.product("bc", (0, 1, 5, 8, 136), (0, 3, 5, 9), range(1, 8)))


def agree(state: DeviceState) -> None:
    insns = decode(devicefilter.program(state))
    verify(insns)
    for kind, major, minor, access in PROBES:
        want = state.allows(kind, major, minor, access)
        got = run(insns, KINDS[kind], major, minor, access)
        assert got == (1 if want else 0), (state, kind, major, minor, access)


def test_docker_default_policy():
    rules = resources.device_rules([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
        {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
        {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rw"},
    ])
    state = resources.emulate(rules)
    agree(state)
    insns = decode(devicefilter.program(state))
    char, rd, wr, mk = devicefilter.DEV_CHAR, resources.READ, resources.WRITE, resources.MKNOD
    assert run(insns, char, 1, 3, rd | wr) == 1
    assert run(insns, char, 1, 9, rd) == 0          # /dev/urandom not listed
    assert run(insns, char, 1, 9, mk) == 1          # but mknod of any char device is
    assert run(insns, char, 5, 0, mk | rd) == 0     # /dev/tty: rw only
    assert run(insns, char, 136, 7, wr) == 1        # ptys


@pytest.mark.parametrize("state", [
    DeviceState(True), DeviceState(False),
    DeviceState(False, {("c", None, None): ALL_ACCESS}),
    DeviceState(True, {("b", None, None): ALL_ACCESS, ("c", 1, None): resources.WRITE}),
    DeviceState(False, {("c", 1, 3): resources.READ, ("b", 8, 0): resources.MKNOD | resources.WRITE}),
], ids=repr)
def test_edge_policies(state):
    agree(state)


def test_random_rule_lists_match_the_kernel_model():
    rng = random.Random(20240601)
    for _ in range(300):
        entries = [{"allow": rng.random() < 0.5, "access": "rwm"}] if rng.random() < 0.8 else []
        for _ in range(rng.randrange(0, 8)):
            entries.append({
                "allow": rng.random() < 0.6,
                "type": rng.choice("bca"),
                "major": rng.choice([None, 1, 5, 8, 136]),
                "minor": rng.choice([None, 0, 3, 5, 9]),
                "access": "".join(ch for ch in "rwm" if rng.random() < 0.6) or "r",
            })
        agree(resources.emulate(resources.device_rules(entries)))


def test_program_uses_no_unknown_instructions_and_exits_with_the_default():
    insns = decode(devicefilter.program(DeviceState(False)))
    assert insns[-2][0] == 0xB7 and insns[-2][4] == 0 and insns[-1][0] == 0x95
    insns = decode(devicefilter.program(DeviceState(True)))
    assert insns[-2][4] == 1
