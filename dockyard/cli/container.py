"""Container commands: ps, start, stop, kill, restart, rm, wait, rename, pause, unpause, top, port,
diff, export, commit, prune, inspect, logs, attach, exec (run/create: run.py; cp: cp.py; stats: stats.py).

Commands that act on several containers do them in order and print each
name as it succeeds; failures are printed as docker joins them (one
`Error response from daemon: ...` line each) and make the exit status 1.
`ps` rows are template contexts with docker's field names (`{{.ID}}`,
`{{.Names}}`, `{{.RunningFor}}`, `{{.Label "k"}}`).
"""

from __future__ import annotations

import sys

from dockyard.cli.flags import (
    BOOL,
    FORMAT_HELP,
    FORMAT_TABLE_HELP,
    INT,
    LIST,
    STRING,
    Command,
    Flag,
)
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from dockyard.cli.main import Cli


def _daemon_error(exc: Exception) -> str:
    from dockyard.client.api import ApiError

    if isinstance(exc, ApiError):
        return f"Error response from daemon: {exc.message}"
    return str(exc)


def outcomes(cli: Cli, names: list[str], op: Callable[[Any, str], Any], parallel: bool = False
             ) -> Iterator[tuple[str, Exception | None]]:
    """(name, failure or None) for `op(client, name)` on each name, in the order given.

    `parallel`: like docker's parallelOperation (rm, stop, kill, pause,
    unpause), all at once, each on a connection of its own, so stopping ten
    containers takes one stop timeout, not ten.
    """
    from dockyard.client.api import ApiError

    client = cli.client()
    if not parallel or len(names) < 2:
        for name in names:
            try:
                op(client, name)
            except (ApiError, ValueError) as exc:
                yield name, exc
                continue
            yield name, None
        return
    import threading

    from dockyard.client.api import EngineClient

    results: list[Exception | None] = [None] * len(names)

    def work(i: int, name: str) -> None:
        own = EngineClient(client.host)
        try:
            op(own, name)
        except (ApiError, ValueError, OSError) as exc:
            results[i] = exc
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(i, name), daemon=True) for i, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for i, name in enumerate(names):
        threads[i].join()
        yield name, results[i]


def for_each(cli: Cli, names: list[str], op: Callable[[Any, str], Any], echo: bool = True,
             parallel: bool = False) -> int:
    """Run `op(client, name)` on each name; print the name when it works (if `echo`), collect failures
    as docker joins them."""
    errors = []
    for name, failure in outcomes(cli, names, op, parallel):
        if failure is not None:
            errors.append(_daemon_error(failure))
        elif echo:
            cli.out.write(name + "\n")
            cli.out.flush()
    if errors:
        raise CliError("\n".join(errors))
    return 0


# --- ps / container ls ----------------------------------------------------------------------

PS_HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
    "Platform": "PLATFORM",
    # In the header row {{.Label "com.example.name"}} is titled by the label's last part.
    "Label": lambda name: name.split(".")[-1].replace("-", " ").replace("_", " "),
}
PS_TABLE = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
          "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
          "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n")


def go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis for text of single-width characters."""
    return text if len(text) <= width else text[:width - 1] + "…"


def truncate_id(value: str) -> str:
    """docker's stringid.TruncateID."""
    if ":" in value:
        value = value.split(":", 1)[1]
    return value[:12]


def _familiar_image(image: str) -> str:
    """The image as `ps` shows it: short Hub names, tag kept, digest dropped."""
    name, at, _ = image.partition("@")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix) and (prefix.endswith("library/") or "/" in name[len(prefix):]):
            return name[len(prefix):]
    return name


