"""A container's OCI runtime spec (config.json), built from its Docker configuration.

Input: the container's `Config` and `HostConfig` documents as the Engine API
defines them (stored as the client sent them, with the image's defaults
merged in at create time), the container's paths, and its root filesystem
(for user and group names).  Output: the spec dict the runtime reads.

Docker's defaults, as the peer dockerd writes them (tests compare):
  capabilities  CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
                SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE
                (bounding, effective, permitted), adjusted by CapAdd/CapDrop
  mounts        /proc, /dev (tmpfs), /dev/pts, /sys (ro), /sys/fs/cgroup (ro),
                /dev/mqueue, /dev/shm (64 MiB), then the engine's files:
                /etc/resolv.conf, /etc/hostname, /etc/hosts bound from the
                container's directory
  masked paths  /proc/asound /proc/acpi /proc/kcore /proc/keys ... /sys/firmware
  read-only     /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger
  seccomp       seccomp_default.profile(the container's capabilities)
  devices       deny all, then the usual character devices
  namespaces    mount, network (unless --network host), uts, pid, ipc
  hostname      the short container id (Config.Hostname when given)
`--privileged` lifts all of that: every capability, no seccomp filter, no
masked paths, /sys and cgroups writable, every host device.
"""

from __future__ import annotations

import os

from ..errors import InvalidArgument, NotSupported
from . import mounts as user_mounts
from . import seccomp_default

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20
# Where `--init` puts the init binary inside the container (docker's path).
INIT_PATH = "/sbin/docker-init"
# The character devices every container may use (the device cgroup's allow list).
ALLOWED_DEVICES = ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
FUSE = (10, 229)
CPU_PERIOD = 100_000

RLIMIT_NAMES = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}


class Paths:
    """Where a container's engine-managed files are (host paths)."""

    __slots__ = ("rootfs", "hosts", "hostname", "resolv_conf")

    def __init__(self, rootfs: str, hosts: str, hostname: str, resolv_conf: str):
        self.rootfs = rootfs
        self.hosts = hosts
        self.hostname = hostname
        self.resolv_conf = resolv_conf


# --- users ---------------------------------------------------------------------------------


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    from ..runtime.rootfs import secure_join

    try:
        with open(secure_join(rootfs, "/etc/" + name), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: str, spec: str) -> dict:
    """`user[:group]` (names or numbers) -> the OCI process.user, with names from the image.

    Like docker: a name must exist in the image's /etc/passwd (or group), a
    number need not; supplementary groups are the user's memberships in
    /etc/group.
    """
    user, _, group = (spec or "").partition(":")
    user = user or "0"  # libcontainer's default: uid 0 as a number, so an image without /etc/passwd runs too
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid = gid = None
    username = None
    for entry in passwd:
        if len(entry) >= 4 and (entry[0] == user or (user.isdigit() and entry[2] == user)):
            username, uid, gid = entry[0], int(entry[2]), int(entry[3])
            break
    if uid is None:
        if not user.isdigit():
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = int(user), 0
    if group:
        for entry in groups:
            if len(entry) >= 3 and (entry[0] == group or (group.isdigit() and entry[2] == group)):
                gid = int(entry[2])
                break
        else:
            if not group.isdigit():
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    additional = [gid]
    if username is not None:
        for entry in groups:
            if len(entry) >= 4 and username in entry[3].split(",") and int(entry[2]) not in additional:
                additional.append(int(entry[2]))
    return {"uid": uid, "gid": gid, "additionalGids": additional}


# --- capabilities --------------------------------------------------------------------------


def _cap_name(name: str) -> str:
    """dockerd's NormalizeLegacyCapabilities: upper case, `CAP_` prefixed; `ALL` stays itself."""
    key = name.upper()
    return key if key == "ALL" or key.startswith("CAP_") else "CAP_" + key


def capabilities(host_config: dict) -> list[str]:
    """The container's capability set: Docker's defaults with CapAdd and CapDrop applied ("ALL" allowed)."""
    from ..linux.caps import NAMES, last_cap

    every = list(NAMES[:last_cap() + 1])
    if host_config.get("Privileged"):
        # Every capability this engine holds: asking for more fails in capset (some
        # hosts, this VM among them, run the engine without a few).
        bounding = _own_bounding_set()
        return [c for i, c in enumerate(every) if bounding >> i & 1]
    adds = [_cap_name(c) for c in host_config.get("CapAdd") or []]
    drops = [_cap_name(c) for c in host_config.get("CapDrop") or []]
    for field, names in (("CapAdd", adds), ("CapDrop", drops)):
        for name in names:
            if name != "ALL" and name not in NAMES:
                raise InvalidArgument(f'invalid {field}: unknown capability: "{name}"')
    caps = list(every) if "ALL" in adds else list(DEFAULT_CAPS)
    if "ALL" in drops:
        caps = []
    for name in adds:
        if name != "ALL" and name not in caps and name not in drops:
            caps.append(name)
    return [c for c in caps if c not in drops]


