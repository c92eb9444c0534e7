"""Pure rules for turning an OCI `LinuxResources` object into cgroup file values.

No I/O here: checking a resources object before anything is written (bad input
changes nothing), the v1 -> v2 value conversions runc established (so limits
mean the same under every runtime), and the device-rule model shared by the
v1 writer and the v2 eBPF filter.

Device rules follow the v1 kernel's own model (security/device_cgroup.c): a
group has a default (allow all or deny all) and a list of exceptions, each a
(type, major, minor) with access bits.  A rule of type `a` with wildcard
numbers resets the default and clears the exceptions; any other rule that
goes against the default adds access to the exception with exactly its
numbers, and one that agrees with the default removes access from it.  An
access is allowed under a deny-all default when one exception matches it and
holds every requested bit; under an allow-all default it is denied when an
exception matches it and holds any requested bit.
"""

from __future__ import annotations

from ..errors import InvalidArgument

# --- checking -------------------------------------------------------------------------------------

_INT = "an integer"
_UINT = "a non-negative integer"
_BOOL = "a boolean"
_STR = "a string"
_LIST = "a list"
_MAP = "an object"

_THROTTLE = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
             "throttleWriteIOPSDevice")

_FIELDS = {
    "memory": {"limit": _INT, "reservation": _INT, "swap": _INT, "kernel": _INT, "kernelTCP": _INT,
               "swappiness": _UINT, "disableOOMKiller": _BOOL, "useHierarchy": _BOOL,
               "checkBeforeUpdate": _BOOL},
    "cpu": {"shares": _UINT, "quota": _INT, "burst": _UINT, "period": _UINT, "realtimeRuntime": _INT,
            "realtimePeriod": _UINT, "cpus": _STR, "mems": _STR, "idle": _INT},
    "pids": {"limit": _INT},
    "blockIO": {"weight": _UINT, "leafWeight": _UINT, "weightDevice": _LIST,
                **{name: _LIST for name in _THROTTLE}},
    "network": {"classID": _UINT, "priorities": _LIST},
}
_TOP = {"memory": _MAP, "cpu": _MAP, "pids": _MAP, "blockIO": _MAP, "network": _MAP, "hugepageLimits": _LIST,
        "devices": _LIST, "rdma": _MAP, "unified": _MAP}



def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def is_page_size(text: str) -> bool:
    """`2MB`, `1GB`, `64KB`: the spelling of hugetlb file names (no `re`: it costs start-up time)."""
    return len(text) > 2 and text[-2:] in ("KB", "MB", "GB") and _digits(text[:-2]) and text[0] != "0"


def is_cpu_list(text: str) -> bool:
    """`0-2,4`: the kernel's list format for cpuset.cpus and cpuset.mems."""
    for part in text.split(","):
        bounds = part.strip().split("-")
        if len(bounds) > 2 or not all(_digits(b) for b in bounds):
            return False
    return True


MIN_SHARES, MAX_SHARES = 2, 262144
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000


def _kind_ok(value, kind: str) -> bool:
    if kind in (_INT, _UINT):
        return isinstance(value, int) and not isinstance(value, bool) and (kind == _INT or value >= 0)
    return isinstance(value, {_BOOL: bool, _STR: str, _LIST: list, _MAP: dict}[kind])


def _need(value, kind: str, where: str) -> None:
    if not _kind_ok(value, kind):
        raise InvalidArgument(f"resources.{where} must be {kind}, got {value!r}")


