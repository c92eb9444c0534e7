"""A container's own mounts, read from its HostConfig as dockerd reads them.

    Binds   `-v /src:/dst[:opts]`        bind mounts of host paths (named volumes come later)
    Mounts  `--mount type=…,…`           bind and tmpfs mounts (type volume: later)
    Tmpfs   `--tmpfs /dst[:opts]`         tmpfs mounts

A *mount point* is one of them, checked and normalized (`MountPoint`).
`check()` makes every refusal dockerd makes at create, in its words;
`spec_mounts()` gives the OCI mounts at start; `inspect()` gives the
`Mounts` documents of inspect and list (dockerd lists Binds and Mounts there,
not Tmpfs).
"""

from __future__ import annotations

import os
import posixpath

from ..errors import InvalidArgument, NotSupported

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
# dockerd's tmpfs options before the user's (its MergeTmpfsOptions lets later ones win).
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev", DEFAULT_PROPAGATION)

# Mount flags as moby's mount package knows them: each option, and the flag it sets or clears
# (options sharing a key collide: the later one wins); all propagations share one key.
_TMPFS_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind",
    "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime",
    "nostrictatime": "strictatime",
    **{p: "propagation" for p in (*PROPAGATIONS, "unbindable", "runbindable")},
}
_TMPFS_DATA_KEYS = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


class MountPoint:
    """One user mount: `kind` bind or tmpfs; `data` is a tmpfs's options (comma-separated)."""

    __slots__ = ("kind", "source", "destination", "read_only", "propagation", "mode", "recursive", "data")

    def __init__(self, kind: str, source: str, destination: str, read_only: bool, propagation: str = "",
                 mode: str = "", recursive: bool = True, data: str = ""):
        self.kind = kind
        self.source = source
        self.destination = destination
        self.read_only = read_only
        self.propagation = propagation
        self.mode = mode
        self.recursive = recursive
        self.data = data

    def spec(self) -> dict:
        if self.kind == "tmpfs":
            options = merge_tmpfs_options([*TMPFS_DEFAULTS, *(o for o in self.data.split(",") if o)])
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
        options = ["rbind" if self.recursive else "bind"]
        if self.read_only:
            options.append("ro")
        options.append(self.propagation or DEFAULT_PROPAGATION)
        return {"destination": self.destination, "type": "bind", "source": self.source, "options": options}

    def inspect(self) -> dict:
        return {"Type": self.kind, "Source": self.source, "Destination": self.destination, "Mode": self.mode,
                "RW": not self.read_only,
                "Propagation": (self.propagation or DEFAULT_PROPAGATION) if self.kind == "bind" else ""}


# --- reading HostConfig -----------------------------------------------------------------------


