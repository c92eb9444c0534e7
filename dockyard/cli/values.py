"""Docker's value syntaxes for container flags, parsed and checked as the docker CLI does.

    memory         "64m", "1.5g", "512" (bytes), "1GiB"        -> bytes (go-units RAMInBytes)
    cpus           "1.5", "3/2"                                -> nano CPUs (a rational, exact)
    ulimit         "nofile=1024:2048", "nproc=100"             -> {"Name", "Hard", "Soft"}
    restart        "no", "always", "on-failure:3"              -> {"Name", "MaximumRetryCount"}
    env / label    "A=1", "A" (env: taken from our environment if set there)
    env files      KEY=VALUE lines, # comments, bare KEY looked up in our environment
    ports          "[ip:][hostPort:]containerPort[/proto]", ranges "8000-8010:80-90"
    --mount        "type=bind,source=/a,target=/b,readonly"
    -v             "/host:/ctr[:opts]", "name:/ctr", "/anonymous"
    durations      Go's "1h30m", "250ms"
    detach keys    "ctrl-p,ctrl-q", "a,b"

Each parser raises ValueError with docker's wording; the flag layer
prints it as pflag does (`invalid argument "64x" for "-m, --memory" flag:
invalid suffix: 'x'`). Nothing here does I/O except reading env files.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_WHITESPACE = " \t"


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: a size with an optional binary unit (k, m, g, t, p; b/ib optional)."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    if text[sep] != " ":
        number, suffix = text[:sep + 1], text[sep + 1:]
    else:
        number, suffix = text[:sep], text[sep + 1:]
    size = go_parse_float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    suffix = suffix.lower()
    if suffix[0] == "b":
        if len(suffix) > 1:
            raise ValueError(f"invalid suffix: '{suffix}'")
        return int(size)
    if suffix[0] not in _BINARY or (len(suffix) == 2 and suffix[1] != "b") or \
            (len(suffix) == 3 and suffix[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{suffix}'")
    return int(size * _BINARY[suffix[0]])


def go_parse_float(text: str) -> float:
    """strconv.ParseFloat's accepted forms (no spaces, no "_" between digits), with its error."""
    if text.strip() != text or not text or "_" in text:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    try:
        return float(text)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None


def go_parse_int(text: str, bits: int = 64, unsigned: bool = False) -> int:
    """strconv.ParseInt/ParseUint (base 10) with Go's error messages."""
    name = "ParseUint" if unsigned else "ParseInt"
    body = text[1:] if text[:1] in "+-" and not unsigned else text
    if not body.isdigit() or not body.isascii():
        raise ValueError(f'strconv.{name}: parsing "{text}": invalid syntax')
    value = int(text)
    low, high = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if not low <= value <= high:
        raise ValueError(f'strconv.{name}: parsing "{text}": value out of range')
    return value


def memory(text: str) -> int:
    return ram_in_bytes(text)


def memory_swap(text: str) -> int:
    """Like memory, but "-1" means unlimited swap."""
    return -1 if text == "-1" else ram_in_bytes(text)


def nano_cpus(text: str) -> int:
    """`--cpus 1.5` -> 1500000000: an exact rational number of CPUs, in billionths."""
    from fractions import Fraction

    try:
        cpus = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


ULIMIT_NAMES = frozenset({
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
    "rttime", "sigpending", "stack",
})


def ulimit(text: str) -> dict[str, Any]:
    """`nofile=1024:2048` -> {"Name": "nofile", "Hard": 2048, "Soft": 1024}; one value sets both."""
    name, eq, limits = text.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    values = limits.split(":")
    if len(values) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
    hard = go_parse_int(values[1]) if len(values) == 2 else None
    soft = go_parse_int(values[0])
    if hard is None:
        hard = soft
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def restart_policy(text: str) -> dict[str, Any]:
    """`on-failure:3` -> {"Name": "on-failure", "MaximumRetryCount": 3}; the engine checks the name."""
    if text == "":
        return {"Name": "", "MaximumRetryCount": 0}
    name, colon, count = text.partition(":")
    if colon and name == "":
        raise ValueError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = go_parse_int(count)
        except ValueError:
            raise ValueError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def env(text: str, lookup: Callable[[str], str | None] | None = None) -> str:
    """`-e A=1` as given; `-e A` takes A's value from our environment when it is set there."""
    key, eq, _ = text.partition("=")
    if key == "":
        raise ValueError(f"invalid environment variable: {text}")
    if eq:
        return text
    if lookup is None:
        import os

        lookup = os.environ.get
    value = lookup(key)
    return text if value is None else f"{key}={value}"


