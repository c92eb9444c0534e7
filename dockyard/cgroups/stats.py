"""Parsers for cgroup statistics files, and the host figures `docker stats` divides by.

Pure functions over file text.  The managers read the files and assemble
the Docker Engine API's stats shape from these pieces (`memory_stats`,
`cpu_stats`, `pids_stats`, `blkio_stats`), so the engine can pass them on.
"""

from __future__ import annotations

import os

NANOS = 1_000_000_000


def flat_keyed(text: str) -> dict:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat) -> {key: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def nested_keyed(text: str) -> dict:
    """`name k=v k=v` lines (io.stat, cgroup.events-style) -> {name: {k: int}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        fields = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            try:
                fields[key] = int(value)
            except ValueError:
                fields[key] = value
        out[parts[0]] = fields
    return out


def blkio_v1(text: str) -> list:
    """blkio.*_recursive -> Docker entries.

    Lines are `8:0 Read 4096` (per operation) or `8:0 4096` (time, sectors:
    op is then empty); the `Total` summary lines are dropped.
    """
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            parts = [parts[0], "", parts[1]]
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        except ValueError:
            continue
    return entries


def io_stat_v2(text: str, read_key: str = "rbytes", write_key: str = "wbytes") -> list:
    """io.stat -> Docker entries with op read/write (as dockerd reports them on v2)."""
    entries = []
    for device, fields in nested_keyed(text).items():
        major, _, minor = device.partition(":")
        try:
            major_n, minor_n = int(major), int(minor)
        except ValueError:
            continue
        for op, key in (("read", read_key), ("write", write_key)):
            entries.append({"major": major_n, "minor": minor_n, "op": op, "value": int(fields.get(key, 0))})
    return entries


def percpu(text: str) -> list:
    """cpuacct.usage_percpu -> [ns per cpu]."""
    return [int(x) for x in text.split()]


def system_cpu_usage(proc_stat: str, clock_ticks: int) -> int:
    """The host's total CPU time in ns, from /proc/stat's `cpu` line, as dockerd computes it."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = sum(int(x) for x in parts[1:8])  # user nice system idle iowait irq softirq
            return ticks * NANOS // clock_ticks
    return 0


def host_memory(meminfo: str) -> int:
    """MemTotal in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def clamp_limit(limit, host_total: int) -> int:
    """A memory limit as dockerd reports it: "no limit" (None or huge) reads as the host's memory."""
    if limit is None or (host_total and limit > host_total):
        return host_total
    return limit


def host() -> dict:
    """Host figures for a stats snapshot: system_cpu_usage, online_cpus, memory_total."""
    out = {"system_cpu_usage": 0, "online_cpus": os.cpu_count() or 1, "memory_total": 0}
    try:
        with open("/proc/stat") as f:
            out["system_cpu_usage"] = system_cpu_usage(f.read(), os.sysconf("SC_CLK_TCK"))
        with open("/proc/meminfo") as f:
            out["memory_total"] = host_memory(f.read())
        out["online_cpus"] = os.sysconf("SC_NPROCESSORS_ONLN")
    except (OSError, ValueError):
        pass
    return out
