"""`run` and `create`: docker's container flags -> the Engine API's create body, and run's call order.

`dockyard run --rm bb true` is the benchmarked command, so this module keeps
to cheap imports: flag values are checked by `values` only for the flags
given, and terminals (termios) and the pull path (image references) load
only when used.

run, as the docker CLI does it (Engine API reference §11):

    C0  POST /containers/create               (404 -> pull, create again)
    C1  POST /containers/{id}/attach           hijacked, before the start; no stdin: shut for writing
    C0  POST /containers/{id}/wait?condition=removed|next-exit   headers only, for now
    C2  POST /containers/{id}/start            (-t: resize to our terminal, then on SIGWINCH)
        C1 output until the engine closes it, then C0's body: the exit status

Exit statuses: the container's own; 125 when the engine (or a flag) fails;
126 and 127 when the command cannot be invoked or is not found. Errors read
`dockyard: <message>` plus a pointer to --help, where docker says `docker:`.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli import values
from dockyard.cli.flags import BOOL, LIST, PROG, STRING, Command, Flag
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli


def _attach_stream(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return lowered


def _int64(text: str) -> int:
    return values.go_parse_int(text)


def _int32(text: str) -> int:
    return values.go_parse_int(text, 32)


def _uint16(text: str) -> int:
    return values.go_parse_int(text, 16, unsigned=True)


def _uint64(text: str) -> int:
    return values.go_parse_int(text, 64, unsigned=True)


def _network(text: str) -> dict[str, Any]:
    """`--network name` or the long form `name=n,alias=a,ip=...` (opts.NetworkOpt)."""
    attachment: dict[str, Any] = {"Target": text, "Aliases": [], "DriverOpts": None, "IPv4Address": "",
                                  "IPv6Address": "", "LinkLocalIPs": [], "MacAddress": "", "GwPriority": 0}
    if not _long_syntax(text):
        return attachment
    attachment["Target"] = ""
    for field in values.csv_fields(text):
        key, eq, value = field.lower().partition("=")
        if not eq or not key:
            raise ValueError(f"invalid field {field}")
        key, value = key.strip(), value.strip()
        if key == "name":
            attachment["Target"] = value
        elif key == "alias":
            attachment["Aliases"].append(value)
        elif key == "ip":
            attachment["IPv4Address"] = value
        elif key == "ip6":
            attachment["IPv6Address"] = value
        elif key == "mac-address":
            attachment["MacAddress"] = value
        elif key == "link-local-ip":
            attachment["LinkLocalIPs"].append(value)
        elif key == "driver-opt":
            k, eq2, v = value.partition("=")
            if not eq2 or not k:
                raise ValueError("invalid key value pair format in driver options")
            attachment["DriverOpts"] = {**(attachment["DriverOpts"] or {}), k.strip(): v.strip()}
        elif key == "gw-priority":
            try:
                attachment["GwPriority"] = values.go_parse_int(value)
            except ValueError:
                raise ValueError(f"invalid gw-priority ({value}): invalid syntax") from None
        else:
            raise ValueError("invalid field key " + key)
    if not attachment["Target"]:
        raise ValueError("network name/id is not specified")
    return attachment


def _word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _long_syntax(text: str) -> bool:
    """docker's test for `--network` CSV syntax, the regexp `\\w+=\\w+` found anywhere (without `re`,
    whose import costs `run` 10 ms)."""
    return any(ch == "=" and 0 < i < len(text) - 1 and _word(text[i - 1]) and _word(text[i + 1])
               for i, ch in enumerate(text))


def _gpus(text: str) -> dict[str, Any]:
    """`--gpus all`, `--gpus 2`, `--gpus device=0,1` -> a DeviceRequest (opts.GpuOpts)."""
    request: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": None, "Capabilities": [["gpu"]],
                               "Options": {}}
    for field in values.csv_fields(text):
        key, eq, value = field.partition("=")
        if not eq:
            if key == "all":
                request["Count"] = -1
                continue
            try:
                request["Count"] = int(key)
                continue
            except ValueError:
                raise ValueError(f'unexpected key "{key}" in "{field}"') from None
        if key == "driver":
            request["Driver"] = value
        elif key == "count":
            request["Count"] = -1 if value == "all" else int(value)
        elif key == "device":
            request["DeviceIDs"] = value.split(",")
        elif key == "capabilities":
            request["Capabilities"] = [value.split(",")]
        elif key == "options":
            request["Options"] = values.kv_map(value.split(","))
        else:
            raise ValueError(f'unexpected key "{key}" in "{field}"')
    return request


_CGROUPNS_HELP = """Cgroup namespace to use (host|private)
'host':    Run the container in the Dockyard host's cgroup namespace
'private': Run the container in its own private cgroup namespace
'':        Use the cgroup namespace as configured by the
           default-cgroupns-mode option on the daemon (default)"""


def _flags(command: str) -> list[Flag]:
    """The container flags of `run` or `create`, in pflag's (sorted) help order.

    Hidden, though parsed: what the docker CLI hides when its engine speaks API
    1.41 on Linux, as ours does (flags for newer APIs, Windows-only flags).
    """
    running = command == "run"
    verb = "running" if running else "creating"
    pull_choices = '("always", "missing", "never")' if running else '("always", "|missing", "never")'
    flags = [
        Flag("add-host", "", LIST, "Add a custom host-to-IP mapping (host:ip)", metavar="list"),
        Flag("annotation", "", LIST, "Add an annotation to the container (passed through to the OCI runtime)",
             metavar="map", shown_default="map[]", hidden=True),
        Flag("attach", "a", LIST, "Attach to STDIN, STDOUT or STDERR", metavar="list", check=_attach_stream),
        Flag("blkio-weight", "", STRING, "Block IO (relative weight), between 10 and 1000, or 0 to disable "
             "(default 0)", metavar="uint16", check=_uint16, default=0),
        Flag("blkio-weight-device", "", LIST, "Block IO weight (relative device weight)", metavar="list",
             shown_default="[]"),
        Flag("cap-add", "", LIST, "Add Linux capabilities", metavar="list"),
        Flag("cap-drop", "", LIST, "Drop Linux capabilities", metavar="list"),
        Flag("cgroup-parent", "", STRING, "Optional parent cgroup for the container"),
        Flag("cgroupns", "", STRING, _CGROUPNS_HELP),
        Flag("cidfile", "", STRING, "Write the container ID to the file"),
        Flag("cpu-count", "", STRING, "CPU count (Windows only)", metavar="int", check=_int64, default=0,
             hidden=True),
        Flag("cpu-percent", "", STRING, "CPU percent (Windows only)", metavar="int", check=_int64, default=0,
             hidden=True),
        Flag("cpu-period", "", STRING, "Limit CPU CFS (Completely Fair Scheduler) period", metavar="int",
             check=_int64, default=0),
        Flag("cpu-quota", "", STRING, "Limit CPU CFS (Completely Fair Scheduler) quota", metavar="int",
             check=_int64, default=0),
        Flag("cpu-rt-period", "", STRING, "Limit CPU real-time period in microseconds", metavar="int",
             check=_int64, default=0),
        Flag("cpu-rt-runtime", "", STRING, "Limit CPU real-time runtime in microseconds", metavar="int",
             check=_int64, default=0),
        Flag("cpu-shares", "c", STRING, "CPU shares (relative weight)", metavar="int", check=_int64, default=0),
        Flag("cpus", "", STRING, "Number of CPUs", metavar="decimal", check=values.nano_cpus, default=0),
        Flag("cpuset-cpus", "", STRING, "CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", "", STRING, "MEMs in which to allow execution (0-3, 0,1)"),
    ]
    if running:
        flags += [
            Flag("detach", "d", BOOL, "Run container in background and print container ID"),
            Flag("detach-keys", "", STRING, "Override the key sequence for detaching a container"),
        ]
    flags += [
        Flag("device", "", LIST, "Add a host device to the container", metavar="list"),
        Flag("device-cgroup-rule", "", LIST, "Add a rule to the cgroup allowed devices list", metavar="list"),
        Flag("device-read-bps", "", LIST, "Limit read rate (bytes per second) from a device", metavar="list",
             shown_default="[]"),
        Flag("device-read-iops", "", LIST, "Limit read rate (IO per second) from a device", metavar="list",
             shown_default="[]"),
        Flag("device-write-bps", "", LIST, "Limit write rate (bytes per second) to a device", metavar="list",
             shown_default="[]"),
        Flag("device-write-iops", "", LIST, "Limit write rate (IO per second) to a device", metavar="list",
             shown_default="[]"),
        Flag("disable-content-trust", "", BOOL, "Skip image verification", default=True, shown_default="true"),
        Flag("dns", "", LIST, "Set custom DNS servers", metavar="list"),
        Flag("dns-opt", "", LIST, "Set DNS options", metavar="list", hidden=True),
        Flag("dns-option", "", LIST, "Set DNS options", metavar="list"),
        Flag("dns-search", "", LIST, "Set custom DNS search domains", metavar="list"),
        Flag("domainname", "", STRING, "Container NIS domain name"),
        Flag("entrypoint", "", STRING, "Overwrite the default ENTRYPOINT of the image"),
        Flag("env", "e", LIST, "Set environment variables", metavar="list", check=values.env),
        Flag("env-file", "", LIST, "Read in a file of environment variables", metavar="list"),
        Flag("expose", "", LIST, "Expose a port or a range of ports", metavar="list"),
        Flag("gpus", "", STRING, "GPU devices to add to the container ('all' to pass all GPUs)",
             metavar="gpu-request", check=_gpus, default=None),
        Flag("group-add", "", LIST, "Add additional groups to join", metavar="list"),
        Flag("health-cmd", "", STRING, "Command to run to check health"),
        Flag("health-interval", "", STRING, "Time between running the check (ms|s|m|h) (default 0s)",
             metavar="duration", check=values.go_duration_ns, default=0),
        Flag("health-retries", "", STRING, "Consecutive failures needed to report unhealthy", metavar="int",
             check=_int32, default=0),
        Flag("health-start-interval", "", STRING, "Time between running the check during the start period "
             "(ms|s|m|h) (default 0s)", metavar="duration", check=values.go_duration_ns, default=0,
             hidden=True),
        Flag("health-start-period", "", STRING, "Start period for the container to initialize before starting "
             "health-retries countdown (ms|s|m|h) (default 0s)", metavar="duration",
             check=values.go_duration_ns, default=0),
        Flag("health-timeout", "", STRING, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
             metavar="duration", check=values.go_duration_ns, default=0),
        Flag("help", "", BOOL, "Print usage"),
        Flag("hostname", "h", STRING, "Container host name"),
        Flag("init", "", BOOL, "Run an init inside the container that forwards signals and reaps processes"),
        Flag("interactive", "i", BOOL, "Keep STDIN open even if not attached"),
        Flag("io-maxbandwidth", "", STRING, "Maximum IO bandwidth limit for the system drive (Windows only)",
             metavar="bytes", check=values.memory, default=0, hidden=True),
        Flag("io-maxiops", "", STRING, "Maximum IOps limit for the system drive (Windows only)", metavar="uint",
             check=_uint64, default=0, hidden=True),
        Flag("ip", "", STRING, "IPv4 address (e.g., 172.30.100.104)"),
        Flag("ip6", "", STRING, "IPv6 address (e.g., 2001:db8::33)"),
        Flag("ipc", "", STRING, "IPC mode to use"),
        Flag("isolation", "", STRING, "Container isolation technology"),
        Flag("kernel-memory", "", STRING, "Kernel memory limit", metavar="bytes", check=values.memory, default=0),
        Flag("label", "l", LIST, "Set meta data on a container", metavar="list", check=values.label),
        Flag("label-file", "", LIST, "Read in a line delimited file of labels", metavar="list"),
        Flag("link", "", LIST, "Add link to another container", metavar="list"),
        Flag("link-local-ip", "", LIST, "Container IPv4/IPv6 link-local addresses", metavar="list"),
        Flag("log-driver", "", STRING, "Logging driver for the container"),
        Flag("log-opt", "", LIST, "Log driver options", metavar="list"),
        Flag("mac-address", "", STRING, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        Flag("memory", "m", STRING, "Memory limit", metavar="bytes", check=values.memory, default=0),
        Flag("memory-reservation", "", STRING, "Memory soft limit", metavar="bytes", check=values.memory,
             default=0),
        Flag("memory-swap", "", STRING, "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
             metavar="bytes", check=values.memory_swap, default=0),
        Flag("memory-swappiness", "", STRING, "Tune container memory swappiness (0 to 100)", metavar="int",
             check=_int64, default=-1, shown_default="-1"),
        Flag("mount", "", LIST, "Attach a filesystem mount to the container", metavar="mount", check=values.mount),
        Flag("name", "", STRING, "Assign a name to the container"),
        Flag("net", "", LIST, "Connect a container to a network", metavar="network", check=_network, hidden=True),
        Flag("net-alias", "", LIST, "Add network-scoped alias for the container", metavar="list", hidden=True),
        Flag("network", "", LIST, "Connect a container to a network", metavar="network", check=_network),
        Flag("network-alias", "", LIST, "Add network-scoped alias for the container", metavar="list"),
        Flag("no-healthcheck", "", BOOL, "Disable any container-specified HEALTHCHECK"),
        Flag("oom-kill-disable", "", BOOL, "Disable OOM Killer"),
        Flag("oom-score-adj", "", STRING, "Tune host's OOM preferences (-1000 to 1000)", metavar="int",
             check=_int64, default=0),
        Flag("pid", "", STRING, "PID namespace to use"),
        Flag("pids-limit", "", STRING, "Tune container pids limit (set -1 for unlimited)", metavar="int",
             check=_int64, default=0),
        Flag("platform", "", STRING, "Set platform if server is multi-platform capable",
             default=os.environ.get("DOCKER_DEFAULT_PLATFORM", "")),
        Flag("privileged", "", BOOL, "Give extended privileges to this container"),
        Flag("publish", "p", LIST, "Publish a container's port(s) to the host", metavar="list"),
        Flag("publish-all", "P", BOOL, "Publish all exposed ports to random ports"),
        Flag("pull", "", STRING, f"Pull image before {verb} {pull_choices}", default="missing",
             shown_default='"missing"'),
        Flag("quiet", "q", BOOL, "Suppress the pull output"),
        Flag("read-only", "", BOOL, "Mount the container's root filesystem as read only"),
        Flag("restart", "", STRING, "Restart policy to apply when a container exits", default="no",
             shown_default='"no"'),
        Flag("rm", "", BOOL, "Automatically remove the container and its associated anonymous volumes when it "
             "exits"),
        Flag("runtime", "", STRING, "Runtime to use for this container"),
        Flag("security-opt", "", LIST, "Security Options", metavar="list"),
        Flag("shm-size", "", STRING, "Size of /dev/shm", metavar="bytes", check=values.memory, default=0),
    ]
    if running:
        flags.append(Flag("sig-proxy", "", BOOL, "Proxy received signals to the process", default=True,
                          shown_default="true"))
    flags += [
        Flag("stop-signal", "", STRING, "Signal to stop the container"),
        Flag("stop-timeout", "", STRING, "Timeout (in seconds) to stop a container", metavar="int", check=_int64,
             default=0),
        Flag("storage-opt", "", LIST, "Storage driver options for the container", metavar="list"),
        Flag("sysctl", "", LIST, "Sysctl options", metavar="map", shown_default="map[]"),
        Flag("tmpfs", "", LIST, "Mount a tmpfs directory", metavar="list"),
        Flag("tty", "t", BOOL, "Allocate a pseudo-TTY"),
        Flag("ulimit", "", LIST, "Ulimit options", metavar="ulimit", check=values.ulimit, shown_default="[]"),
        Flag("use-api-socket", "", BOOL, "Bind mount Dockyard API socket and required auth"),
        Flag("user", "u", STRING, "Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("userns", "", STRING, "User namespace to use"),
        Flag("uts", "", STRING, "UTS namespace to use"),
        Flag("volume", "v", LIST, "Bind mount a volume", metavar="list"),
        Flag("volume-driver", "", STRING, "Optional volume driver for the container"),
        Flag("volumes-from", "", LIST, "Mount volumes from the specified container(s)", metavar="list"),
        Flag("workdir", "w", STRING, "Working directory inside the container"),
    ]
    return flags


# --- flags -> create body -----------------------------------------------------------------

_ZERO_ENDPOINT = {
    "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None, "GwPriority": 0,
    "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None,
}
_BUILTIN_NETWORKS = ("default", "bridge", "host", "none")


def _user_defined(network: str) -> bool:
    return network not in _BUILTIN_NETWORKS and not network.startswith("container:")


def _endpoint(attachment: dict[str, Any]) -> dict[str, Any]:
    target = attachment["Target"]
    if not target.strip():
        raise ValueError("no name set for network")
    if not _user_defined(target):
        if attachment["Aliases"]:
            raise ValueError("network-scoped aliases are only supported for user-defined networks")
        if attachment.get("Links"):
            raise ValueError("links are only supported for user-defined networks")
    endpoint = dict(_ZERO_ENDPOINT, GwPriority=attachment["GwPriority"])
    if attachment["Aliases"]:
        endpoint["Aliases"] = list(attachment["Aliases"])
    if attachment["DriverOpts"]:
        endpoint["DriverOpts"] = attachment["DriverOpts"]
    if attachment.get("Links"):
        endpoint["Links"] = attachment["Links"]
    if attachment["IPv4Address"] or attachment["IPv6Address"] or attachment["LinkLocalIPs"]:
        endpoint["IPAMConfig"] = {"IPv4Address": attachment["IPv4Address"],
                                  "IPv6Address": attachment["IPv6Address"],
                                  "LinkLocalIPs": attachment["LinkLocalIPs"] or None}
    if attachment["MacAddress"]:
        endpoint["MacAddress"] = attachment["MacAddress"]
    return endpoint


def _endpoints(opts: dict[str, Any]) -> dict[str, Any]:
    """NetworkingConfig.EndpointsConfig as the docker CLI builds it (parseNetworkOpts)."""
    networks = opts["network"] + opts["net"]
    aliases = opts["network_alias"] + opts["net_alias"]

    def apply_container_options(attachment: dict[str, Any]) -> dict[str, Any]:
        attachment = dict(attachment)
        if aliases:
            if attachment["Aliases"]:
                raise ValueError("conflicting options: cannot specify both --network-alias and per-network alias")
            attachment["Aliases"] = list(aliases)
        if _user_defined(attachment["Target"]) and opts["link"]:
            attachment["Links"] = list(opts["link"])
        for flag, key, what in (("ip", "IPv4Address", "--ip and per-network IPv4 address"),
                                ("ip6", "IPv6Address", "--ip6 and per-network IPv6 address"),
                                ("mac_address", "MacAddress", "--mac-address and per-network MAC address")):
            if opts[flag]:
                if attachment[key]:
                    raise ValueError(f"conflicting options: cannot specify both {what}")
                attachment[key] = opts[flag]
        if opts["link_local_ip"]:
            attachment["LinkLocalIPs"] = list(opts["link_local_ip"])
        return attachment

    endpoints: dict[str, Any] = {}
    if not networks:
        base = {"Target": "default", "Aliases": [], "DriverOpts": None, "IPv4Address": "", "IPv6Address": "",
                "LinkLocalIPs": [], "MacAddress": "", "GwPriority": 0}
        endpoints["default"] = _endpoint(apply_container_options(base))
        return endpoints
    user_defined = non_user_defined = False
    for i, attachment in enumerate(networks):
        if _user_defined(attachment["Target"]):
            user_defined = True
        else:
            non_user_defined = True
        if i == 0:
            attachment = apply_container_options(attachment)
        endpoint = _endpoint(attachment)
        if attachment["Target"] in endpoints:
            raise ValueError(f'network "{attachment["Target"]}" is specified multiple times')
        if i == 0 and len(networks) == 1 and endpoint == _ZERO_ENDPOINT:
            continue  # like docker: a single plain --network sends no endpoint settings
        endpoints[attachment["Target"]] = endpoint
    if user_defined and non_user_defined:
        raise ValueError("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
    return endpoints


def _security_opts(items: list[str]) -> tuple[list[str], list[str] | None, list[str] | None]:
    """--security-opt values (seccomp profiles read from files) -> (opts, masked paths, read-only paths)."""
    out: list[str] = []
    masked = readonly = None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = item.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise ValueError(f'Invalid --security-opt: "{item}"')
        if item == "systempaths=unconfined":
            masked, readonly = [], []
            continue
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            import json

            try:
                with open(value, "rb") as f:
                    profile = json.loads(f.read())
            except OSError as exc:
                raise ValueError(f"opening seccomp profile ({value}) failed: open {value}: "
                                 f"{(exc.strerror or str(exc)).lower()}") from None
            except ValueError as exc:
                raise ValueError(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
            item = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        out.append(item)
    return out, masked, readonly


def _duplicate_free(items: list[str]) -> dict[str, None]:
    return dict.fromkeys(items)


def build_config(opts: dict[str, Any], args: list[str], client_host: str = "") -> dict[str, Any]:
    """The create body for `opts` (parsed flags) and args (IMAGE [COMMAND...]); ValueError in docker's words."""
    attach = set(opts["attach"])
    attach_stdin = "stdin" in attach or opts["interactive"]
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    swappiness = opts["memory_swappiness"]
    if swappiness != -1 and not 0 <= swappiness <= 100:
        raise ValueError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")
    binds: list[str] = []
    anonymous: dict[str, Any] = {}
    for spec in _duplicate_free(opts["volume"]):
        bind, target = values.volume(spec)
        if bind is not None:
            binds.append(bind)
        else:
            anonymous[target] = {}
    tmpfs = {}
    for item in opts["tmpfs"]:
        path, _, options = item.partition(":")
        tmpfs[path] = options
    entrypoint = None
    if opts["entrypoint"]:
        entrypoint = [opts["entrypoint"]]
    elif "entrypoint" in opts["_set"]:
        entrypoint = [""]  # `--entrypoint=` clears the image's
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts["publish"]:
        for port, binding in values.parse_port_spec(_standard_publish(spec)):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    for spec in opts["expose"]:
        for port in values.expose(spec):
            exposed.setdefault(port, {})
    devices = [_device(d) for d in opts["device"]]
    env = []
    for path in opts["env_file"]:
        env += values.read_kv_file(path, os.environ.get)
    env += opts["env"]
    labels = []
    for path in opts["label_file"]:
        labels += values.read_kv_file(path, None)
    labels += opts["label"]
    for flag, name in (("pid", "PID"), ("uts", "UTS"), ("userns", "USER"), ("cgroupns", "CGROUP")):
        if not _valid_mode(flag, opts[flag]):
            raise ValueError(f"--{flag}: invalid {name} mode")
    restart = values.restart_policy(opts["restart"])
    log_opts = values.kv_map(opts["log_opt"])
    if opts["log_driver"] == "none" and opts["log_opt"]:
        raise ValueError(f"invalid logging opts for driver {opts['log_driver']}")
    security, masked, readonly = _security_opts(opts["security_opt"])
    storage = {}
    for item in opts["storage_opt"]:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError("invalid storage option")
        storage[key] = value
    health = _healthcheck(opts)
    device_requests = [opts["gpus"]] if opts["gpus"] else None
    mounts = list(opts["mount"])
    if opts["use_api_socket"]:
        if not client_host.startswith("unix://"):
            raise ValueError(f"flag --use-api-socket can only be used with unix sockets: docker endpoint "
                             f"{client_host} incompatible")
        mounts.append({"Type": "bind", "Source": client_host[len("unix://"):], "Target": "/var/run/docker.sock",
                       "BindOptions": {}})

    config: dict[str, Any] = {
        "Hostname": opts["hostname"], "Domainname": opts["domainname"], "User": opts["user"],
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout, "AttachStderr": attach_stderr,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config.update({
        "Tty": opts["tty"], "OpenStdin": opts["interactive"],
        "StdinOnce": opts["interactive"] and attach_stdin,  # stdin closes when the attached client leaves
        "Env": env or None, "Cmd": args[1:] or None,
    })
    if health is not None:
        config["Healthcheck"] = health
    config.update({"Image": args[0], "Volumes": anonymous, "WorkingDir": opts["workdir"], "Entrypoint": entrypoint})
    if opts["mac_address"]:
        config["MacAddress"] = opts["mac_address"]
    config.update({"OnBuild": None, "Labels": values.kv_map(labels)})
    if opts["stop_signal"]:
        config["StopSignal"] = opts["stop_signal"]
    if "stop_timeout" in opts["_set"]:
        config["StopTimeout"] = opts["stop_timeout"]

    networks = opts["network"] + opts["net"]
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": opts["cidfile"],
        "LogConfig": {"Type": opts["log_driver"], "Config": log_opts},
        "NetworkMode": networks[0]["Target"] if networks else "default",
        "PortBindings": bindings, "RestartPolicy": restart, "AutoRemove": opts["rm"],
        "VolumeDriver": opts["volume_driver"], "VolumesFrom": opts["volumes_from"] or None,
        "ConsoleSize": [0, 0],
    }
    if opts["annotation"]:
        host["Annotations"] = values.kv_map(opts["annotation"])
    host.update({
        "CapAdd": values.normalize_capabilities(opts["cap_add"]),
        "CapDrop": values.normalize_capabilities(opts["cap_drop"]),
        "CgroupnsMode": opts["cgroupns"], "Dns": list(opts["dns"]),
        "DnsOptions": opts["dns_option"] + opts["dns_opt"], "DnsSearch": list(opts["dns_search"]),
        "ExtraHosts": opts["add_host"] or None, "GroupAdd": opts["group_add"] or None, "IpcMode": opts["ipc"],
        "Cgroup": "", "Links": opts["link"] or None, "OomScoreAdj": opts["oom_score_adj"], "PidMode": opts["pid"],
        "Privileged": opts["privileged"], "PublishAllPorts": opts["publish_all"],
        "ReadonlyRootfs": opts["read_only"], "SecurityOpt": security or None,
    })
    if storage:
        host["StorageOpt"] = storage
    if tmpfs:
        host["Tmpfs"] = tmpfs
    host.update({"UTSMode": opts["uts"], "UsernsMode": opts["userns"], "ShmSize": opts["shm_size"]})
    if opts["sysctl"]:
        host["Sysctls"] = values.kv_map(opts["sysctl"])
    if opts["runtime"]:
        host["Runtime"] = opts["runtime"]
    host.update({
        "Isolation": opts["isolation"],
        "CpuShares": opts["cpu_shares"], "Memory": opts["memory"], "NanoCpus": opts["cpus"],
        "CgroupParent": opts["cgroup_parent"], "BlkioWeight": opts["blkio_weight"],
        "BlkioWeightDevice": [_weight_device(d) for d in opts["blkio_weight_device"]],
        "BlkioDeviceReadBps": [_throttle_device(d, True) for d in opts["device_read_bps"]],
        "BlkioDeviceWriteBps": [_throttle_device(d, True) for d in opts["device_write_bps"]],
        "BlkioDeviceReadIOps": [_throttle_device(d, False) for d in opts["device_read_iops"]],
        "BlkioDeviceWriteIOps": [_throttle_device(d, False) for d in opts["device_write_iops"]],
        "CpuPeriod": opts["cpu_period"], "CpuQuota": opts["cpu_quota"],
        "CpuRealtimePeriod": opts["cpu_rt_period"], "CpuRealtimeRuntime": opts["cpu_rt_runtime"],
        "CpusetCpus": opts["cpuset_cpus"], "CpusetMems": opts["cpuset_mems"], "Devices": devices,
        "DeviceCgroupRules": opts["device_cgroup_rule"] or None, "DeviceRequests": device_requests,
    })
    if opts["kernel_memory"]:
        host["KernelMemory"] = opts["kernel_memory"]
    ulimits = {u["Name"]: u for u in opts["ulimit"]}
    host.update({
        "MemoryReservation": opts["memory_reservation"], "MemorySwap": opts["memory_swap"],
        "MemorySwappiness": swappiness, "OomKillDisable": opts["oom_kill_disable"],
        "PidsLimit": opts["pids_limit"], "Ulimits": [ulimits[name] for name in sorted(ulimits)],
        "CpuCount": opts["cpu_count"], "CpuPercent": opts["cpu_percent"], "IOMaximumIOps": opts["io_maxiops"],
        "IOMaximumBandwidth": opts["io_maxbandwidth"],
    })
    if mounts:
        host["Mounts"] = mounts
    host.update({"MaskedPaths": masked, "ReadonlyPaths": readonly})
    if "init" in opts["_set"]:
        host["Init"] = opts["init"]
    if opts["rm"] and restart["Name"] not in ("", "no"):
        raise ValueError("conflicting options: cannot specify both --restart and --rm")
    config["HostConfig"] = host
    config["NetworkingConfig"] = {"EndpointsConfig": _endpoints(opts)}
    return config