def _own_bounding_set() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << 64) - 1


# --- the spec ------------------------------------------------------------------------------


def _default_mounts(host_config: dict, privileged: bool) -> list[dict]:
    shm = host_config.get("ShmSize") or DEFAULT_SHM_SIZE
    ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*(ro or ["rw"]), "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]


def rlimits(host_config: dict) -> list[dict]:
    out = []
    for ulimit in host_config.get("Ulimits") or []:
        name = str(ulimit.get("Name", "")).lower()
        if name not in RLIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        out.append({"type": RLIMIT_NAMES[name], "hard": int(ulimit.get("Hard", 0)),
                    "soft": int(ulimit.get("Soft", 0))})
    return out


def resources(host_config: dict, privileged: bool) -> dict:
    """HostConfig's limits as OCI LinuxResources."""
    devices: list[dict] = [{"allow": False, "access": "rwm"}]
    if privileged:
        devices = [{"allow": True, "access": "rwm"}]
    else:
        devices += [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
                    for ma, mi in ALLOWED_DEVICES]
        devices.append({"allow": False, "type": "c", "major": FUSE[0], "minor": FUSE[1], "access": "rwm"})
    out: dict = {"devices": devices}
    memory: dict = {}
    limit = host_config.get("Memory") or 0
    if limit > 0:
        memory["limit"] = limit
        swap = host_config.get("MemorySwap") or 0
        if swap == 0:
            memory["swap"] = 2 * limit  # docker: as much swap as memory by default
        elif swap > 0:
            memory["swap"] = swap
        else:
            memory["swap"] = -1
    if host_config.get("MemoryReservation"):
        memory["reservation"] = host_config["MemoryReservation"]
    if host_config.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    swappiness = host_config.get("MemorySwappiness")
    if isinstance(swappiness, int) and swappiness >= 0:
        memory["swappiness"] = swappiness
    if memory:
        out["memory"] = memory
    cpu: dict = {}
    if host_config.get("CpuShares"):
        cpu["shares"] = host_config["CpuShares"]
    nano = host_config.get("NanoCpus") or 0
    if nano:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = nano * CPU_PERIOD // 1_000_000_000
    else:
        if host_config.get("CpuPeriod"):
            cpu["period"] = host_config["CpuPeriod"]
        if host_config.get("CpuQuota"):
            cpu["quota"] = host_config["CpuQuota"]
    if host_config.get("CpusetCpus"):
        cpu["cpus"] = host_config["CpusetCpus"]
    if host_config.get("CpusetMems"):
        cpu["mems"] = host_config["CpusetMems"]
    if cpu:
        out["cpu"] = cpu
    pids = host_config.get("PidsLimit")
    if pids and pids > 0:
        out["pids"] = {"limit": pids}
    if host_config.get("BlkioWeight"):
        out["blockIO"] = {"weight": host_config["BlkioWeight"]}
    return out


def _host_devices() -> list[dict]:
    """Every device node under the host's /dev, for --privileged (as docker does)."""
    import stat

    out = []
    for directory, dirs, names in os.walk("/dev"):
        dirs[:] = [d for d in dirs if d not in ("pts", "shm", "mqueue", "fd")]
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            if path in ("/dev/console", "/dev/ptmx") or path.startswith("/dev/tty"):
                continue
            out.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid})
    return out


def security_options(host_config: dict) -> tuple[bool, str]:
    """HostConfig.SecurityOpt -> (no_new_privileges, seccomp profile name)."""
    no_new_privileges = False
    seccomp_profile = "default"
    for opt in host_config.get("SecurityOpt") or []:
        opt = str(opt)
        sep = "=" if "=" in opt else ":"
        key, has_value, value = opt.partition(sep)
        if key == "no-new-privileges":
            no_new_privileges = value.lower() in ("", "true") if has_value else True
        elif key == "seccomp":
            if value not in ("default", "unconfined"):
                raise NotSupported(f"seccomp profile {value!r}: only 'default' and 'unconfined' are supported")
            seccomp_profile = value
        elif key in ("apparmor", "label"):
            continue  # no LSM on this engine: accepted and ignored, as docker does on a host without one
        else:
            raise InvalidArgument(f"Invalid --security-opt: {opt!r}")
    return no_new_privileges, seccomp_profile


# Debian's tini (docker's own docker-init is tini too); the static build works in any image.
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def init_binary() -> str:
    for path in INIT_BINARIES:
        if os.access(path, os.X_OK):
            return path
    return ""