def check(resources) -> None:
    """Raise InvalidArgument naming the first bad field of an OCI LinuxResources object.

    Unknown keys are left alone (newer spec versions); null counts as absent.
    """
    if resources is None:
        return
    if not isinstance(resources, dict):
        raise InvalidArgument(f"resources must be an object, got {type(resources).__name__}")
    for key, kind in _TOP.items():
        if resources.get(key) is not None:
            _need(resources[key], kind, key)
    for section, fields in _FIELDS.items():
        for name, kind in fields.items():
            value = (resources.get(section) or {}).get(name)
            if value is not None:
                _need(value, kind, f"{section}.{name}")
    _check_memory(resources.get("memory") or {})
    _check_cpu(resources.get("cpu") or {})
    _check_block_io(resources.get("blockIO") or {})
    for i, entry in enumerate(resources.get("hugepageLimits") or []):
        where = f"hugepageLimits[{i}]"
        _need(entry, _MAP, where)
        size = entry.get("pageSize")
        if not isinstance(size, str) or not is_page_size(size):
            raise InvalidArgument(f"resources.{where}.pageSize must look like 2MB or 1GB, got {size!r}")
        _need(entry.get("limit"), _UINT, f"{where}.limit")
    device_rules(resources.get("devices") or [])
    for i, prio in enumerate((resources.get("network") or {}).get("priorities") or []):
        _need(prio, _MAP, f"network.priorities[{i}]")
        _need(prio.get("name"), _STR, f"network.priorities[{i}].name")
        _need(prio.get("priority"), _UINT, f"network.priorities[{i}].priority")
    for name, limits in (resources.get("rdma") or {}).items():
        _need(limits, _MAP, f"rdma.{name}")
        for field in ("hcaHandles", "hcaObjects"):
            if limits.get(field) is not None:
                _need(limits[field], _UINT, f"rdma.{name}.{field}")
    for key, value in (resources.get("unified") or {}).items():
        if not key or "/" in key or key in (".", ".."):
            raise InvalidArgument(f"resources.unified key {key!r} must be a file name (no slashes)")
        if "." not in key:
            raise InvalidArgument(f"resources.unified key {key!r} must look like CONTROLLER.PARAMETER")
        _need(value, _STR, f"unified.{key}")


def _check_memory(memory: dict) -> None:
    for name in ("limit", "reservation", "swap"):
        value = memory.get(name)
        if value is not None and value < -1:
            raise InvalidArgument(f"resources.memory.{name} must be -1 (no limit) or a byte count, got {value}")
    swappiness = memory.get("swappiness")
    if swappiness is not None and swappiness > 100:
        raise InvalidArgument(f"resources.memory.swappiness must be between 0 and 100, got {swappiness}")
    limit, swap = memory.get("limit") or 0, memory.get("swap") or 0
    if swap > 0:
        if limit <= 0:
            raise InvalidArgument("resources.memory.swap needs resources.memory.limit as well",
                                  hint="swap is the limit on memory plus swap, so it needs a memory limit")
        if swap < limit:
            raise InvalidArgument(f"resources.memory.swap ({swap}) must be at least resources.memory.limit "
                                  f"({limit}): it limits memory plus swap")


def _check_cpu(cpu: dict) -> None:
    shares = cpu.get("shares")
    if shares and not MIN_SHARES <= shares <= MAX_SHARES:
        raise InvalidArgument(f"resources.cpu.shares must be between {MIN_SHARES} and {MAX_SHARES}, got {shares}")
    quota = cpu.get("quota")
    if quota is not None and quota < -1:
        raise InvalidArgument(f"resources.cpu.quota must be -1 (no limit) or microseconds, got {quota}")
    for name in ("cpus", "mems"):
        value = cpu.get(name)
        if value and not is_cpu_list(value):
            raise InvalidArgument(f"resources.cpu.{name} must be a list like 0-2,4, got {value!r}")


def _check_block_io(block_io: dict) -> None:
    def weight(value, where):
        if value and not MIN_BLKIO_WEIGHT <= value <= MAX_BLKIO_WEIGHT:
            raise InvalidArgument(f"resources.blockIO.{where} must be between {MIN_BLKIO_WEIGHT} and "
                                  f"{MAX_BLKIO_WEIGHT}, got {value}")

    weight(block_io.get("weight"), "weight")
    weight(block_io.get("leafWeight"), "leafWeight")
    for name in ("weightDevice", *_THROTTLE):
        for i, entry in enumerate(block_io.get(name) or []):
            where = f"blockIO.{name}[{i}]"
            _need(entry, _MAP, where)
            _need(entry.get("major"), _UINT, f"{where}.major")
            _need(entry.get("minor"), _UINT, f"{where}.minor")
            if name == "weightDevice":
                for field in ("weight", "leafWeight"):
                    if entry.get(field) is not None:
                        _need(entry[field], _UINT, f"{where}.{field}")
                        weight(entry[field], f"{name}[{i}].{field}")
            else:
                _need(entry.get("rate"), _UINT, f"{where}.rate")


# --- values ---------------------------------------------------------------------------------------