def _standard_publish(spec: str) -> str:
    """The long `-p published=8080,target=80,protocol=udp` form -> `8080:80/udp`."""
    if "=" not in spec:
        return spec
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, eq, value = param.partition("=")
        if not eq or not key:
            raise ValueError(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def _valid_mode(flag: str, mode: str) -> bool:
    if flag == "cgroupns":
        return mode in ("", "host", "private")
    if flag == "userns":
        return mode in ("", "host")
    kind, _, rest = mode.partition(":")
    if mode in ("", "host"):
        return True
    return flag == "pid" and kind == "container" and bool(rest)


def _device(spec: str) -> dict[str, str]:
    """`/dev/x[:/dev/y][:rwm]` -> a DeviceMapping (validated as the docker CLI does for Linux)."""
    if spec.count(":") > 2 or not spec.split(":")[0]:
        raise ValueError(f"bad format for path: {spec}")
    parts = spec.split(":")
    src, dst, perms = parts[0], "", "rwm"

    def mode_ok(text: str) -> bool:
        return bool(text) and len(set(text)) == len(text) and set(text) <= set("rwm")

    if len(parts) == 2:
        if mode_ok(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) == 3:
        if not mode_ok(parts[2]):
            raise ValueError(f"bad mode specified: {parts[2]}")
        dst, perms = parts[1], parts[2]
    container_path = dst or src
    if not container_path.startswith("/"):
        raise ValueError(f"{container_path} is not an absolute path")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms}


