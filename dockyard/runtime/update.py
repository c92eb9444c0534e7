"""`update`: change a running container's cgroup limits."""

from __future__ import annotations

import json
import os
import sys

from ..errors import InvalidArgument
from .state import Container, write_atomic


def _size(text: str) -> int:
    """runc's memory values: bytes, or a number with a k/m/g/t suffix (1024-based); -1 unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    mult = 1
    if t.endswith("b") and len(t) > 1 and t[-2] in units:
        t = t[:-1]
    if t and t[-1] in units:
        mult = units[t[-1]]
        t = t[:-1]
    try:
        return int(float(t) * mult)
    except ValueError:
        raise InvalidArgument(f"invalid value for memory: {text!r}") from None


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for --{flag}: {text!r}") from None


# flag -> (section, key, parser)
FLAGS = {
    "memory": ("memory", "limit", _size),
    "memory-reservation": ("memory", "reservation", _size),
    "memory-swap": ("memory", "swap", _size),
    "kernel-memory": ("memory", "kernel", _size),
    "kernel-memory-tcp": ("memory", "kernelTCP", _size),
    "cpu-shares": ("cpu", "shares", lambda v: _int(v, "cpu-shares")),
    "cpu-quota": ("cpu", "quota", lambda v: _int(v, "cpu-quota")),
    "cpu-period": ("cpu", "period", lambda v: _int(v, "cpu-period")),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", lambda v: _int(v, "cpu-rt-runtime")),
    "cpu-rt-period": ("cpu", "realtimePeriod", lambda v: _int(v, "cpu-rt-period")),
    "cpuset-cpus": ("cpu", "cpus", str),
    "cpuset-mems": ("cpu", "mems", str),
    "pids-limit": ("pids", "limit", lambda v: _int(v, "pids-limit")),
    "blkio-weight": ("blockIO", "weight", lambda v: _int(v, "blkio-weight")),
}


def read_resources(source: str) -> dict:
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                data = f.read()
        resources = json.loads(data)
    except OSError as err:
        raise InvalidArgument(f"open {source}: {err.strerror}") from None
    except ValueError as err:
        raise InvalidArgument(f"invalid resources JSON: {err}") from None
    if not isinstance(resources, dict):
        raise InvalidArgument("invalid resources JSON: not an object")
    return resources


def update(root: str, cid: str, resources_source: str | None, flags: dict) -> None:
    c = Container.load(root, cid)
    c.lock()
    c.check("update")
    resources = read_resources(resources_source) if resources_source else {}
    for flag, value in flags.items():
        section, key, parse = FLAGS[flag]
        resources.setdefault(section, {})[key] = parse(value)
    if not resources:
        return
    c.cgroup().update(resources)
    config = c.config()
    current = config.setdefault("linux", {}).setdefault("resources", {})
    for section, values in resources.items():
        if isinstance(values, dict) and isinstance(current.get(section), dict):
            current[section].update(values)
        else:
            current[section] = values
    write_atomic(os.path.join(c.dir, "config.json"), json.dumps(config).encode())