def v1_limit(value: int) -> str:
    """v1 byte limits take -1 for "no limit"."""
    return str(value)


def v2_limit(value: int) -> str:
    """v2 limits spell "no limit" as max."""
    return "max" if value < 0 else str(value)


def pids_limit(value: int) -> str:
    """OCI pids.limit: 0 or -1 mean no limit."""
    return "max" if value <= 0 else str(value)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], runc's linear map (1024 -> 39)."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], runc's linear map (500 -> 4950)."""
    return 1 + ((weight - 10) * 9999) // 990


def v2_swap(swap: int, limit: int):
    """OCI memory.swap (memory + swap) -> memory.swap.max (swap alone); None when nothing to write."""
    if limit == -1 and not swap:
        return "max"  # unlimited memory with swap unset means both unlimited, as on v1
    if not swap:
        return None
    if swap == -1:
        return "max"
    return str(swap - limit)


def cpu_max(quota: int, period: int):
    """cpu.max "QUOTA PERIOD" (QUOTA max for none); a quota alone keeps the current period."""
    if not quota and not period:
        return None
    value = str(quota) if quota and quota > 0 else "max"
    return f"{value} {period}" if period else value


def throttle_files() -> dict:
    """OCI blockIO throttle field -> (v1 file, v2 io.max key)."""
    return {
        "throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
        "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
        "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
        "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops"),
    }


def rdma_line(device: str, limits: dict):
    parts = [device]
    if limits.get("hcaHandles") is not None:
        parts.append(f"hca_handle={limits['hcaHandles']}")
    if limits.get("hcaObjects") is not None:
        parts.append(f"hca_object={limits['hcaObjects']}")
    return " ".join(parts) if len(parts) > 1 else None


# --- devices --------------------------------------------------------------------------------------

MKNOD, READ, WRITE = 1, 2, 4  # the kernel's BPF_DEVCG_ACC_* bits
ALL_ACCESS = MKNOD | READ | WRITE
_ACCESS_BITS = {"m": MKNOD, "r": READ, "w": WRITE}


def access_bits(text: str) -> int:
    bits = 0
    for ch in text:
        bits |= _ACCESS_BITS[ch]
    return bits


def access_text(bits: int) -> str:
    return "".join(ch for ch, bit in (("r", READ), ("w", WRITE), ("m", MKNOD)) if bits & bit)


class DeviceRule:
    """One checked rule: `kind` is a (all), b or c; `major`/`minor` None for any."""

    __slots__ = ("allow", "kind", "major", "minor", "access")

    def __init__(self, allow: bool, kind: str, major, minor, access: int):
        self.allow, self.kind, self.major, self.minor, self.access = allow, kind, major, minor, access

    def __repr__(self) -> str:
        return f"DeviceRule({'allow' if self.allow else 'deny'} {self.line()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, DeviceRule) and self.key() + (self.allow, self.access) == \
            other.key() + (other.allow, other.access)

    def key(self) -> tuple:
        return (self.kind, self.major, self.minor)

    def line(self) -> str:
        """As devices.allow/deny take it: `c 1:3 rwm`, `a` for every device."""
        if self.kind == "a":
            return "a"
        return exception_line(self.key(), self.access)


def exception_line(key: tuple, access: int) -> str:
    kind, major, minor = key
    return f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} {access_text(access)}"


def device_rules(devices: list) -> list[DeviceRule]:
    """Check OCI `devices` entries and return them as rules, in order.

    A rule of type `a` with a number in it has no v1 spelling (the kernel
    reads any `a` rule as "every device"): it becomes a `c` and a `b` rule.
    """
    if not isinstance(devices, list):
        raise InvalidArgument(f"resources.devices must be a list, got {devices!r}")
    rules = []
    for i, entry in enumerate(devices):
        where = f"devices[{i}]"
        _need(entry, _MAP, where)
        allow = entry.get("allow")
        _need(allow, _BOOL, f"{where}.allow")
        kind = entry.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise InvalidArgument(f"resources.{where}.type must be a, b or c, got {kind!r}")
        numbers = []
        for field in ("major", "minor"):
            value = entry.get(field)
            if value is None or value == -1:
                numbers.append(None)
                continue
            _need(value, _UINT, f"{where}.{field}")
            if value > 0xFFFFFFF:
                raise InvalidArgument(f"resources.{where}.{field} is out of range: {value}")
            numbers.append(value)
        access = entry.get("access")
        if access is None or access == "":
            access = "rwm"
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise InvalidArgument(f"resources.{where}.access must be made of r, w and m, got {access!r}")
        bits = access_bits(access)
        major, minor = numbers
        if kind == "a" and (major is not None or minor is not None):
            rules.append(DeviceRule(allow, "c", major, minor, bits))
            rules.append(DeviceRule(allow, "b", major, minor, bits))
        else:
            rules.append(DeviceRule(allow, kind, major, minor, bits))
    return rules


class DeviceState:
    """A group's device policy: a default and its exceptions {(kind, major, minor): access bits}."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool = True, exceptions: dict | None = None):
        self.default_allow = default_allow
        self.exceptions = dict(exceptions or {})

    def __eq__(self, other) -> bool:
        return isinstance(other, DeviceState) and self.default_allow == other.default_allow and \
            self.exceptions == other.exceptions

    def __repr__(self) -> str:
        lines = [exception_line(k, v) for k, v in self.exceptions.items()]
        return f"DeviceState({'allow' if self.default_allow else 'deny'} all, except {lines})"

    def apply(self, rule: DeviceRule) -> None:
        if rule.kind == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        key = rule.key()
        if rule.allow != self.default_allow:
            self.exceptions[key] = self.exceptions.get(key, 0) | rule.access
        elif key in self.exceptions:
            left = self.exceptions[key] & ~rule.access
            if left:
                self.exceptions[key] = left
            else:
                del self.exceptions[key]

    def allows(self, kind: str, major: int, minor: int, access: int) -> bool:
        """Would the kernel let a process do `access` on this device (for tests and checks)."""
        for (ekind, emajor, eminor), bits in self.exceptions.items():
            if ekind != kind or emajor not in (None, major) or eminor not in (None, minor):
                continue
            if self.default_allow and access & bits:
                return False
            if not self.default_allow and not access & ~bits:
                return True
        return self.default_allow