def _weight_device(spec: str) -> dict[str, Any]:
    path, _, weight = spec.rpartition(":")
    if not path.startswith("/dev/"):
        raise ValueError(f"bad format: {spec}")
    number = values.go_parse_int(weight, 16, unsigned=True)
    if number > 0 and not 10 <= number <= 1000:
        raise ValueError(f"invalid weight for device: {spec}")
    return {"Path": path, "Weight": number}


def _throttle_device(spec: str, in_bytes: bool) -> dict[str, Any]:
    path, _, rate = spec.rpartition(":")
    if not path.startswith("/dev/"):
        raise ValueError(f"bad format: {spec}")
    try:
        number = values.ram_in_bytes(rate) if in_bytes else values.go_parse_int(rate, 64, unsigned=True)
    except ValueError:
        what = "a number" if not in_bytes else "a size"
        raise ValueError(f"invalid rate for device: {spec}. The correct format is <device-path>:<number>[<unit>]. "
                         f"Number must be {what}") from None
    return {"Path": path, "Rate": number}


def _healthcheck(opts: dict[str, Any]) -> dict[str, Any] | None:
    keys = ("health_interval", "health_timeout", "health_start_period", "health_retries", "health_start_interval")
    configured = bool(opts["health_cmd"]) or any(opts[k] for k in keys)
    if opts["no_healthcheck"]:
        if configured:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not configured:
        return None
    for key, flag in (("health_interval", "--health-interval"), ("health_timeout", "--health-timeout"),
                      ("health_retries", "--health-retries"), ("health_start_period", "--health-start-period"),
                      ("health_start_interval", "--health-start-interval")):
        if opts[key] < 0:
            raise ValueError(f"{flag} cannot be negative")
    check: dict[str, Any] = {}
    if opts["health_cmd"]:
        check["Test"] = ["CMD-SHELL", opts["health_cmd"]]
    for key, name in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval"),
                      ("health_retries", "Retries")):
        if opts[key]:
            check[name] = opts[key]
    return check


