"""A container's configuration at create time: checked, merged with its image's, defaults filled.

Clients send two documents (`POST /containers/create`): `Config` (what runs:
Cmd, Env, User, Tty…) and `HostConfig` (how: limits, restart policy, network,
log options…). The engine stores both as received, after this module has
  - refused what cannot work, with dockerd's wording (400 before anything exists),
  - merged the image's defaults into Config (Env, Cmd/Entrypoint, WorkingDir,
    User, Labels, ExposedPorts, Volumes, StopSignal) the way dockerd does,
  - filled HostConfig's defaults the way inspect shows them (LogConfig
    json-file, NetworkMode default, RestartPolicy no, ShmSize 64 MiB…).
They stay Docker documents because `inspect` must echo them and compose
compares them; everything else in the engine reads them through
`ocispec` (the runtime spec) and `containers` (lifecycle).

Pure functions: no I/O except counting the host's CPUs.
"""

from __future__ import annotations

import os
import re

from ..errors import InvalidArgument, NotSupported
from . import mounts, ocispec
from .logs import log_options
from .signals import signal_number

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MIN_MEMORY = 6 * 1024 * 1024
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
RUNTIMES = {"dockyard-runtime": "dockyard-runtime", "dockyard": "dockyard-runtime", "runc": "runc"}
DEFAULT_RUNTIME = "dockyard-runtime"

CONFIG_DEFAULTS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}

HOST_CONFIG_DEFAULTS = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": None, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
    "CgroupnsMode": "host", "Dns": None, "DnsOptions": None, "DnsSearch": None, "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
    "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
    "UTSMode": "", "UsernsMode": "", "ShmSize": ocispec.DEFAULT_SHM_SIZE, "Runtime": "",
    "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
    "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": None, "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0,
    "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}