def emulate(rules: list[DeviceRule], start: DeviceState | None = None) -> DeviceState:
    """The policy a group ends with after `rules` are written in order (fresh groups allow all)."""
    state = DeviceState(start.default_allow, start.exceptions) if start else DeviceState()
    for rule in rules:
        state.apply(rule)
    return state


def parse_devices_list(text: str) -> DeviceState:
    """v1 devices.list -> policy.  An allow-all group lists only `a *:* rwm` (its exceptions are not shown)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if any(parts[0] == "a" for parts in lines):
        return DeviceState(True)
    state = DeviceState(False)
    for kind, numbers, access in lines:
        major, minor = numbers.split(":")
        key = (kind, None if major == "*" else int(major), None if minor == "*" else int(minor))
        state.exceptions[key] = access_bits(access)
    return state


def v1_device_writes(rules: list[DeviceRule], current: DeviceState | None) -> list[tuple[str, str]]:
    """The (file, line) writes that give a v1 group the policy `rules` describe.

    A list that starts by resetting the default (`deny a`, as every engine
    sends) is the whole policy: compute it, then write only what takes the
    group from `current` to it.  Between two deny-all policies that is the
    differences, additions first, so a running container never loses a
    device it keeps (rewriting everything would deny all for a moment).
    A list that does not start with a reset is written as it is, in order,
    on top of what the group has, just as the kernel would read it.
    """
    if not rules:
        return []
    if rules[0].kind != "a":
        return [("devices.allow" if rule.allow else "devices.deny", rule.line()) for rule in rules]
    target = emulate(rules)
    if current is not None and not current.default_allow and not target.default_allow:
        writes = []
        for key, bits in target.exceptions.items():
            add = bits & ~current.exceptions.get(key, 0)
            if add:
                writes.append(("devices.allow", exception_line(key, add)))
        for key, bits in current.exceptions.items():
            drop = bits & ~target.exceptions.get(key, 0)
            if drop:
                writes.append(("devices.deny", exception_line(key, drop)))
        return writes
    writes = [("devices.allow" if target.default_allow else "devices.deny", "a")]
    against = "devices.deny" if target.default_allow else "devices.allow"
    writes.extend((against, exception_line(key, bits)) for key, bits in target.exceptions.items())
    return writes