def network_mode(host_config: dict) -> str:
    mode = host_config.get("NetworkMode") or "default"
    if mode.startswith("container:"):
        raise NotSupported("joining another container's network (--network container:…) is not supported yet")
    return mode


def environment(config: dict, tty: bool, hostname: str, extra: list[str] | tuple = ()) -> list[str]:
    """dockerd's process environment: PATH, HOSTNAME (and TERM with a TTY), then Config.Env and an exec's
    own Env, each replacing a variable in place or appended (the runtime adds HOME last)."""
    env = ["PATH=" + DEFAULT_PATH, "HOSTNAME=" + hostname]
    if tty:
        env.append("TERM=xterm")
    return replace_or_append(replace_or_append(env, config.get("Env") or []), extra)


def replace_or_append(env: list[str], overrides) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: `K=V` replaces K where `env` has it, else is appended; a bare `K`
    removes it."""
    env = list(env)
    where = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for value in overrides:
        if "=" not in value:
            if value in where:
                env[where[value]] = ""
            continue
        index = where.get(value.split("=", 1)[0])
        if index is None:
            env.append(value)
        else:
            env[index] = value
    return [e for e in env if e]


def build(cid: str, config: dict, host_config: dict, paths: Paths, cgroup_parent: str = "/dockyard",
          volumes=(), netns: str | None = None) -> dict:
    """The OCI spec for a container (see the module docstring for what Docker puts in it);
    `volumes` are the volume entries of its record (see mounts.py), `netns` the network namespace the
    engine made for it (bridge networks), else a new one is made (none) or the host's is used."""
    privileged = bool(host_config.get("Privileged"))
    tty = bool(config.get("Tty"))
    entrypoint = list(config.get("Entrypoint") or [])
    args = entrypoint + list(config.get("Cmd") or [])
    if not args:
        raise InvalidArgument("No command specified")
    mode = network_mode(host_config)
    hostname = config.get("Hostname") or cid[:12]
    env = environment(config, tty, hostname)
    if host_config.get("Init"):
        args = [INIT_PATH, "--"] + args
    caps = capabilities(host_config)
    process: dict = {
        "terminal": tty,
        "user": resolve_user(paths.rootfs, config.get("User") or ""),
        "args": args,
        "env": env,
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "oomScoreAdj": host_config.get("OomScoreAdj") or 0,
    }
    if tty:
        size = host_config.get("ConsoleSize") or [0, 0]
        if size and len(size) == 2 and size[0] and size[1]:
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    limits = rlimits(host_config)
    if limits:
        process["rlimits"] = limits
    no_new_privileges, seccomp_profile = security_options(host_config)
    if no_new_privileges:
        process["noNewPrivileges"] = True

    own = user_mounts.spec_mounts(host_config, volumes)
    user_dests = {m["destination"] for m in own}
    for dest, source in (("/etc/resolv.conf", paths.resolv_conf), ("/etc/hostname", paths.hostname),
                         ("/etc/hosts", paths.hosts)):
        if dest not in user_dests:
            own.append({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "rprivate"]})
    # As dockerd: a user's mount replaces the default one at its destination (--tmpfs /dev/shm…), and
    # the container's own mounts go shallowest first, so /a is mounted before /a/b.
    mounts = [m for m in _default_mounts(host_config, privileged) if m["destination"] not in user_dests]
    mounts += sorted(own, key=lambda m: user_mounts.depth(m["destination"]))
    if host_config.get("Init"):
        binary = init_binary()
        if not binary:
            raise NotSupported("--init needs tini on the host (Debian package tini: /usr/bin/tini-static)")
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": binary,
                       "options": ["bind", "ro"]})

    namespaces = [{"type": "mount"}]
    if mode != "host":
        namespaces.append({"type": "network", "path": netns} if netns else {"type": "network"})
    namespaces += [{"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]
    if host_config.get("CgroupnsMode") == "private":
        namespaces.append({"type": "cgroup"})
    sysctl = {}
    if mode != "host":
        sysctl = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
    sysctl.update(host_config.get("Sysctls") or {})
    linux: dict = {
        "sysctl": sysctl,
        "resources": resources(host_config, privileged),
        "cgroupsPath": f"{cgroup_parent}/{cid}",
        "namespaces": namespaces,
    }
    if not privileged:
        masked, readonly = host_config.get("MaskedPaths"), host_config.get("ReadonlyPaths")
        linux["maskedPaths"] = list(MASKED_PATHS if masked is None else masked)
        linux["readonlyPaths"] = list(READONLY_PATHS if readonly is None else readonly)
        if seccomp_profile == "default":
            linux["seccomp"] = seccomp_default.profile(set(caps))
    else:
        linux["devices"] = _host_devices()
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": paths.rootfs, "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    return spec