def _strings(value, field: str) -> list[str] | None:
    """A Docker strslice: null, a string (one element) or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidArgument(f"invalid {field}: expected a string or a list of strings")


def check_name(name: str) -> str:
    """A container name as given (`web` or `/web`) -> its stored form `/web`."""
    if not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except OSError:
        return list(range(os.cpu_count() or 1))


def parse_cpuset(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidArgument(f"Invalid value {text} for cpuset cpus")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise InvalidArgument(f"Invalid value {text} for cpuset cpus")
        cpus.update(range(first, last + 1))
    return cpus


def _cpu_ranges(cpus: list[int]) -> str:
    if not cpus:
        return ""
    ranges, start, prev = [], cpus[0], cpus[0]
    for cpu in cpus[1:] + [None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(ranges)


def check_resources(hc: dict) -> None:
    """dockerd's checks of the limits, with its messages."""
    for key in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                "BlkioWeight", "ShmSize", "OomScoreAdj"):
        value = hc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgument(f"invalid {key}: {value!r} is not an integer")
    memory = hc.get("Memory") or 0
    swap = hc.get("MemorySwap") or 0
    if memory < 0:
        raise InvalidArgument(f"invalid memory limit {memory}: must be positive")
    if 0 < memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and memory == 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if swap < -1:
        raise InvalidArgument(f"invalid memory swap limit {swap}")
    reservation = hc.get("MemoryReservation") or 0
    if memory > 0 and reservation > memory:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano = hc.get("NanoCpus") or 0
    ncpu = len(_cpus())
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if nano and (hc.get("CpuPeriod") or hc.get("CpuQuota")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if (hc.get("CpuShares") or 0) < 0:
        raise InvalidArgument("invalid CPU shares: must be positive")
    if hc.get("CpusetCpus"):
        wanted = parse_cpuset(hc["CpusetCpus"])
        available = _cpus()
        missing = sorted(wanted - set(available))
        if missing:
            raise InvalidArgument(f"Requested CPUs are not available - requested {hc['CpusetCpus']}, "
                                  f"available: {_cpu_ranges(available)}")
    if hc.get("ShmSize") is not None and hc["ShmSize"] < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    score = hc.get("OomScoreAdj") or 0
    if not -1000 <= score <= 1000:
        raise InvalidArgument(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    pids = hc.get("PidsLimit")
    if pids is not None and not isinstance(pids, int):
        raise InvalidArgument(f"invalid PidsLimit: {pids!r}")
    blkio = hc.get("BlkioWeight") or 0
    if blkio and not 10 <= blkio <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")


def check_restart_policy(hc: dict) -> None:
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    retries = policy.get("MaximumRetryCount") or 0
    if retries < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if hc.get("AutoRemove") and name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")


def runtime_name(hc: dict, default: str = DEFAULT_RUNTIME) -> str:
    name = hc.get("Runtime") or default
    if name not in RUNTIMES:
        raise InvalidArgument(f"Unknown runtime specified {name}")
    return RUNTIMES[name]


def normalize(body: dict, image_config: dict, default_runtime: str = DEFAULT_RUNTIME) -> tuple[dict, dict]:
    """(Config, HostConfig) for a create request, merged with `image_config` (the image's `config`)."""
    if not isinstance(body, dict):
        raise InvalidArgument("config cannot be empty in order to create a container")
    hc_in = body.get("HostConfig") or {}
    if not isinstance(hc_in, dict):
        raise InvalidArgument("invalid HostConfig: expected an object")
    config = {key: body.get(key, default) for key, default in CONFIG_DEFAULTS.items()}
    for key, value in body.items():
        if key not in config and key not in ("HostConfig", "NetworkingConfig"):
            config[key] = value
    for key in ("Cmd", "Entrypoint", "Env"):
        config[key] = _strings(body.get(key), key)
    if config["Env"] is not None:
        for entry in config["Env"]:
            if entry.split("=", 1)[0] == "":
                raise InvalidArgument(f"invalid environment variable: {entry}")
    merge_image_config(config, image_config or {})
    hc = dict(HOST_CONFIG_DEFAULTS)
    for key, value in hc_in.items():
        if value is not None or key not in hc:
            hc[key] = value
    log = hc.get("LogConfig") or {}
    hc["LogConfig"] = {"Type": log.get("Type") or "json-file", "Config": log.get("Config") or {}}
    hc["NetworkMode"] = hc.get("NetworkMode") or "default"
    policy = hc.get("RestartPolicy") or {}
    hc["RestartPolicy"] = {"Name": policy.get("Name") or "no", "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    hc["ShmSize"] = hc.get("ShmSize") or ocispec.DEFAULT_SHM_SIZE
    hc["ConsoleSize"] = hc.get("ConsoleSize") or [0, 0]
    hc["Runtime"] = runtime_name(hc, default_runtime)
    _fill_in_defaults(hc)
    check(config, hc)
    return config, hc


def _fill_in_defaults(hc: dict) -> None:
    """What dockerd writes into a new container's HostConfig (inspect shows it; compose compares it)."""
    hc["IpcMode"] = hc.get("IpcMode") or "private"
    hc["CgroupnsMode"] = hc.get("CgroupnsMode") or default_cgroupns_mode()
    if hc["CgroupnsMode"] not in ("host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {hc['CgroupnsMode']}")
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None  # the docker CLI's "unset"
    if isinstance(hc.get("PidsLimit"), int) and hc["PidsLimit"] <= 0:
        hc["PidsLimit"] = None  # 0 and -1 both mean unlimited
    if isinstance(hc.get("Memory"), int) and hc["Memory"] > 0 and not hc.get("MemorySwap") and swap_accounting():
        hc["MemorySwap"] = 2 * hc["Memory"]  # as much swap as memory
    if hc.get("Privileged"):
        if "label=disable" not in (hc.get("SecurityOpt") or []):
            hc["SecurityOpt"] = [*(hc.get("SecurityOpt") or []), "label=disable"]
    else:
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(ocispec.MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(ocispec.READONLY_PATHS)
    if hc.get("Init") is None:
        hc.pop("Init", None)  # dockerd leaves it out unless given


def default_cgroupns_mode() -> str:
    """dockerd's default: the host's cgroup namespace on cgroup v1 hosts, a private one on pure v2."""
    from ..cgroups import mode

    return "private" if mode() == "v2" else "host"


def swap_accounting() -> bool:
    """Whether memory+swap can be limited here (v1: memory.memsw.*, v2: memory.swap.max)."""
    from ..cgroups import mode

    if mode() == "v2":
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")

def merge_image_config(config: dict, image: dict) -> None:
    """dockerd's merge of the image's defaults under the container's Config."""
    # The user's variables first, then the image's they do not set (dockerd's runconfig merge).
    env = list(config.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    config["Env"] = env or None
    if not config.get("Entrypoint"):
        if not config.get("Cmd"):
            config["Cmd"] = image.get("Cmd")
        if config.get("Entrypoint") is None:
            config["Entrypoint"] = image.get("Entrypoint")
    if config.get("Entrypoint") in ([], [""]):
        config["Entrypoint"] = None
    for key in ("WorkingDir", "User", "StopSignal", "Domainname"):
        if not config.get(key) and image.get(key):
            config[key] = image[key]
    labels = dict(image.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    config["Labels"] = labels
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(image.get(key) or {})
        merged.update(config.get(key) or {})
        config[key] = merged or None
    # Fields dockerd leaves out when unset (Go's omitempty); Volumes it shows as null.
    for key in ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
                "Shell"):
        if key in config and not config[key]:
            del config[key]
    if "StopTimeout" in config and config["StopTimeout"] is None:
        del config["StopTimeout"]
    if image.get("OnBuild") and not config.get("OnBuild"):
        config["OnBuild"] = image["OnBuild"]
    if not config.get("Cmd") and not config.get("Entrypoint"):
        raise InvalidArgument("No command specified")


def check(config: dict, hc: dict) -> None:
    """Everything that can be refused before the container exists."""
    check_resources(hc)
    check_restart_policy(hc)
    log_options(hc.get("LogConfig"))
    ocispec.network_mode(hc)
    ocispec.capabilities(hc)
    mounts.check(hc)
    ocispec.rlimits(hc)
    ocispec.security_options(hc)
    if hc.get("Init") and not ocispec.init_binary():
        raise NotSupported("--init needs tini on the host (Debian package tini: /usr/bin/tini-static)")
    if config.get("StopSignal"):
        signal_number(config["StopSignal"])
    if config.get("WorkingDir") and not str(config["WorkingDir"]).startswith("/"):
        raise InvalidArgument(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an "
                              "absolute path")
    if config.get("WorkingDir"):
        config["WorkingDir"] = clean_path(config["WorkingDir"])  # dockerd keeps it cleaned: inspect shows it so


def clean_path(path: str) -> str:
    """Go's filepath.Clean for an absolute path (posixpath keeps a leading `//`, Go does not)."""
    import posixpath

    return "/" + posixpath.normpath(path).lstrip("/")