def _ports_column(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: consecutive ports grouped into ranges, published ones as ip:port->port."""
    def order(p: dict[str, Any]) -> tuple:
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", ""))

    groups: dict[str, list[int]] = {}
    keys: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for port in sorted(ports or [], key=order):
        current = port.get("PrivatePort", 0)
        key = port.get("Type", "")
        ip = port.get("IP", "")
        if ip:
            if port.get("PublicPort", 0) != current:
                mappings.append(f"{_join_host_port(ip, str(port.get('PublicPort', 0)))}->{current}/{key}")
                continue
            key = f"{ip}/{key}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            keys.append(key)
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(_port_group(key, *group))
        groups[key] = [current, current]
    result += [_port_group(key, *groups[key]) for key in keys]
    return ", ".join(result + mappings)


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_group(key: str, first: int, last: int) -> str:
    parts = key.split("/")
    kind, ip = (parts[1], parts[0]) if len(parts) > 1 else (parts[0], "")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{kind}"


def container_context(c: dict[str, Any], trunc: bool, now: float) -> Any:
    from dockyard.cli.format import go_time, human_size, time_ago
    from dockyard.cli.template import NIL, Context

    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    if trunc:
        names = next(([n] for n in names if "/" not in n), names)
    image = c.get("Image") or ""
    if not image:
        image = "<no image>"
    elif trunc:
        image = truncate_id(c.get("ImageID") or "") if truncate_id(c.get("ImageID") or "") == truncate_id(image) \
            else _familiar_image(image)
    command = c.get("Command") or ""
    labels = c.get("Labels") or {}
    mounts = []
    for m in c.get("Mounts") or []:
        name = m.get("Name") or m.get("Source") or ""
        mounts.append(ellipsis(name, 15) if trunc else name)
    size_rw = c.get("SizeRw") or 0
    size_root = c.get("SizeRootFs") or 0
    size = human_size(size_rw, 3)
    if size_root > 0:
        size += f" (virtual {human_size(size_root, 3)})"
    networks = sorted((c.get("NetworkSettings") or {}).get("Networks") or {})
    descriptor = c.get("ImageManifestDescriptor") or {}
    platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
    ctx = Context({
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(c.get("Created", 0)),
        "ID": truncate_id(c.get("Id", "")) if trunc else c.get("Id", ""),
        "Image": image,
        "Label": lambda name: labels.get(name, ""),
        "Labels": ",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
        "Mounts": ",".join(mounts),
        "Names": ",".join(names),
        "Networks": ",".join(networks),
        "Platform": platform if platform is not None else NIL,
        "Ports": _ports_column(c.get("Ports") or []),
        "RunningFor": time_ago(c.get("Created", 0), now),
        "Size": size,
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
    })
    ctx.type_name = "*formatter.ContainerContext"
    return ctx


def run_ps(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.cli.image import parse_filter_flags

    fmt = opts["format"]
    quiet = opts["quiet"]
    if fmt and quiet:
        cli.err.write("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
    filters = parse_filter_flags(PS, opts["filter"])
    limit = opts["last"]
    if opts["latest"] and limit == -1:
        limit = 1
    size = opts["size"]
    if fmt:
        _check_ps_template(fmt)
        # like docker: sizes are costly, so they are asked for only when the template shows them
        if not quiet and not size and "size" not in opts["_set"] and ".Size" in fmt:
            size = True
    containers = cli.client().containers(all=opts["all"], limit=limit, size=size, filters=filters)
    trunc = not opts["no_trunc"]
    if quiet or fmt in ("", "table"):
        table = PS_TABLE + ("\t{{.Size}}" if size else "")
        source = "{{.ID}}" if quiet else "table " + table
    elif fmt == "raw":
        source = "container_id: {{.ID}}" if quiet else PS_RAW + ("size: {{.Size}}\n" if size else "")
    else:
        source = fmt
    from dockyard.cli.format import Formatter

    formatter = Formatter(source, PS_TABLE, PS_HEADERS)
    now = time.time()
    rows = [container_context(c, trunc, now) for c in containers]
    cli.out.write(formatter.render(rows))
    return 0


def _check_ps_template(fmt: str) -> None:
    """docker parses and runs a custom template on an empty row before it lists anything."""
    import time

    from dockyard.cli.template import Template, TemplateError

    try:
        template = Template(fmt)
    except TemplateError as exc:
        raise CliError(f"failed to parse template: {exc}") from None
    try:
        template.execute(container_context({}, True, time.time()))
    except TemplateError as exc:
        raise CliError(f"failed to execute template: {exc}") from None


PS = Command(
    ("ps",), "[OPTIONS]", "List containers",
    [
        Flag("all", "a", BOOL, "Show all containers (default shows just running)"),
        Flag("filter", "f", LIST, "Filter output based on conditions provided", metavar="filter"),
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("last", "n", INT, "Show n last created containers (includes all states)", default=-1,
             shown_default="-1"),
        Flag("latest", "l", BOOL, "Show the latest created container (includes all states)"),
        Flag("no-trunc", "", BOOL, "Don't truncate output"),
        Flag("quiet", "q", BOOL, "Only display container IDs"),
        Flag("size", "s", BOOL, "Display total file sizes"),
    ],
    run_ps, max_args=0, aliases=("container ls", "container list", "container ps", "ps"),
)
LS = Command(("container", "ls"), "[OPTIONS]", PS.short, PS.flags, run_ps, max_args=0, aliases=PS.aliases)


# --- start -------------------------------------------------------------------------------------


def run_start(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    if opts["attach"] or opts["interactive"]:
        if len(args) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        return _start_attached(cli, opts, args[0])
    for flag in ("checkpoint", "checkpoint-dir"):
        if flag.replace("-", "_") in opts["_set"]:
            # docker's words when the engine is not experimental (ours never is)
            raise CliError(f'"--{flag}" is only supported on a Dockyard daemon with experimental features enabled')
    from dockyard.client.api import ApiError

    failed = []
    client = cli.client()
    for name in args:
        try:
            client.container_start(name)
        except ApiError as exc:
            cli.err.write(f"Error response from daemon: {exc.message}\n")
            failed.append(name)
            continue
        cli.out.write(name + "\n")
    if failed:
        cli.out.flush()
        raise CliError(f"Error: failed to start containers: {', '.join(failed)}")
    return 0


def _start_attached(cli: Cli, opts: dict[str, Any], name: str) -> int:
    from dockyard.cli.run import stream_attached, wait_status
    from dockyard.cli.tty import ContainerRelay, is_terminal

    client = cli.client()
    info = client.container_inspect(name)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    container_id = info["Id"]
    stdin = opts["interactive"] and bool(config.get("OpenStdin"))
    relay = ContainerRelay(client.host, container_id, main_client=client)
    try:
        if not tty:
            relay.start(forward=True, follow_size=False)
        hijacked = client.container_attach(container_id, stdin=stdin, detach_keys=opts["detach_keys"])
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        waiting = client.container_wait(container_id, "removed" if auto_remove else "next-exit")
        try:
            client.container_start(container_id)
        except Exception:
            hijacked.close()
            if auto_remove:
                wait_status(cli, client, waiting)
            raise
        if tty and is_terminal(1):
            relay.start(forward=False, follow_size=True)
            relay.resize_to_terminal()
        if stream_attached(hijacked, tty, stdin, opts["detach_keys"]) == "detached":
            return 0
        return wait_status(cli, client, waiting)
    finally:
        relay.stop()


START = Command(
    ("start",), "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers",
    [
        Flag("attach", "a", BOOL, "Attach STDOUT/STDERR and forward signals"),
        # experimental in docker, so hidden when the engine is not (ours never is)
        Flag("checkpoint", "", STRING, "Restore from this checkpoint", hidden=True),
        Flag("checkpoint-dir", "", STRING, "Use a custom checkpoint storage directory", hidden=True),
        Flag("detach-keys", "", STRING, "Override the key sequence for detaching a container"),
        Flag("interactive", "i", BOOL, "Attach container's STDIN"),
    ],
    run_start, min_args=1, aliases=("container start", "start"),
)


# --- stop / restart / kill -------------------------------------------------------------------


def _timeout(cmd: Command, opts: dict[str, Any]) -> int | None:
    given = opts["_set"]
    if "time" in given and "timeout" in given:
        raise CliError("conflicting options: cannot specify both --timeout and --time")
    if "time" in given:
        return opts["time"]
    if "timeout" in given:
        return opts["timeout"]
    return None


def _stop_flags() -> list[Flag]:
    return [
        Flag("signal", "s", STRING, "Signal to send to the container"),
        Flag("time", "", INT, "Seconds to wait before killing the container (deprecated: use --timeout)",
             deprecated="use --timeout instead"),
        Flag("timeout", "t", INT, "Seconds to wait before killing the container"),
    ]


def run_stop(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    timeout = _timeout(STOP, opts)
    return for_each(cli, args, lambda c, name: c.container_stop(name, timeout, opts["signal"]),
                    parallel=True)


def run_restart(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    timeout = _timeout(RESTART, opts)
    return for_each(cli, args, lambda c, name: c.container_restart(name, timeout, opts["signal"]))


def run_kill(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    return for_each(cli, args, lambda c, name: c.container_kill(name, opts["signal"]), parallel=True)


STOP = Command(("stop",), "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
               _stop_flags(), run_stop, min_args=1, aliases=("container stop", "stop"))
RESTART = Command(("restart",), "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
                  _stop_flags(), run_restart, min_args=1, aliases=("container restart", "restart"))
KILL = Command(("kill",), "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
               [Flag("signal", "s", STRING, "Signal to send to the container")],
               run_kill, min_args=1, aliases=("container kill", "kill"))


# --- rm --------------------------------------------------------------------------------------------


def run_rm(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError

    def remove(client: Any, name: str) -> None:
        target = name.strip("/")
        if not target:
            raise ValueError("container name cannot be empty")
        client.container_remove(target, force=opts["force"], volumes=opts["volumes"], link=opts["link"])

    errors = []
    for name, failure in outcomes(cli, args, remove, parallel=True):
        if failure is None:
            cli.out.write(name + "\n")
        elif opts["force"] and isinstance(failure, ApiError) and failure.status == 404:
            cli.err.write(_daemon_error(failure) + "\n")  # like docker: reported, not a failure with -f
        else:
            errors.append(_daemon_error(failure))
    if errors:
        cli.out.flush()
        raise CliError("\n".join(errors))
    return 0


RM = Command(
    ("rm",), "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
    [
        Flag("force", "f", BOOL, "Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", BOOL, "Remove the specified link"),
        Flag("volumes", "v", BOOL, "Remove anonymous volumes associated with the container"),
    ],
    run_rm, min_args=1, aliases=("container rm", "container remove", "rm"),
)


# --- wait / rename / pause / unpause --------------------------------------------------------------


def run_wait(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    def wait(client: Any, name: str) -> None:
        result = client.wait_result(client.container_wait(name))
        cli.out.write(f"{result.get('StatusCode', 0)}\n")
        cli.out.flush()

    return for_each(cli, args, wait, echo=False)


def run_rename(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError

    old, new = args[0].strip(), args[1].strip()
    if not old or not new:
        raise CliError("Error: Neither old nor new names may be empty")
    try:
        cli.client().container_rename(old, new)
    except ApiError as exc:
        cli.err.write(f"Error response from daemon: {exc.message}\n")
        raise CliError(f"Error: failed to rename container named {old}") from None
    return 0


def run_pause(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    return for_each(cli, args, lambda c, name: c.container_pause(name), parallel=True)


def run_unpause(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    return for_each(cli, args, lambda c, name: c.container_unpause(name), parallel=True)


WAIT = Command(("wait",), "CONTAINER [CONTAINER...]",
               "Block until one or more containers stop, then print their exit codes",
               [], run_wait, min_args=1, aliases=("container wait", "wait"))
RENAME = Command(("rename",), "CONTAINER NEW_NAME", "Rename a container", [], run_rename, min_args=2, max_args=2,
                 aliases=("container rename", "rename"))
PAUSE = Command(("pause",), "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
                [], run_pause, min_args=1, aliases=("container pause", "pause"))
UNPAUSE = Command(("unpause",), "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
                  [], run_unpause, min_args=1, aliases=("container unpause", "unpause"))


# --- top / port / diff ----------------------------------------------------------------------------------


def run_top(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import tabwrite

    listing = cli.client().container_top(args[0], " ".join(args[1:]))
    lines = ["\t".join(listing.get("Titles") or [])]
    lines += ["\t".join(proc) for proc in listing.get("Processes") or []]
    cli.out.write(tabwrite(lines, 20, 3))
    return 0


def _natural_key(text: str) -> list:
    import re

    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def run_port(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    info = cli.client().container_inspect(args[0])
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    if len(args) > 1:
        port, _, proto = args[1].partition("/")
        proto = proto or "tcp"
        if not (port.isdigit() and int(port) < 65536):
            reason = "value out of range" if port.isdigit() else "invalid syntax"
            raise CliError(f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": {reason}')
        frontends = ports.get(f"{port}/{proto}") or []
        if not frontends:
            raise CliError(f"Error: No public port '{args[1]}' published for {args[0]}")
        out = [_join_host_port(f.get("HostIp", ""), f.get("HostPort", "")) for f in frontends]
    else:
        for private, frontends in ports.items():
            for f in frontends or []:
                out.append(f"{private} -> {_join_host_port(f.get('HostIp', ''), f.get('HostPort', ''))}")
    if out:
        out.sort(key=_natural_key)
        cli.out.write("\n".join(out) + "\n")
    return 0


_CHANGE_KINDS = {0: "C", 1: "A", 2: "D"}


def run_diff(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    if not args[0]:
        raise CliError("Container name cannot be empty")
    changes = cli.client().container_changes(args[0]) or []
    cli.out.write("".join(f"{_CHANGE_KINDS.get(c.get('Kind'), '?')} {c.get('Path', '')}\n" for c in changes))
    return 0


TOP = Command(("top",), "CONTAINER [ps OPTIONS]", "Display the running processes of a container", [], run_top,
              min_args=1, aliases=("container top", "top"), interspersed=False)
PORT = Command(("port",), "CONTAINER [PRIVATE_PORT[/PROTO]]",
               "List port mappings or a specific mapping for the container", [], run_port, min_args=1, max_args=2,
               aliases=("container port", "port"), ranged=True)
DIFF = Command(("diff",), "CONTAINER", "Inspect changes to files or directories on a container's filesystem",
               [], run_diff, min_args=1, max_args=1, aliases=("container diff", "diff"))


# --- export / commit --------------------------------------------------------------------------------------


def run_export(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import os

    output = opts["output"]
    if not output and sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    tmp = None
    if output:
        # docker's atomic writer: a temporary file next to the target, renamed when complete
        _check_output_file(output)
        directory = os.path.dirname(os.path.abspath(output))
        tmp = os.path.join(directory, f".{os.path.basename(output)}.{os.getpid()}.tmp")
        try:
            target = open(tmp, "wb")  # noqa: SIM115 - closed below
            os.chmod(tmp, 0o600)
        except OSError as exc:
            raise CliError(f"failed to export container: open {tmp}: {(exc.strerror or str(exc)).lower()}") \
                from None
    try:
        response = cli.client().container_export(args[0])
        if tmp is None:
            from dockyard.cli.stream import body_to_stdout

            body_to_stdout(cli, response)
            return 0
        with target:
            for piece in response.iter_raw():
                target.write(piece)
        os.replace(tmp, output)
        tmp = None
        return 0
    finally:
        if tmp is not None:
            try:
                target.close()
                os.unlink(tmp)
            except OSError:
                pass


def _check_output_file(output: str) -> None:
    """moby's atomicwriter checks, in its words: the directory must exist, the file be a regular one."""
    import os
    import stat

    parent = os.path.dirname(output) or "."
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise CliError(f"failed to export container: invalid output path: stat {parent}: "
                       f"{(exc.strerror or str(exc)).lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"failed to export container: invalid output path: stat {parent}: not a directory")
    try:
        mode = os.stat(output).st_mode
    except OSError:
        return
    kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device file"),
             (stat.S_ISBLK, "block device file"), (stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"))
    for test, kind in kinds:
        if test(mode):
            raise CliError(f"failed to export container: cannot write to a {kind}")


def run_commit(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    repo = tag = ""
    if len(args) > 1:
        from dockyard.cli.run import parse_reference

        try:
            ref = parse_reference(args[1])
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if ref.digest is not None:
            raise CliError("refusing to create a tag with a digest reference")
        # the docker CLI sends the repository fully qualified (docker.io/library/x)
        repo, tag = ref.name, ref.tag or "latest"
    result = cli.client().container_commit(args[0], repo, tag, opts["message"], opts["author"], opts["change"],
                                           opts["pause"])
    cli.out.write(f"{result.get('Id', '')}\n")
    return 0


EXPORT = Command(("export",), "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
                 [Flag("output", "o", STRING, "Write to a file, instead of STDOUT")], run_export, min_args=1,
                 max_args=1, aliases=("container export", "export"))
COMMIT = Command(
    ("commit",), "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
    [
        Flag("author", "a", STRING, 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Flag("change", "c", LIST, "Apply Dockerfile instruction to the created image", metavar="list"),
        Flag("message", "m", STRING, "Commit message"),
        Flag("pause", "p", BOOL, "Pause container during commit", default=True, shown_default="true"),
    ],
    run_commit, min_args=1, max_args=2, aliases=("container commit", "commit"), interspersed=False, ranged=True,
)


# --- prune / inspect ---------------------------------------------------------------------------------------


def run_prune(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import human_size
    from dockyard.cli.image import confirm, parse_filter_flags

    filters = parse_filter_flags(PRUNE, opts["filter"])
    if not opts["force"] and not confirm(cli, "WARNING! This will remove all stopped containers."):
        return 0
    report = cli.client().container_prune(filters) or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        cli.out.write("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) + "\n")
    cli.out.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0) if deleted else 0)}\n")
    return 0


def run_inspect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.image import inspect_each

    client = cli.client()
    return inspect_each(cli, args, lambda name: client.container_inspect(name, size=opts["size"]), opts["format"])


PRUNE = Command(
    ("container", "prune"), "[OPTIONS]", "Remove all stopped containers",
    [
        Flag("filter", "", LIST, 'Provide filter values (e.g. "until=<timestamp>")', metavar="filter"),
        Flag("force", "f", BOOL, "Do not prompt for confirmation"),
    ],
    run_prune, max_args=0,
)
INSPECT = Command(
    ("container", "inspect"), "[OPTIONS] CONTAINER [CONTAINER...]",
    "Display detailed information on one or more containers",
    [Flag("format", "f", STRING, FORMAT_HELP), Flag("size", "s", BOOL, "Display total file sizes")],
    run_inspect, min_args=1,
)


# --- logs ------------------------------------------------------------------------------------------------


def run_logs(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.cli.stream import StreamError, copy_logs
    from dockyard.cli.system import parse_timestamp

    client = cli.client()
    info = client.container_inspect(args[0])
    now = time.time()
    bounds = {}
    for key in ("since", "until"):
        try:
            bounds[key] = parse_timestamp(opts[key], now)
        except CliError as exc:
            raise CliError(f'invalid value for "{key}": {exc.message}') from None
    response = client.container_logs(info["Id"], follow=opts["follow"], since=bounds["since"],
                                     until=bounds["until"], timestamps=opts["timestamps"], tail=opts["tail"],
                                     details=opts["details"])
    cli.out.flush()
    try:
        copy_logs(response, bool((info.get("Config") or {}).get("Tty")))
    except StreamError as exc:
        raise CliError(str(exc)) from None
    finally:
        response.close()
    return 0


LOGS = Command(
    ("logs",), "[OPTIONS] CONTAINER", "Fetch the logs of a container",
    [
        Flag("details", "", BOOL, "Show extra details provided to logs"),
        Flag("follow", "f", BOOL, "Follow log output"),
        Flag("since", "", STRING, 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" '
             "for 42 minutes)"),
        Flag("tail", "n", STRING, "Number of lines to show from the end of the logs", default="all",
             shown_default='"all"'),
        Flag("timestamps", "t", BOOL, "Show timestamps"),
        Flag("until", "", STRING, 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. '
             '"42m" for 42 minutes)'),
    ],
    run_logs, min_args=1, max_args=1, aliases=("container logs", "logs"),
)


# --- attach --------------------------------------------------------------------------------------------------


def _attachable(info: dict[str, Any]) -> None:
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CliError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CliError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise CliError("You cannot attach to a restarting container, wait until it is running")


def run_attach(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.run import stream_attached
    from dockyard.cli.tty import ContainerRelay, is_terminal
    from dockyard.client.api import ApiError

    client = cli.client()
    name = args[0]
    waiting = client.container_wait(name)
    info = client.container_inspect(name)
    _attachable(info)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = not opts["no_stdin"] and bool(config.get("OpenStdin"))
    if not opts["no_stdin"] and tty and not is_terminal(0):
        raise CliError("the input device is not a TTY")
    relay = ContainerRelay(client.host, name, main_client=client)
    try:
        if opts["sig_proxy"] and not tty:
            relay.start(forward=True, follow_size=False)
        hijacked = client.container_attach(name, stdin=stdin, detach_keys=opts["detach_keys"])
        _attachable(client.container_inspect(name))
        if tty and is_terminal(1):
            # like docker: one size up first, so the program redraws at the real size that follows
            from dockyard.cli.tty import size

            rows, columns = size(1)
            try:
                relay.resize(rows + 1, columns + 1)
            except ApiError:
                pass
            relay.start(forward=False, follow_size=True)
            relay.resize_to_terminal()
        if stream_attached(hijacked, tty, stdin, opts["detach_keys"]) == "detached":
            waiting.close()
            raise CliError("read escape sequence")
        result = client.wait_result(waiting)
    finally:
        relay.stop()
    error = result.get("Error")
    if error:
        raise CliError(error.get("Message", ""))
    return int(result.get("StatusCode", 0))


ATTACH = Command(
    ("attach",), "[OPTIONS] CONTAINER",
    "Attach local standard input, output, and error streams to a running container",
    [
        Flag("detach-keys", "", STRING, "Override the key sequence for detaching a container"),
        Flag("no-stdin", "", BOOL, "Do not attach STDIN"),
        Flag("sig-proxy", "", BOOL, "Proxy all received signals to the process", default=True,
             shown_default="true"),
    ],
    run_attach, min_args=1, max_args=1, aliases=("container attach", "attach"),
)


# --- exec -------------------------------------------------------------------------------------------------------


def run_exec(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import os

    from dockyard.cli import values
    from dockyard.cli.run import stream_attached
    from dockyard.cli.tty import ContainerRelay, is_terminal

    env = []
    try:
        for path in opts["env_file"]:
            env += values.read_kv_file(path, os.environ.get)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    env += opts["env"]
    detach = opts["detach"]
    tty = opts["tty"]
    stdin = opts["interactive"] and not detach
    config: dict[str, Any] = {
        "User": opts["user"], "Privileged": opts["privileged"], "Tty": tty, "AttachStdin": stdin,
        "AttachStderr": not detach, "AttachStdout": not detach, "Detach": detach, "DetachKeys": opts["detach_keys"],
        "Env": env or None, "WorkingDir": opts["workdir"], "Cmd": args[1:],
    }
    client = cli.client()
    name = args[0]
    client.container_inspect(name)
    if not detach and stdin and tty and not is_terminal(0):
        raise CliError("the input device is not a TTY")
    exec_id = client.exec_create(name, config).get("Id") or ""
    if not exec_id:
        raise CliError("exec ID empty")
    if detach:
        client.exec_start_detached(exec_id, tty)
        return 0
    hijacked = client.exec_start(exec_id, tty)
    relay = ContainerRelay(client.host, exec_id, is_exec=True, main_client=client)
    try:
        if tty and is_terminal(0):
            relay.start(forward=False, follow_size=True)
            relay.resize_to_terminal()
        if stream_attached(hijacked, tty, stdin, opts["detach_keys"]) == "detached":
            raise CliError("read escape sequence")
    finally:
        relay.stop()
    return int(client.exec_inspect(exec_id).get("ExitCode") or 0)


def _env_value(text: str) -> str:
    from dockyard.cli import values

    return values.env(text)


EXEC = Command(
    ("exec",), "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
    [
        Flag("detach", "d", BOOL, "Detached mode: run command in the background"),
        Flag("detach-keys", "", STRING, "Override the key sequence for detaching a container"),
        Flag("env", "e", LIST, "Set environment variables", metavar="list", check=_env_value),
        Flag("env-file", "", LIST, "Read in a file of environment variables", metavar="list"),
        Flag("interactive", "i", BOOL, "Keep STDIN open even if not attached"),
        Flag("privileged", "", BOOL, "Give extended privileges to the command"),
        Flag("tty", "t", BOOL, "Allocate a pseudo-TTY"),
        Flag("user", "u", STRING, 'Username or UID (format: "<name|uid>[:<group|gid>]")'),
        Flag("workdir", "w", STRING, "Working directory inside the container"),
    ],
    run_exec, min_args=2, aliases=("container exec", "exec"), interspersed=False,
)