def label(text: str) -> str:
    key = text.partition("=")[0].lstrip(_WHITESPACE)
    if key == "":
        raise ValueError(f"invalid label '{text}': empty name")
    if any(c in key for c in _WHITESPACE):
        raise ValueError(f"label '{key}' contains whitespaces")
    return text


def read_kv_file(path: str, lookup: Callable[[str], str | None] | None) -> list[str]:
    """docker's env/label file: KEY=VALUE lines, blank lines and # comments skipped; a bare KEY
    is looked up with `lookup` (env files) and dropped when unset (or always, for label files)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ValueError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    out = []
    for number, line_bytes in enumerate(raw.splitlines(), 1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            shown = "[" + " ".join(str(b) for b in line_bytes) + "]"
            raise ValueError(f"invalid env file ({path}): invalid utf8 bytes at line {number}: {shown}") from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not key:
            raise ValueError(f"invalid env file ({path}): no variable name on line '{line}'")
        if any(c in key for c in _WHITESPACE):
            raise ValueError(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if eq:
            out.append(line)
        elif lookup is not None:
            value = lookup(line)
            if value is not None:
                out.append(f"{key}={value}")
    return out


def kv_map(items: list[str]) -> dict[str, str]:
    """["a=1", "b"] -> {"a": "1", "b": ""} (later keys win)."""
    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def normalize_capabilities(caps: list[str]) -> list[str] | None:
    """What the docker client sends: upper case, CAP_ prefixed (except ALL), unique, sorted."""
    if not caps:
        return None
    out = set()
    for cap in caps:
        cap = cap.strip().upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        out.add(cap)
    return sorted(out)


# --- durations ------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration ("1h30m", "10s", "-5m", "1.5s") -> nanoseconds, with Go's errors."""
    original = text
    sign = -1 if text.startswith("-") else 1
    rest = text[1:] if text[:1] in "+-" else text
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        number, rest = rest[:i], rest[i:]
        if not number or number == ".":
            raise ValueError(f'time: invalid duration "{original}"')
        j = 0
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        unit, rest = rest[:j], rest[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{original}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        total += float(number) * _DURATION_UNITS[unit]
    return sign * int(round(total))


# --- ports --------------------------------------------------------------------------------

_PROTOS = ("tcp", "udp", "sctp")


def _port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    start, dash, end = text.partition("-")
    low = go_parse_int(start, 16, True)
    high = go_parse_int(end, 16, True) if dash else low
    if high < low:
        raise ValueError(f"invalid range specified for port: {text}")
    return low, high


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """One `-p` value -> [("80/tcp", {"HostIp": "", "HostPort": "8080"}), ...] (nat.ParsePortSpec)."""
    parts = raw.split(":")
    if len(parts) == 1:
        ip, host_port, container_port = "", "", parts[0]
    elif len(parts) == 2:
        ip, host_port, container_port = "", parts[0], parts[1]
    elif len(parts) == 3:
        ip, host_port, container_port = parts
    else:
        ip, host_port, container_port = ":".join(parts[:-2]), parts[-2], parts[-1]
    container_port, slash, proto = container_port.partition("/")
    proto = proto if slash and proto else "tcp"
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ValueError(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        ip = ip[1:-1]
    if ip and not _is_ip(ip):
        raise ValueError(f"invalid IP address: {ip}")
    if not container_port:
        raise ValueError(f"no port specified: {raw}<empty>")
    try:
        start, end = _port_range(container_port)
    except ValueError:
        raise ValueError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _port_range(host_port)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host_port}") from None
        if (end - start) != (host_end - host_start) and end != start:
            raise ValueError(f"invalid ranges specified for container and host Ports: {container_port} and "
                             f"{host_port}")
    proto = proto.lower()
    if proto not in _PROTOS:
        raise ValueError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        binding_port = ""
        if host_port:
            binding_port = str(host_start + i)
            if start == end and host_start != host_end:
                binding_port = f"{host_start}-{host_end}"
        out.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": binding_port}))
    return out


def expose(text: str) -> list[str]:
    """One `--expose` value -> ["80/tcp", ...]."""
    if ":" in text:
        raise ValueError(f"invalid port format for --expose: {text}")
    port, _, proto = text.partition("/")
    proto = proto or "tcp"
    try:
        start, end = _port_range(port)
    except ValueError as exc:
        raise ValueError(f"invalid range format for --expose: {text}, error: {exc}") from None
    return [f"{p}/{proto}" for p in range(start, end + 1)]


# --- mounts and volumes ---------------------------------------------------------------


def _abs_if_relative(source: str) -> str:
    if not source.startswith("/") and source.startswith("."):
        import os

        return os.path.abspath(source)
    return source


def csv_fields(text: str) -> list[str]:
    import csv

    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(str(exc)) from None


def _go_bool(text: str) -> bool:
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(text)


def mount(text: str) -> dict[str, Any]:
    """One `--mount` value -> the API's Mount object (opts.MountOpt)."""
    spec: dict[str, Any] = {"Type": "volume"}
    options: dict[str, dict[str, Any]] = {}

    def section(name: str) -> dict[str, Any]:
        return options.setdefault(name, {})

    for field in csv_fields(text):
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                spec["ReadOnly"] = True
            elif key == "volume-nocopy":
                section("VolumeOptions")["NoCopy"] = True
            elif key == "bind-nonrecursive":
                section("BindOptions")["NonRecursive"] = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            spec["Type"] = value.lower()
        elif key in ("source", "src"):
            spec["Source"] = _abs_if_relative(value)
        elif key in ("target", "dst", "destination"):
            spec["Target"] = value
        elif key in ("readonly", "ro"):
            try:
                spec["ReadOnly"] = _go_bool(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "consistency":
            spec["Consistency"] = value.lower()
        elif key == "bind-propagation":
            section("BindOptions")["Propagation"] = value.lower()
        elif key == "bind-recursive":
            if value == "disabled":
                section("BindOptions")["NonRecursive"] = True
            elif value == "writable":
                section("BindOptions")["ReadOnlyNonRecursive"] = True
            elif value == "readonly":
                section("BindOptions")["ReadOnlyForceRecursive"] = True
            elif value != "enabled":
                raise ValueError(f'invalid value for {key}: {value} (must be "enabled", "disabled", "writable", '
                                 'or "readonly")')
            else:
                section("BindOptions")
        elif key == "volume-subpath":
            section("VolumeOptions")["Subpath"] = value
        elif key == "volume-nocopy":
            try:
                section("VolumeOptions")["NoCopy"] = _go_bool(value)
            except ValueError:
                raise ValueError(f"invalid value for volume-nocopy: {value}") from None
        elif key == "volume-label":
            k, _, v = value.partition("=")
            if k:
                section("VolumeOptions").setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            section("VolumeOptions").setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            if k:
                section("VolumeOptions").setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "image-subpath":
            section("ImageOptions")["Subpath"] = value
        elif key == "tmpfs-size":
            try:
                section("TmpfsOptions")["SizeBytes"] = ram_in_bytes(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                section("TmpfsOptions")["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not spec["Type"]:
        raise ValueError("type is required")
    if not spec.get("Target"):
        raise ValueError("target is required")
    for name, kind in (("VolumeOptions", "volume"), ("ImageOptions", "image"), ("BindOptions", "bind"),
                       ("TmpfsOptions", "tmpfs")):
        if name in options and spec["Type"] != kind:
            raise ValueError(f"cannot mix '{kind}-*' options with mount type '{spec['Type']}'")
    bind = options.get("BindOptions", {})
    if bind.get("ReadOnlyNonRecursive") and not spec.get("ReadOnly"):
        raise ValueError("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction")
    if bind.get("ReadOnlyForceRecursive"):
        if not spec.get("ReadOnly"):
            raise ValueError("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction")
        if bind.get("Propagation") != "rprivate":
            raise ValueError("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be "
                             "specified in conjunction")
    spec.update(options)
    return spec


def volume(text: str) -> tuple[str | None, str | None]:
    """One `-v` value -> (bind for HostConfig.Binds, or None; anonymous volume path, or None)."""
    parts = text.split(":")
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == ""):
        target = parts[-1]
        if not target:
            raise ValueError(f"invalid spec: {text}: empty section between colons")
        return None, target
    if len(parts) > 3:
        raise ValueError(f"invalid spec: {text}: too many colons")
    source, rest = parts[0], parts[1:]
    if not source or not rest[0]:
        raise ValueError(f"invalid spec: {text}: empty section between colons")
    return ":".join([_abs_if_relative(source), *rest]), None


# --- detach keys ------------------------------------------------------------------------------

_CTRL = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
         "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def detach_keys(text: str) -> bytes:
    """`ctrl-p,ctrl-q` -> b"\\x10\\x11" (moby/term ToBytes)."""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out += key.encode("latin-1", "replace")
        elif key in _CTRL:
            out.append(_CTRL.index(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