# --- creating ------------------------------------------------------------------------------


def with_help(command: str, message: str) -> str:
    """docker's withHelp: `docker: <message>` and a pointer to the command's help."""
    return f"{PROG}: {message}\n\nRun '{PROG} {command} --help' for more information"


_SIMPLE_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/:@")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _named(image: str) -> bool:
    """Whether the image is a name (that a 404 makes docker pull) rather than an ID or a digest."""
    if len(image) == 64 and _is_hex(image):
        return False
    algorithm, colon, hexa = image.partition(":")
    return not (colon and algorithm == "sha256" and len(hexa) == 64 and _is_hex(hexa))


def _looks_valid(image: str) -> bool:
    """Cheap screen: names this passes are sent as they are; others are parsed for docker's error."""
    return bool(image) and set(image) <= _SIMPLE_NAME and image[-1] not in ":@/" and "//" not in image


def parse_reference(image: str) -> Any:
    """An image name as docker's ParseNormalizedNamed reads it; ValueError with docker's words.

    Loads the reference parser, so only the paths that need it call this
    (pull, commit, names the cheap screen doubts).
    """
    from dockyard.errors import EngineError
    from dockyard.images import reference

    try:
        return reference.parse(image)
    except EngineError as exc:
        message = exc.message
        if message.endswith("repository name must be lowercase"):
            name = image.split("@", 1)[0]
            if name.rfind(":") > name.rfind("/"):
                name = name[:name.rfind(":")]
            message = f"invalid reference format: repository name ({reference.split_domain(name)[1]}) must be " \
                      "lowercase"
        raise ValueError(message) from None


