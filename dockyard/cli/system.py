"""System commands: version, info, system df, events."""

from __future__ import annotations

import sys

from dockyard.cli.flags import BOOL, FORMAT_HELP, FORMAT_TABLE_HELP, LIST, STRING, Command, Flag
from dockyard.cli.image import parse_filter_flags
from dockyard.cli.main import VERSION as CLI_VERSION
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

CLIENT_API_VERSION = "1.41"


def _goarch() -> str:
    import os

    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def client_version() -> dict[str, Any]:
    import platform

    return {
        "Platform": {"Name": ""},
        "Version": CLI_VERSION,
        "ApiVersion": CLIENT_API_VERSION,
        "DefaultAPIVersion": CLIENT_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _goarch(),
        "BuildTime": "",
        "Context": "default",
    }


def _render_template(cli: Cli, fmt: str, data: Any) -> None:
    from dockyard.cli.template import Template

    source = "{{json .}}" if fmt == "json" else fmt.replace("\\t", "\t").replace("\\n", "\n")
    cli.out.write(Template(source).execute(data) + "\n")


# --- version ------------------------------------------------------------------------------


def run_version(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import tabwrite
    from dockyard.client.api import ApiError, DaemonUnreachable

    client = client_version()
    server: dict[str, Any] | None = None
    failure: Exception | None = None
    try:
        server = cli.client().version()
    except (ApiError, DaemonUnreachable) as exc:
        failure = exc
    if opts["format"]:
        data = {"Client": client, "Server": server}
        if opts["format"] != "json":
            # Templates see docker's Go field names, which spell ApiVersion as APIVersion.
            data = {k: v if v is None else {**v, "APIVersion": v.get("ApiVersion")} for k, v in data.items()}
        _render_template(cli, opts["format"], data)
        if failure is not None:
            raise failure
        return 0
    lines = [
        "Client:",
        f" Version:\t{client['Version']}",
        f" API version:\t{client['ApiVersion']}",
        f" Python version:\t{client['GoVersion'].removeprefix('python')}",
        f" Git commit:\t{client['GitCommit']}",
        f" Built:\t{client['BuildTime']}",
        f" OS/Arch:\t{client['Os']}/{client['Arch']}",
        f" Context:\t{client['Context']}",
    ]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name", "")
        lines += ["", "Server:" + (f" {name}" if name else "")]
        for component in server.get("Components") or []:
            details = component.get("Details") or {}
            lines.append(f" {component.get('Name')}:")
            if component.get("Name") == "Engine":
                lines += [
                    f"  Version:\t{component.get('Version', '')}",
                    f"  API version:\t{details.get('ApiVersion', '')} "
                    f"(minimum version {details.get('MinAPIVersion', '')})",
                    f"  Python version:\t{details.get('GoVersion', '').removeprefix('python')}",
                    f"  Git commit:\t{details.get('GitCommit', '')}",
                    f"  Built:\t{details.get('BuildTime', '')}",
                    f"  OS/Arch:\t{details.get('Os', '')}/{details.get('Arch', '')}",
                    f"  Experimental:\t{details.get('Experimental', '')}",
                ]
            else:
                lines.append(f"  Version:\t{component.get('Version', '')}")
                lines += [f"  {key}:\t{value}" for key, value in sorted(details.items())]
    cli.out.write(tabwrite(lines, 20, 1))
    if failure is not None:
        cli.out.flush()
        raise failure
    return 0


VERSION_CMD = Command(
    ("version",), "[OPTIONS]", "Show the Dockyard version information",
    [Flag("format", "f", STRING, FORMAT_HELP)], run_version, max_args=0,
)


# --- info -------------------------------------------------------------------------------------


def _info_lines(info: dict[str, Any]) -> list[str]:
    from dockyard.cli.format import bytes_size

    def yn(value: Any) -> str:
        return "true" if value else "false"

    lines = [
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    lines += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or []]
    lines += [
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        " Plugins:",
    ]
    plugins = info.get("Plugins") or {}
    for kind in ("Volume", "Network", "Log"):
        if plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    swarm = (info.get("Swarm") or {}).get("LocalNodeState", "inactive")
    lines += [
        f" Swarm: {swarm}",
        f" Runtimes: {' '.join(sorted(info.get('Runtimes') or {}))}",
        f" Default Runtime: {info.get('DefaultRuntime', '')}",
    ]
    security = info.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for option in security:
            fields = dict(part.partition("=")[::2] for part in option.split(","))
            lines.append(f"  {fields.get('name', option)}")
            if fields.get("profile"):
                lines.append(f"   Profile: {fields['profile']}")
    lines += [
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(info.get('MemTotal', 0))}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Dockyard Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {yn(info.get('Debug'))}",
    ]
    if info.get("Debug"):
        lines += [
            f"  File Descriptors: {info.get('NFd', 0)}",
            f"  Threads: {info.get('NGoroutines', 0)}",
            f"  System Time: {info.get('SystemTime', '')}",
            f"  EventsListeners: {info.get('NEventsListener', 0)}",
        ]
    lines.append(f" Experimental: {yn(info.get('ExperimentalBuild'))}")
    insecure = (info.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {cidr}" for cidr in insecure]
    lines.append(f" Live Restore Enabled: {yn(info.get('LiveRestoreEnabled'))}")
    return lines


def run_info(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError, DaemonUnreachable

    client_info = {"Version": CLI_VERSION, "Context": "default", "Debug": cli.debug}
    try:
        info = cli.client().info()
    except (ApiError, DaemonUnreachable):
        if opts["format"]:
            raise
        info = None
        error = sys.exc_info()[1]
    if opts["format"]:
        _render_template(cli, opts["format"], {**info, "ClientInfo": client_info})  # type: ignore[dict-item]
        return 0
    out = ["Client:", f" Version:    {CLI_VERSION}", " Context:    default",
           f" Debug Mode: {'true' if cli.debug else 'false'}", ""]
    if info is None:
        cli.out.write("\n".join(out) + "\n")
        cli.out.flush()
        raise error  # type: ignore[misc]
    out += ["Server:", *_info_lines(info), ""]
    warnings = info.get("Warnings") or []
    cli.out.write("\n".join(out) + "\n")
    for warning in warnings:
        cli.err.write(warning + "\n")
    return 0


INFO = Command(
    ("info",), "[OPTIONS]", "Display system-wide information",
    [Flag("format", "f", STRING, FORMAT_HELP)], run_info, max_args=0, aliases=("system info", "info"),
)


# --- system df ------------------------------------------------------------------------------------

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _df_rows(df: dict[str, Any]) -> list[Any]:
    from dockyard.cli.format import human_size
    from dockyard.cli.template import Context

    def reclaim(reclaimable: int, total: int) -> str:
        if total > 0:
            return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
        return human_size(reclaimable)

    images = df.get("Images") or []
    layers = df.get("LayersSize", 0) or 0
    used = sum(i.get("VirtualSize", i.get("Size", 0)) - max(i.get("SharedSize", 0), 0)
               for i in images if i.get("Containers", 0) not in (0, -1))
    containers = df.get("Containers") or []
    c_total = sum(c.get("SizeRw", 0) or 0 for c in containers)
    c_reclaim = sum(c.get("SizeRw", 0) or 0 for c in containers if c.get("State") != "running")
    volumes = df.get("Volumes") or []
    v_total = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    v_reclaim = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                    if (v.get("UsageData") or {}).get("RefCount", 0) == 0)
    cache = df.get("BuildCache") or []
    b_total = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    b_reclaim = sum(b.get("Size", 0) for b in cache if not b.get("InUse") and not b.get("Shared"))
    rows = [
        ("Images", len(images), sum(1 for i in images if i.get("Containers", 0) > 0), layers,
         reclaim(layers - used, layers)),
        ("Containers", len(containers), sum(1 for c in containers if c.get("State") == "running"), c_total,
         reclaim(c_reclaim, c_total)),
        ("Local Volumes", len(volumes),
         sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0), v_total,
         reclaim(v_reclaim, v_total)),
        ("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), b_total, human_size(b_reclaim)),
    ]
    contexts = []
    for kind, total, active, size, reclaimable in rows:
        ctx = Context({"Active": str(active), "Reclaimable": reclaimable, "Size": human_size(size),
                       "TotalCount": str(total), "Type": kind})
        ctx.type_name = "*formatter.diskUsageContext"
        contexts.append(ctx)
    return contexts


def _df_verbose(cli: Cli, df: dict[str, Any]) -> None:
    import time

    from dockyard.cli.format import human_size, tabwrite, time_ago
    from dockyard.cli.image import image_rows, short_id

    now = time.time()
    out = ["Images space usage:", ""]
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"]
    for img in df.get("Images") or []:
        size = img.get("Size", 0)
        shared = max(img.get("SharedSize", 0), 0)
        # Like docker: one row per image, named by its first tag only.
        repo, tag, _ = image_rows(img, False)[0]
        lines.append("\t".join((repo, tag, short_id(img["Id"]), time_ago(img.get("Created", 0), now),
                                human_size(size, 3), human_size(shared), human_size(size - shared),
                                str(max(img.get("Containers", 0), 0)))))
    out.append(tabwrite(lines).rstrip("\n"))
    out += ["", "Containers space usage:", ""]
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"]
    for c in df.get("Containers") or []:
        names = ",".join(n.lstrip("/") for n in c.get("Names") or [])
        command = c.get("Command", "")
        command = f'"{command[:19]}…"' if len(command) > 20 else f'"{command}"'
        lines.append("\t".join((c.get("Id", "")[:12], c.get("Image", ""), command,
                                str(len(c.get("Mounts") or [])), human_size(c.get("SizeRw", 0) or 0),
                                time_ago(c.get("Created", 0), now), c.get("Status", ""), names)))
    out.append(tabwrite(lines).rstrip("\n"))
    out += ["", "Local Volumes space usage:", ""]
    lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for v in df.get("Volumes") or []:
        usage = v.get("UsageData") or {}
        lines.append("\t".join((v.get("Name", ""), str(usage.get("RefCount", 0)),
                                human_size(max(usage.get("Size", 0), 0)))))
    out.append(tabwrite(lines).rstrip("\n"))
    cache_size = sum(b.get("Size", 0) for b in df.get("BuildCache") or [])
    out += ["", f"Build cache usage: {human_size(cache_size)}", "",
            tabwrite(["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"]).rstrip("\n")]
    cli.out.write("\n".join(out) + "\n")


def run_df(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import Formatter

    df = cli.client().disk_usage()
    if opts["verbose"] and opts["format"] in ("", "table"):
        _df_verbose(cli, df)
        return 0
    cli.out.write(Formatter(opts["format"], DF_TABLE, DF_HEADERS).render(_df_rows(df)))
    return 0


DF = Command(
    ("system", "df"), "[OPTIONS]", "Show dockyard disk usage",
    [
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("verbose", "v", BOOL, "Show detailed information on space usage"),
    ],
    run_df, max_args=0,
)


# --- events ---------------------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(text: str) -> float | None:
    """Go's time.ParseDuration ("1h30m", "10s", "-5m") -> seconds, or None if it is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    rest = text.lstrip("+-")
    if not rest:
        return None
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        if i == 0:
            return None
        number = rest[:i]
        rest = rest[i:]
        for unit in ("ns", "us", "µs", "ms", "s", "m", "h"):
            if rest.startswith(unit) and not (unit == "m" and rest.startswith("ms")):
                try:
                    total += float(number) * _DURATION_UNITS[unit]
                except ValueError:
                    return None
                rest = rest[len(unit):]
                break
        else:
            return None
    return sign * total


def parse_timestamp(text: str, now: float) -> str:
    """docker's GetTimestamp: a duration before now, a Unix time, or an RFC 3339 date -> "sec.nanos"."""
    if text == "":
        return ""
    duration = _parse_duration(text)
    if duration is not None:
        return str(int(now - duration))  # docker sends whole seconds for a relative time ("10m")
    head, dot, frac = text.partition(".")
    if head.isdigit() and (not dot or frac.isdigit()):
        return text
    import time

    from dockyard.cli.format import parse_rfc3339

    try:
        if "T" in text:
            if text.endswith("Z") or "+" in text[10:] or text.count("-") > 2:
                return f"{parse_rfc3339(text):.9f}"
            return f"{time.mktime(time.strptime(text[:19], '%Y-%m-%dT%H:%M:%S')):.9f}"
        return f"{time.mktime(time.strptime(text, '%Y-%m-%d')):.9f}"
    except (ValueError, OverflowError):
        pass
    raise CliError(f'failed to parse value as time or duration: "{text}"')


def _rfc3339_nano_fixed(ns: int) -> str:
    import time

    seconds, nanos = divmod(ns, 1_000_000_000)
    local = time.localtime(seconds)
    zone = time.strftime("%z", local)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}"
    return stamp + ("Z" if zone in ("+0000", "-0000") else zone[:3] + ":" + zone[3:])


def event_line(event: dict[str, Any]) -> str:
    if event.get("timeNano"):
        stamp = _rfc3339_nano_fixed(event["timeNano"]) + " "
    elif event.get("time"):
        stamp = _rfc3339_nano_fixed(event["time"] * 1_000_000_000) + " "
    else:
        stamp = ""
    actor = event.get("Actor") or {}
    line = f"{stamp}{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line


def event_context(event: dict[str, Any]) -> Any:
    from dockyard.cli.template import Context

    actor = event.get("Actor") or {}
    ctx = Context({
        "Status": event.get("status", ""), "ID": event.get("id", ""), "From": event.get("from", ""),
        "Type": event.get("Type", ""), "Action": event.get("Action", ""),
        "Actor": {"ID": actor.get("ID", ""), "Attributes": actor.get("Attributes") or {}},
        "Scope": event.get("scope", ""), "Time": event.get("time", 0), "TimeNano": event.get("timeNano", 0),
    }, json_value=event)
    ctx.type_name = "events.Message"
    return ctx


def run_events(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import time

    filters = parse_filter_flags(EVENTS, opts["filter"])
    now = time.time()
    since = parse_timestamp(opts["since"], now)
    until = parse_timestamp(opts["until"], now)
    fmt = opts["format"]
    template = None
    if fmt:
        from dockyard.cli.template import Template

        template = Template("{{json .}}" if fmt == "json" else fmt.replace("\\t", "\t").replace("\\n", "\n"))
    out = cli.out
    for event in cli.client().events(filters, since or None, until or None):
        if template is None:
            out.write(event_line(event) + "\n")
        elif fmt == "json":
            from dockyard.cli.template import go_json

            out.write(go_json(event) + "\n")
        else:
            out.write(template.execute(event_context(event)) + "\n")
        out.flush()
    return 0


EVENTS = Command(
    ("events",), "[OPTIONS]", "Get real time events from the server",
    [
        Flag("filter", "f", LIST, "Filter output based on conditions provided", metavar="filter"),
        Flag("format", "", STRING, FORMAT_HELP),
        Flag("since", "", STRING, "Show all events created since timestamp"),
        Flag("until", "", STRING, "Stream events until this timestamp"),
    ],
    run_events, max_args=0, aliases=("system events", "events"),
)
