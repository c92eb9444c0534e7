"""A container's own mounts, read from its HostConfig as dockerd reads them.

    Binds          `-v /src:/dst[:opts]`, `-v name:/dst[:opts]`   bind mounts of host paths, volumes
    Mounts         `--mount type=bind|volume|tmpfs,…`
    Tmpfs          `--tmpfs /dst[:opts]`                         tmpfs mounts
    Config.Volumes `-v /dst`, an image's VOLUME                  anonymous volumes where nothing else is mounted

A *mount point* is one of them, checked and normalized (`MountPoint`).
`check()` makes every refusal dockerd makes at create, in its words;
`volume_plan()` lists the volumes a new container needs (a name, or "" for
an anonymous one). Once the container service has resolved them, its record
holds each as a *volume entry* (`{"Name", "Source", "Destination", "RW",
"Mode", "Anonymous", "NoCopy"}`), and the functions below take those entries
beside HostConfig: `spec_mounts()` gives the OCI mounts at start;
`inspect()` gives the `Mounts` documents of inspect and list (dockerd lists
Binds, Mounts and volumes there, not Tmpfs).
"""

from __future__ import annotations

import os
import posixpath

from ..errors import InvalidArgument
from ..volumes.local import check_name

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
    """One user mount: `kind` bind, volume or tmpfs; `data` is a tmpfs's options (comma-separated).

    A volume's `name` is "" for an anonymous one until the container service names it; `source` is
    then its mountpoint; `options` and `labels` are what a new volume gets from `--mount`."""

    __slots__ = ("kind", "source", "destination", "read_only", "propagation", "mode", "recursive", "data",
                 "name", "no_copy", "options", "labels")

    def __init__(self, kind: str, source: str, destination: str, read_only: bool, propagation: str = "",
                 mode: str = "", recursive: bool = True, data: str = "", name: str = "", no_copy: bool = False,
                 options: dict | None = None, labels: dict | None = None):
        self.kind = kind
        self.source = source
        self.destination = destination
        self.read_only = read_only
        self.propagation = propagation
        self.mode = mode
        self.recursive = recursive
        self.data = data
        self.name = name
        self.no_copy = no_copy
        self.options = options
        self.labels = labels

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
        if self.kind == "volume":
            return {"Type": "volume", "Name": self.name, "Source": self.source, "Destination": self.destination,
                    "Driver": "local", "Mode": self.mode, "RW": not self.read_only, "Propagation": ""}
        return {"Type": self.kind, "Source": self.source, "Destination": self.destination, "Mode": self.mode,
                "RW": not self.read_only,
                "Propagation": (self.propagation or DEFAULT_PROPAGATION) if self.kind == "bind" else ""}


# --- reading HostConfig -----------------------------------------------------------------------