def image_reference(image: str) -> tuple[str, str, str]:
    """(name to pull, tag or digest, familiar name with tag): docker's reading of a name reference."""
    ref = parse_reference(image)
    tagged = ref.with_default_tag()
    return ref.name, tagged.digest or tagged.tag or "", tagged.familiar()


class PullFailed(ValueError):
    """The engine reported a failure in the pull's message stream (printed without the daemon prefix)."""


def _pull(cli: Cli, image: str, platform: str, quiet: bool) -> None:
    """The docker CLI's pull inside run/create: progress to stderr; errors raised to the caller."""
    name, tag, _ = image_reference(image)
    err = cli.err
    from dockyard.cli.registry import auth_header, print_progress

    print_progress(err, cli.client().image_pull(name, tag, platform.lower(), auth=auth_header(name)), quiet)


def create_container(cli: Cli, config: dict[str, Any], opts: dict[str, Any]) -> str:
    """Create (pulling a missing image as docker does); prints the engine's warnings; returns the ID.

    Raises ApiError from the engine, ValueError for client-side failures.
    """
    from dockyard.client.api import ApiError

    cidfile = opts["cidfile"]
    cid_handle = None
    if cidfile:
        if os.path.exists(cidfile):
            raise ValueError(f"container ID file found, make sure the other container isn't running or delete "
                             f"{cidfile}")
        try:
            cid_handle = open(cidfile, "w")  # noqa: SIM115 - written after the create, removed on failure
        except OSError as exc:
            raise ValueError(f"failed to create the container ID file: open {cidfile}: "
                             f"{(exc.strerror or str(exc)).lower()}") from None
    written = False
    try:
        image = config["Image"]
        named = _named(image)
        if named and not _looks_valid(image):
            image_reference(image)  # raises docker's error for a bad name
        if opts["pull"] == "always" and named:
            _pull(cli, image, opts["platform"], opts["quiet"])
        from dockyard.cli.tty import is_terminal, size

        if is_terminal(1):
            config["HostConfig"]["ConsoleSize"] = list(size(1))
        client = cli.client()
        platform = opts["platform"].lower()
        try:
            response = client.container_create(config, opts["name"], platform)
        except ApiError as exc:
            if exc.status != 404 or not named or opts["pull"] != "missing":
                raise
            if not opts["quiet"]:
                cli.err.write(f"Unable to find image '{image_reference(image)[2]}' locally\n")
                cli.err.flush()
            _pull(cli, image, opts["platform"], opts["quiet"])
            response = client.container_create(config, opts["name"], platform)
        for warning in response.get("Warnings") or []:
            cli.err.write(f"WARNING: {warning}\n")
        container_id = response["Id"]
        if cid_handle is not None:
            cid_handle.write(container_id)
            written = True
        return container_id
    finally:
        if cid_handle is not None:
            cid_handle.close()
            if not written:
                try:
                    os.unlink(cidfile)
                except OSError:
                    pass