def _clean(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def _from_bind(bind: str) -> MountPoint:
    parts = bind.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{bind}'")
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    flags = mode.split(",") if mode else []
    if not source.startswith("/"):
        raise NotSupported(f"named volumes are not supported yet: '{bind}'",
                           hint="bind a host directory instead: -v /host/path:/container/path")
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config: the destination of '{bind}' must be an absolute path")
    propagation = next((f for f in flags if f in PROPAGATIONS), "")
    return MountPoint("bind", source, _clean(dest), "ro" in flags, propagation, mode)


def _from_mount(spec: dict, check_source: bool) -> MountPoint:
    """One HostConfig.Mounts entry, checked as dockerd's ValidateMountConfig does."""
    if not isinstance(spec, dict):
        raise InvalidArgument("invalid mount config: expected an object")
    kind = spec.get("Type") or ""

    def bad(reason: str) -> InvalidArgument:
        return InvalidArgument(f'invalid mount config for type "{kind}": {reason}')

    def must_not(*fields: str) -> None:
        for field in fields:
            if spec.get(field):
                raise bad(f"field {field} must not be specified")

    target = spec.get("Target") or ""
    source = spec.get("Source") or ""
    if kind not in ("bind", "tmpfs", "volume"):
        raise bad("mount type unknown")
    if not target:
        raise bad("field Target must not be empty")
    if not target.startswith("/"):
        raise bad(f"invalid mount path: '{target}' mount path must be absolute")
    if _clean(target) == "/":
        raise bad("invalid specification: destination can't be '/'")
    read_only = bool(spec.get("ReadOnly"))
    if kind == "volume":
        raise NotSupported("volumes are not supported yet: --mount type=volume needs the volume store, "
                           "which comes with the volumes issue",
                           hint="bind a host directory instead: --mount type=bind,source=/host/path,target=/path")
    if kind == "tmpfs":
        if source:
            raise bad("field Source must not be specified")
        must_not("BindOptions", "VolumeOptions")
        return MountPoint("tmpfs", "", _clean(target), read_only, data=tmpfs_data(spec.get("TmpfsOptions"),
                                                                                   read_only))
    if not source:
        raise bad("field Source must not be empty")
    must_not("VolumeOptions")
    if not source.startswith("/"):
        raise bad(f"invalid mount path: '{source}' mount path must be absolute")
    options = spec.get("BindOptions") or {}
    propagation = options.get("Propagation") or ""
    if propagation and propagation not in PROPAGATIONS:
        raise bad(f"invalid propagation mode: {propagation}")
    if check_source and not os.path.exists(source):
        raise bad(f"bind source path does not exist: {source}")
    return MountPoint("bind", source, _clean(target), read_only, propagation,
                      recursive=not options.get("NonRecursive"))


def tmpfs_data(options: dict | None, read_only: bool) -> str:
    """dockerd's ConvertTmpfsOptions: `ro`, `mode=` (octal), `size=` with the largest unit dividing it."""
    out = ["ro"] if read_only else []
    options = options or {}
    if options.get("Mode"):
        out.append(f"mode={int(options['Mode']):o}")
    size = int(options.get("SizeBytes") or 0)
    if size:
        suffix = ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        out.append(f"size={size}{suffix}")
    return ",".join(out)


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """moby's MergeTmpfsOptions: later options win over earlier ones of the same flag or key."""
    seen: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = _TMPFS_FLAG_KEYS.get(option)
        if key is None:
            name, eq, _ = option.partition("=")
            if not eq or name not in _TMPFS_DATA_KEYS:
                quoted = " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                  for p in option.split("=", 1))
                raise InvalidArgument(f"invalid tmpfs option [{quoted}]")
            key = "=" + name
        if key not in seen:
            seen.add(key)
            out.insert(0, option)
    return out


def mount_points(host_config: dict, check_sources: bool = True) -> list[MountPoint]:
    """Binds, then Mounts, then Tmpfs; refused (dockerd's words) when one is bad or a destination repeats.

    A missing source is refused for Mounts (dockerd makes it for Binds: `make_bind_sources`)."""
    points: list[MountPoint] = []
    taken: set[str] = set()
    tmpfs = host_config.get("Tmpfs") or {}
    for bind in host_config.get("Binds") or []:
        point = _from_bind(bind)
        if point.destination in taken or point.destination in tmpfs:
            raise InvalidArgument(f"Duplicate mount point: {point.destination}")
        taken.add(point.destination)
        points.append(point)
    for spec in host_config.get("Mounts") or []:
        point = _from_mount(spec, check_sources)
        if point.destination in taken:
            raise InvalidArgument(f"Duplicate mount point: {spec.get('Target')}")
        taken.add(point.destination)
        points.append(point)
    for dest, data in tmpfs.items():
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
        if _clean(dest) == "/":
            raise InvalidArgument("invalid specification: destination can't be '/'")
        points.append(MountPoint("tmpfs", "", _clean(dest), False, data=data or ""))
    return points


def check(host_config: dict) -> None:
    mount_points(host_config)


def inspect(host_config: dict) -> list[dict]:
    """inspect's and list's `Mounts`: Binds and Mounts (dockerd leaves Tmpfs out)."""
    points = mount_points(host_config, check_sources=False)
    tmpfs = host_config.get("Tmpfs") or {}
    return [p.inspect() for p in points[:len(points) - len(tmpfs)]]


def spec_mounts(host_config: dict) -> list[dict]:
    """The OCI mounts of the user's mount points, in HostConfig order (the caller sorts)."""
    return [p.spec() for p in mount_points(host_config)]


def write_refusal(host_config: dict, path: str) -> str:
    """Why `docker cp` may not write at container path `path`, in dockerd's words, or "": a read-only bind
    holds it (the deepest bind containing the path decides), or else the root is read-only."""
    target = _clean("/" + path)
    holder = None
    for point in mount_points(host_config, check_sources=False):
        inside = target == point.destination or target.startswith(point.destination.rstrip("/") + "/")
        if point.kind == "bind" and inside and (holder is None or depth(point.destination) > depth(holder.destination)):
            holder = point
    if holder is not None:
        return "mounted volume is marked read-only" if holder.read_only else ""
    return "container rootfs is marked read-only" if host_config.get("ReadonlyRootfs") else ""


def make_bind_sources(host_config: dict) -> None:
    """dockerd makes a missing Binds source on the host at start (0755, as root); --mount's must exist."""
    for bind in host_config.get("Binds") or []:
        source = _from_bind(bind).source
        if not os.path.exists(source):
            os.makedirs(source, 0o755, exist_ok=True)


def depth(destination: str) -> int:
    """dockerd mounts shallower destinations first (a mount at /a comes before one at /a/b)."""
    return len(_clean(destination).split("/"))