def _clean(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def _from_bind(bind: str) -> MountPoint:
    parts = bind.split(":")
    if len(parts) == 1 and bind.startswith("/") and _clean(bind) != "/":
        return MountPoint("volume", "", _clean(bind), False)  # anonymous, as Config.Volumes
    if len(parts) < 2 or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{bind}'")
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    flags = mode.split(",") if mode else []
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config: the destination of '{bind}' must be an absolute path")
    if not source.startswith("/"):
        check_name(source)
        if _clean(dest) == "/":
            raise InvalidArgument("invalid specification: destination can't be '/'")
        no_copy = "nocopy" in flags
        return MountPoint("volume", "", _clean(dest), "ro" in flags, mode=mode or "z", name=source,
                          no_copy=no_copy)
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
        must_not("BindOptions", "TmpfsOptions")
        if source:
            check_name(source)
        options = spec.get("VolumeOptions") or {}
        driver = (options.get("DriverConfig") or {})
        if (driver.get("Name") or "local") != "local":
            raise InvalidArgument(f'create {source}: error looking up volume plugin {driver["Name"]}: '
                                  f'plugin "{driver["Name"]}" not found')
        return MountPoint("volume", "", _clean(target), read_only, mode="z", name=source,
                          no_copy=bool(options.get("NoCopy")), options=driver.get("Options") or None,
                          labels=options.get("Labels") or None)
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


def volume_plan(config: dict, host_config: dict, inherited: tuple[dict, ...] | list[dict] = ()) -> list[MountPoint]:
    """The volumes a new container needs: those of Binds and Mounts, then an anonymous one for each
    Config.Volumes path (the image's included) where nothing else, inherited entries included, is mounted."""
    points = mount_points(host_config)
    taken = {p.destination for p in points} | {e["Destination"] for e in inherited}
    plan = [p for p in points if p.kind == "volume"]
    for dest in sorted(config.get("Volumes") or {}):
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise InvalidArgument(f"invalid mount config: volume path '{dest}' must be absolute")
        if _clean(dest) == "/":
            raise InvalidArgument("invalid specification: destination can't be '/'")
        if _clean(dest) not in taken:
            taken.add(_clean(dest))
            plan.append(MountPoint("volume", "", _clean(dest), False))
    return plan


def inherit(volumes_from: list[str] | None, host_config: dict, lookup) -> list[dict]:
    """`--volumes-from CONTAINER[:ro|:rw]`: entries for the mounts of other containers, their volumes and
    binds (`"Type": "bind"`), read-only or not as the source has them unless a mode says; the new
    container's own Binds, Mounts and Tmpfs win at the same destination. `lookup(name)` gives a record."""
    own = {p.destination for p in mount_points(host_config, check_sources=False)}
    out: list[dict] = []
    for item in volumes_from or ():
        name, _, mode = str(item).partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid mode: {mode}")
        rec = lookup(name)
        engine_entries = rec.get("Engine", {}).get("Volumes") or []
        binds = [{"Type": "bind", "Source": p.source, "Destination": p.destination, "RW": not p.read_only,
                  "Mode": p.mode, "Propagation": p.propagation}
                 for p in mount_points(rec["HostConfig"], check_sources=False) if p.kind == "bind"]
        for entry in [*engine_entries, *binds]:
            if entry["Destination"] in own or any(e["Destination"] == entry["Destination"] for e in out):
                continue
            copy = dict(entry, RW=entry["RW"] if not mode else mode == "rw")
            if copy.get("Type") != "bind":
                copy["NoCopy"] = True  # already filled (or not) in the source container
            out.append(copy)
    return out


def volume_entry(point: MountPoint, name: str, source: str, anonymous: bool) -> dict:
    """What a container's record keeps of one of its volumes."""
    return {"Name": name, "Source": source, "Destination": point.destination, "RW": not point.read_only,
            "Mode": point.mode, "Anonymous": anonymous, "NoCopy": point.no_copy}


def _resolved(host_config: dict, volumes, check_sources: bool, with_tmpfs_flag: bool = True) -> list[MountPoint]:
    points = [p for p in mount_points(host_config, check_sources) if p.kind != "volume"]
    if not with_tmpfs_flag:  # mount_points puts those of Tmpfs last
        points = points[:len(points) - len(host_config.get("Tmpfs") or {})]
    for v in volumes or ():
        if v.get("Type") == "bind":  # inherited with --volumes-from
            points.append(MountPoint("bind", v["Source"], v["Destination"], not v["RW"], v.get("Propagation", ""),
                                     v.get("Mode", "")))
            continue
        points.append(MountPoint("volume", v["Source"], v["Destination"], not v["RW"], mode=v.get("Mode", ""),
                                 name=v["Name"], no_copy=bool(v.get("NoCopy"))))
    return points


def inspect(host_config: dict, volumes=()) -> list[dict]:
    """inspect's and list's `Mounts`: Binds, Mounts and volumes (dockerd leaves Tmpfs out)."""
    return [p.inspect() for p in _resolved(host_config, volumes, False, with_tmpfs_flag=False)]


def spec_mounts(host_config: dict, volumes=()) -> list[dict]:
    """The OCI mounts of the user's mount points and volumes (the caller sorts)."""
    return [p.spec() for p in _resolved(host_config, volumes, True)]


def bind_like(host_config: dict, volumes=()) -> list[MountPoint]:
    """Binds and volumes: what a stopped container's cp sees, and what may refuse its writes."""
    return [p for p in _resolved(host_config, volumes, False) if p.kind in ("bind", "volume")]


def write_refusal(host_config: dict, path: str, volumes=()) -> str:
    """Why `docker cp` may not write at container path `path`, in dockerd's words, or "": a read-only bind
    holds it (the deepest bind containing the path decides), or else the root is read-only."""
    target = _clean("/" + path)
    holder = None
    for point in bind_like(host_config, volumes):
        inside = target == point.destination or target.startswith(point.destination.rstrip("/") + "/")
        if inside and (holder is None or depth(point.destination) > depth(holder.destination)):
            holder = point
    if holder is not None:
        return "mounted volume is marked read-only" if holder.read_only else ""
    return "container rootfs is marked read-only" if host_config.get("ReadonlyRootfs") else ""


def make_bind_sources(host_config: dict) -> None:
    """dockerd makes a missing Binds source on the host at start (0755, as root); --mount's must exist."""
    for bind in host_config.get("Binds") or []:
        point = _from_bind(bind)
        if point.kind != "bind":
            continue
        source = point.source
        if not os.path.exists(source):
            os.makedirs(source, 0o755, exist_ok=True)


def depth(destination: str) -> int:
    """dockerd mounts shallower destinations first (a mount at /a comes before one at /a/b)."""
    return len(_clean(destination).split("/"))