def _parse_or_exit(command: str, opts: dict[str, Any], args: list[str], host: str) -> dict[str, Any]:
    if opts["pull"] not in ("always", "missing", "never", ""):
        raise CliError(with_help(command, f"invalid pull option: '{opts['pull']}': must be one of \"always\", "
                                          f"\"missing\" or \"never\""), 125)
    try:
        return build_config(opts, args, host)
    except ValueError as exc:
        raise CliError(with_help(command, str(exc)), 125) from None


def run_create(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    host = cli.client().host
    config = _parse_or_exit("create", opts, args, host)
    try:
        container_id = create_container(cli, config, opts)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    cli.out.write(container_id + "\n")
    return 0


CREATE = Command(
    ("create",), "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
    _flags("create"), run_create, min_args=1, aliases=("container create", "create"), interspersed=False,
)


# --- running -------------------------------------------------------------------------------


def status_error(message: str) -> CliError:
    """docker's toStatusError: 127 for a command not found, 126 for one that cannot run, else 125."""
    if "executable file not found" in message or "no such file or directory" in message or \
            "system cannot find the file specified" in message:
        code = 127
    elif "permission denied" in message or "is a directory" in message:
        code = 126
    else:
        code = 125
    return CliError(with_help("run", message), code)


def run_run(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError

    client = cli.client()
    config = _parse_or_exit("run", opts, args, client.host)
    detach = opts["detach"]
    tty = config["Tty"]
    if not detach:
        from dockyard.cli.tty import is_terminal

        if config["AttachStdin"] and tty and not is_terminal(0):
            raise CliError("the input device is not a TTY")
    else:
        if opts["attach"]:
            raise CliError("conflicting options: cannot specify both --attach and --detach")
        config.update(AttachStdin=False, AttachStdout=False, AttachStderr=False, StdinOnce=False)
    try:
        container_id = create_container(cli, config, opts)
    except ApiError as exc:
        raise status_error(f"Error response from daemon: {exc.message}") from None
    except ValueError as exc:
        raise status_error(str(exc)) from None
    cli.out.flush()
    cli.err.flush()

    from dockyard.cli.tty import ContainerRelay, is_terminal

    relay = ContainerRelay(client.host, container_id, main_client=client)
    attach = config["AttachStdin"] or config["AttachStdout"] or config["AttachStderr"]
    try:
        if opts["sig_proxy"]:
            relay.start(forward=True, follow_size=False)
        hijacked = None
        if attach:
            detach_keys = opts["detach_keys"]
            hijacked = client.container_attach(container_id, stdin=config["AttachStdin"],
                                               stdout=config["AttachStdout"], stderr=config["AttachStderr"],
                                               detach_keys=detach_keys)
        waiting = client.container_wait(container_id, "removed" if opts["rm"] else "next-exit")
        try:
            client.container_start(container_id)
        except ApiError as exc:
            if hijacked is not None:
                hijacked.close()
            if opts["rm"]:
                wait_status(cli, client, waiting)
            raise status_error(f"Error response from daemon: {exc.message}") from None
        if not attach:
            cli.out.write(container_id + "\n")
            waiting.close()
            return 0
        follow_size = tty and is_terminal(1)
        if follow_size:
            relay.start(forward=opts["sig_proxy"], follow_size=True)
            relay.resize_to_terminal()
        if stream_attached(hijacked, tty, config["AttachStdin"], opts["detach_keys"]) == "detached":
            waiting.close()
            return 0
        return wait_status(cli, client, waiting)
    finally:
        relay.stop()


def stream_attached(hijacked: Any, tty: bool, stdin: bool, detach_keys: str) -> str:
    """Pump a hijacked stream (raw terminal with -t and stdin): "done" or "detached"."""
    from dockyard.cli.stream import Detached, StreamError, pump
    from dockyard.cli.tty import RawTerminal, is_terminal

    keys = values.DEFAULT_DETACH_KEYS
    if detach_keys:
        try:
            keys = values.detach_keys(detach_keys)
        except ValueError as exc:
            sys.stderr.write(f'level=warning msg="invalid detach escape keys, using default: {exc}"\n')
    raw = RawTerminal(0) if (tty and stdin and is_terminal(0)) else None
    try:
        pump(hijacked, tty, 0 if stdin else None, keys)
    except Detached:
        return "detached"
    except StreamError as exc:
        raise CliError(str(exc)) from None
    finally:
        if raw is not None:
            raw.restore()
        hijacked.close()
    return "done"


def wait_status(cli: Cli, client: Any, waiting: Any) -> int:
    from dockyard.client.api import ApiError
    from dockyard.client.http import ProtocolError

    try:
        result = client.wait_result(waiting)
    except (ApiError, ProtocolError, OSError, ValueError) as exc:
        cli.err.write(f'level=error msg="error waiting for container: {exc}"\n')
        return 125
    error = result.get("Error")
    if error:
        cli.err.write(f'level=error msg="Error waiting for container: {error.get("Message", "")}"\n')
        return 125
    return int(result.get("StatusCode", 0))


RUN = Command(
    ("run",), "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
    _flags("run"), run_run, min_args=1, aliases=("container run", "run"), interspersed=False,
)

