"""`dockyard compose`: multi-container applications from one file, in docker compose v2's words.

    dockyard compose [-f FILE]... [-p NAME] [--project-directory DIR] [--env-file FILE] COMMAND

The project options come before the command, as docker compose takes them;
the dispatcher hands `-f`, `-p`… to `OPTIONS_FIRST`, which reads them and runs
the command after them. Progress goes to stderr, one line per step
(` Container p-web-1  Started`); logs of several containers go to stdout,
each line after its container's name (`web-1  | …`). The model and the
convergence live in dockyard/compose; this module only reads flags and prints.
"""

from __future__ import annotations

import sys

from dockyard.cli.flags import BOOL, INT, LIST, STRING, Command, Flag, UsageError
from dockyard.cli.main import CliError


def _site_packages() -> None:
    """PyYAML lives in site-packages, which the lean `dockyard` launcher (python -IS) leaves off the
    path to start fast; compose commands put it back (`site.main()`, as a normal start would)."""
    try:
        import yaml  # noqa: F401
    except ModuleNotFoundError:
        import site

        site.main()


_site_packages()

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli
    from dockyard.compose.convergence import Compose
    from dockyard.compose.model import Project


# --- project options --------------------------------------------------------------------------------------------

_PROJECT_FLAGS = [
    Flag("env-file", "", LIST, "Specify an alternate environment file", metavar="stringArray"),
    Flag("file", "f", LIST, "Compose configuration files", metavar="stringArray"),
    Flag("project-directory", "", STRING, "Specify an alternate working directory\n(default: the path of the, "
         "first specified, Compose file)"),
    Flag("project-name", "p", STRING, "Project name"),
]


def _project_options(opts: dict[str, Any]) -> dict[str, Any]:
    return opts.get("_project") or {"file": [], "project_name": "", "project_directory": "", "env_file": []}


def _warn(message: str) -> None:
    sys.stderr.write(f"WARN[0000] {message}\n")
    sys.stderr.flush()


def load(opts: dict[str, Any]) -> Project:
    from dockyard.compose.interpolation import ComposeError
    from dockyard.compose.loader import Options, load_project

    given = _project_options(opts)
    env_files = given["env_file"]
    options = Options(files=given["file"], project_name=given["project_name"],
                      project_directory=given["project_directory"], env_file=env_files[-1] if env_files else "",
                      stdin_text=sys.stdin.read)
    try:
        return load_project(options, _warn)
    except ComposeError as exc:
        raise CliError(exc.message) from None


def _report(resource: str, status: str) -> None:
    sys.stderr.write(f" {resource}  {status}\n")
    sys.stderr.flush()


def engine(cli: Cli, project: Project) -> Compose:
    from dockyard.compose.convergence import Compose

    return Compose(cli.client(), project, _report, _warn)


def _services(project: Project, names: list[str], with_dependencies: bool = True) -> list:
    from dockyard.compose.interpolation import ComposeError

    try:
        return project.ordered(names, with_dependencies)
    except ComposeError as exc:
        raise CliError(exc.message) from None


def _guarded(run):  # noqa: ANN001, ANN202 - a decorator for command handlers
    """Model errors raised while a command runs are printed as compose prints them."""
    def wrapper(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
        from dockyard.compose.interpolation import ComposeError

        try:
            return run(cli, opts, args)
        except ComposeError as exc:
            raise CliError(exc.message) from None

    return wrapper


def log_name(project: Project, container: str) -> str:
    """What compose prints before a container's log lines: the name less `<project>-`."""
    prefix = project.name + "-"
    return container[len(prefix):] if container.startswith(prefix) else container


# --- logs of several containers ---------------------------------------------------------------------------------


class LogPrinter:
    """Lines from several containers to one output, each after its container's name (`web-1  | `).

    Frames (stdcopy) are taken apart when the container has no TTY; a line
    is written whole, under a lock, so lines of two containers never mix.
    """

    def __init__(self, names: list[str], prefix: bool = True, out: Any = None):
        import threading

        self.width = max((len(n) for n in names), default=0) + 1
        self.prefix = prefix
        self.out = out or sys.stdout.buffer
        self.lock = threading.Lock()

    def label(self, name: str) -> bytes:
        return f"{name:<{self.width}} | ".encode() if self.prefix else b""

    def line(self, name: str, text: bytes) -> None:
        with self.lock:
            self.out.write(self.label(name) + text + b"\n")
            self.out.flush()

    def message(self, text: str) -> None:
        with self.lock:
            self.out.write(text.encode() + b"\n")
            self.out.flush()

    def source(self, name: str, tty: bool) -> LogSource:
        return LogSource(self, name, tty)


class LogSource:
    def __init__(self, printer: LogPrinter, name: str, tty: bool):
        self.printer = printer
        self.name = name
        self.tty = tty
        self.frames = bytearray()
        self.pending = {1: bytearray(), 2: bytearray()}

    def feed(self, data: bytes) -> None:
        if self.tty:
            self._text(1, data)
            return
        buf = self.frames
        buf += data
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                return
            stream = 2 if buf[0] == 2 else 1
            payload = bytes(buf[8:8 + size])
            del buf[:8 + size]
            self._text(stream, payload)

    def _text(self, stream: int, data: bytes) -> None:
        pending = self.pending[stream]
        pending += data
        while True:
            end = pending.find(b"\n")
            if end < 0:
                return
            line = bytes(pending[:end]).rstrip(b"\r")
            del pending[:end + 1]
            self.printer.line(self.name, line)

    def close(self) -> None:
        for pending in self.pending.values():
            if pending:
                self.printer.line(self.name, bytes(pending))
                pending.clear()


def _tty_of(summary: dict[str, Any], client: Any) -> bool:
    try:
        return bool((client.container_inspect(summary["Id"]).get("Config") or {}).get("Tty"))
    except Exception:  # noqa: BLE001 - gone meanwhile: its frames say what they are
        return False


# --- up -----------------------------------------------------------------------------------------------------------


def _scaled(project: Project, scales: list[str]) -> Project:
    import dataclasses

    services = dict(project.services)
    for item in scales:
        name, eq, count = item.partition("=")
        if not eq or not count.isdigit():
            raise CliError(f"invalid --scale value {item!r}: expected SERVICE=NUM")
        if name not in services:
            raise CliError(f"no such service: {name}")
        services[name] = dataclasses.replace(services[name], scale=int(count))
    return dataclasses.replace(project, services=services)


@_guarded
def run_up(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    project = _scaled(load(opts), opts["scale"])
    services = _services(project, args, not opts["no_deps"])
    compose = engine(cli, project)
    compose.create(services, force_recreate=opts["force_recreate"], no_recreate=opts["no_recreate"],
                   remove_orphans=opts["remove_orphans"])
    if opts["no_start"]:
        return 0
    if opts["detach"]:
        compose.start(services)
        return 0
    attached = [s for s in services if not args or s.name in args]
    return _up_attached(cli, opts, compose, services, attached)


def _up_attached(cli: Cli, opts: dict[str, Any], compose: Compose, services: list, attached: list) -> int:
    """Attach to the containers (before they start: nothing is missed), start them, print their output
    until they have all exited; Ctrl-C stops them."""
    import queue
    import signal
    import threading

    from dockyard.compose.convergence import summary_name

    client = cli.client()
    project = compose.project
    summaries = compose.containers([s.name for s in attached])
    names = {c["Id"]: log_name(project, summary_name(c)) for c in summaries}
    printer = LogPrinter(list(names.values()), prefix=not opts["no_log_prefix"])
    sys.stderr.write(f"Attaching to {', '.join(names.values())}\n")
    sys.stderr.flush()
    ended: queue.Queue = queue.Queue()
    streams = []
    for summary in summaries:
        tty = _tty_of(summary, client)
        hijacked = client.container_attach(summary["Id"], stdin=False)
        hijacked.close_write()
        streams.append((summary, hijacked, printer.source(names[summary["Id"]], tty)))

    def pump(summary: dict[str, Any], hijacked: Any, source: LogSource) -> None:
        try:
            if hijacked.early:
                source.feed(hijacked.early)
            while True:
                data = hijacked.sock.recv(1 << 16)
                if not data:
                    break
                source.feed(data)
        except OSError:
            pass
        finally:
            source.close()
        ended.put((summary, _exit_code(client.host, summary["Id"])))

    for summary, hijacked, source in streams:
        threading.Thread(target=pump, args=(summary, hijacked, source), daemon=True).start()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    remaining = len(streams)

    def report_exits(wait: float | None) -> int | None:
        """Print each container's exit as its output ends; the first exit status when aborting."""
        nonlocal remaining
        while remaining:
            try:
                summary, code = ended.get(timeout=wait)
            except queue.Empty:
                return None
            remaining -= 1
            if code is None:  # removed meanwhile
                continue
            printer.message(f"{names[summary['Id']]} exited with code {code}")
            if opts["abort_on_container_exit"]:
                return code
        return None

    exit_code = 0
    try:
        compose.start(services)
        aborted = report_exits(None)
        if aborted is not None:
            sys.stderr.write("Aborting on container exit...\n")
            compose.stop(compose.containers([s.name for s in services]), opts["timeout"])
            exit_code = aborted
    except KeyboardInterrupt:
        sys.stderr.write("Gracefully stopping... (press Ctrl+C again to force)\n")
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        compose.stop(compose.containers([s.name for s in services]), opts["timeout"])
        opts["abort_on_container_exit"] = False
        report_exits(5.0)  # the exits the stop caused
        exit_code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        for _, hijacked, _ in streams:
            hijacked.close()
    return exit_code


def _exit_code(host: str, container: str) -> int | None:
    """The exit status of a container whose output just ended (the engine may not have recorded
    the exit yet: `wait` returns once it has); None when it is gone."""
    from dockyard.client.api import ApiError, EngineClient

    own = EngineClient(host)
    try:
        return int(own.wait_result(own.container_wait(container)).get("StatusCode", 0))
    except (ApiError, OSError, ValueError):
        return None
    finally:
        own.close()


def _timeout_flag() -> Flag:
    return Flag("timeout", "t", INT, "Specify a shutdown timeout in seconds", default=None)


UP = Command(
    ("compose", "up"), "[OPTIONS] [SERVICE...]", "Create and start containers",
    [
        Flag("abort-on-container-exit", "", BOOL, "Stops all containers if any container was stopped."),
        Flag("detach", "d", BOOL, "Detached mode: Run containers in the background"),
        Flag("force-recreate", "", BOOL, "Recreate containers even if their configuration and image haven't "
             "changed"),
        Flag("no-deps", "", BOOL, "Don't start linked services"),
        Flag("no-log-prefix", "", BOOL, "Don't print prefix in logs"),
        Flag("no-recreate", "", BOOL, "If containers already exist, don't recreate them."),
        Flag("no-start", "", BOOL, "Don't start the services after creating them"),
        Flag("remove-orphans", "", BOOL, "Remove containers for services not defined in the Compose file"),
        Flag("scale", "", LIST, "Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose "
             "file if present.", metavar="scale"),
        _timeout_flag(),
    ],
    run_up,
)


# --- down, stop, start, restart, rm -------------------------------------------------------------------------------


@_guarded
def run_down(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    project = load(opts)
    compose = engine(cli, project)
    if not compose.down(remove_orphans=opts["remove_orphans"], volumes=opts["volumes"], timeout=opts["timeout"]):
        _warn(f'No resource found to remove for project "{project.name}".')
    return 0


DOWN = Command(
    ("compose", "down"), "[OPTIONS]", "Stop and remove containers, networks",
    [
        Flag("remove-orphans", "", BOOL, "Remove containers for services not defined in the Compose file"),
        _timeout_flag(),
        Flag("volumes", "v", BOOL, "Remove named volumes declared in the \"volumes\" section of the Compose "
             "file and anonymous volumes attached to containers"),
    ],
    run_down, max_args=0,
)


def _selected(compose: Compose, args: list[str], all: bool = True) -> list[dict[str, Any]]:
    if args:
        for name in args:
            compose.project.service(name)
    return compose.containers(args or None, all=all)


@_guarded
def run_stop(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    compose = engine(cli, load(opts))
    compose.stop(_selected(compose, args), opts["timeout"])
    return 0


@_guarded
def run_start(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    project = load(opts)
    compose = engine(cli, project)
    services = _services(project, args, with_dependencies=False)
    if not compose.containers([s.name for s in services]):
        raise CliError("service " + ", ".join(s.name for s in services) + " has no container to start"
                       if args else f'no container found for project "{project.name}": not found')
    compose.start(services, wait_dependencies=False)
    return 0


@_guarded
def run_restart(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    compose = engine(cli, load(opts))
    compose.restart(_selected(compose, args), opts["timeout"])
    return 0


@_guarded
def run_rm(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.compose.convergence import summary_name

    compose = engine(cli, load(opts))
    summaries = _selected(compose, args)
    if opts["stop"]:
        compose.stop(summaries)
        summaries = _selected(compose, args)
    stopped = [c for c in summaries if c.get("State") in ("exited", "created", "dead")]
    if not stopped:
        sys.stderr.write("No stopped containers\n")
        return 0
    if not opts["force"]:
        names = ", ".join(summary_name(c) for c in stopped)
        sys.stdout.write(f"Going to remove {names}\n? Are you sure? (y/N) ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    compose.remove(stopped, volumes=opts["volumes"])
    return 0


STOP = Command(("compose", "stop"), "[OPTIONS] [SERVICE...]", "Stop services", [_timeout_flag()], run_stop)
START = Command(("compose", "start"), "[SERVICE...]", "Start services", [], run_start)
RESTART = Command(("compose", "restart"), "[OPTIONS] [SERVICE...]", "Restart service containers",
                  [_timeout_flag()], run_restart)
RM = Command(
    ("compose", "rm"), "[OPTIONS] [SERVICE...]", "Removes stopped service containers",
    [
        Flag("force", "f", BOOL, "Don't ask to confirm removal"),
        Flag("stop", "s", BOOL, "Stop the containers, if required, before removing"),
        Flag("volumes", "v", BOOL, "Remove any anonymous volumes attached to containers"),
    ],
    run_rm,
)


# --- ps -----------------------------------------------------------------------------------------------------------

PS_HEADERS = {"Name": "NAME", "Image": "IMAGE", "Command": "COMMAND", "Service": "SERVICE",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "ID": "CONTAINER ID",
              "State": "STATE", "Project": "PROJECT", "ExitCode": "EXIT CODE", "Labels": "LABELS",
              "Names": "NAMES", "Networks": "NETWORKS", "Mounts": "MOUNTS", "CreatedAt": "CREATED AT",
              "Size": "SIZE", "LocalVolumes": "LOCAL VOLUMES", "Publishers": "PUBLISHERS"}
PS_TABLE = "{{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"


def _ps_context(summary: dict[str, Any], now: float) -> Any:
    from dockyard.cli.container import container_context
    from dockyard.cli.template import Context

    base = container_context(summary, True, now)
    labels = summary.get("Labels") or {}
    fields = dict(base.fields)
    fields.update({
        "Name": fields["Names"],
        "Service": labels.get("com.docker.compose.service", ""),
        "Project": labels.get("com.docker.compose.project", ""),
        "ExitCode": _exit_from_status(summary),
        "Publishers": [{"URL": p.get("IP", ""), "TargetPort": p.get("PrivatePort", 0),
                        "PublishedPort": p.get("PublicPort", 0), "Protocol": p.get("Type", "")}
                       for p in summary.get("Ports") or []],
    })
    ctx = Context(fields)
    ctx.type_name = "*formatter.ContainerContext"
    return ctx


def _exit_from_status(summary: dict[str, Any]) -> int:
    status = summary.get("Status") or ""
    if status.startswith("Exited (") and ")" in status:
        try:
            return int(status[len("Exited ("):status.index(")")])
        except ValueError:
            return 0
    return 0


@_guarded
def run_ps(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.cli.format import Formatter

    project = load(opts)
    if opts["services"]:
        names = [s.name for s in _services(project, args, False)]
        compose = engine(cli, project)
        running = {c.get("Labels", {}).get("com.docker.compose.service") for c in compose.containers(names)}
        cli.out.write("".join(n + "\n" for n in names if n in running or opts["all"]))
        return 0
    compose = engine(cli, project)
    if args:
        for name in args:
            project.service(name)
    summaries = compose.containers(args or None, all=opts["all"] or bool(opts["status"]))
    if opts["status"]:
        summaries = [c for c in summaries if c.get("State") in opts["status"]]
    summaries.sort(key=lambda c: (c.get("Names") or [""])[0])
    fmt = opts["format"]
    if opts["quiet"]:
        cli.out.write("".join(c["Id"] + "\n" for c in summaries))
        return 0
    now = time.time()
    if fmt == "json":
        from dockyard.jsonio import dumps

        rows = [_ps_context(c, now).fields for c in summaries]
        cli.out.write(dumps([{k: v for k, v in r.items() if not callable(v)} for r in rows]) + "\n")
        return 0
    formatter = Formatter(fmt if fmt not in ("", "table") else "table " + PS_TABLE, PS_TABLE, PS_HEADERS)
    cli.out.write(formatter.render([_ps_context(c, now) for c in summaries]))
    return 0


PS = Command(
    ("compose", "ps"), "[OPTIONS] [SERVICE...]", "List containers",
    [
        Flag("all", "a", BOOL, "Show all stopped containers (including those created by the run command)"),
        Flag("format", "", STRING, "Format output using a custom template:\n'table':            Print output in "
             "table format with column headers (default)\n'table TEMPLATE':   Print output in table format using "
             "the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output "
             "using the given Go template", default="table", shown_default='"table"'),
        Flag("quiet", "q", BOOL, "Only display IDs"),
        Flag("services", "", BOOL, "Display services"),
        Flag("status", "", LIST, "Filter services by status. Values: [paused | restarting | removing | running | "
             "dead | created | exited]", metavar="stringArray"),
    ],
    run_ps,
)


# --- logs ---------------------------------------------------------------------------------------------------------


@_guarded
def run_logs(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import threading

    from dockyard.compose.convergence import summary_name

    project = load(opts)
    compose = engine(cli, project)
    summaries = _selected(compose, args)
    client = cli.client()
    names = [log_name(project, summary_name(c)) for c in summaries]
    printer = LogPrinter(names, prefix=not opts["no_log_prefix"])
    since, until = _time_bounds(opts)

    def follow(summary: dict[str, Any], name: str, own: Any) -> None:
        source = printer.source(name, _tty_of(summary, own))
        response = own.container_logs(summary["Id"], follow=opts["follow"], since=since, until=until,
                                      timestamps=opts["timestamps"], tail=opts["tail"])
        try:
            for piece in response.iter_raw():
                source.feed(piece)
        finally:
            source.close()
            response.close()

    if not opts["follow"]:
        for summary, name in zip(summaries, names, strict=True):
            follow(summary, name, client)
        return 0
    from dockyard.client.api import EngineClient

    def work(summary: dict[str, Any], name: str) -> None:
        own = EngineClient(client.host)
        try:
            follow(summary, name, own)
        except Exception:  # noqa: BLE001,S110 - a container removed meanwhile ends its part only
            pass
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(c, n), daemon=True) for c, n in zip(summaries, names,
                                                                                         strict=True)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        return 130
    return 0


def _time_bounds(opts: dict[str, Any]) -> tuple[str, str]:
    import time

    from dockyard.cli.system import parse_timestamp

    now = time.time()
    out = []
    for key in ("since", "until"):
        try:
            out.append(parse_timestamp(opts[key], now))
        except CliError as exc:
            raise CliError(f'invalid value for "{key}": {exc.message}') from None
    return out[0], out[1]


LOGS = Command(
    ("compose", "logs"), "[OPTIONS] [SERVICE...]", "View output from containers",
    [
        Flag("follow", "f", BOOL, "Follow log output"),
        Flag("no-color", "", BOOL, "Produce monochrome output"),
        Flag("no-log-prefix", "", BOOL, "Don't print prefix in logs"),
        Flag("since", "", STRING, "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for "
             "42 minutes)"),
        Flag("tail", "n", STRING, "Number of lines to show from the end of the logs for each container",
             default="all", shown_default='"all"'),
        Flag("timestamps", "t", BOOL, "Show timestamps"),
        Flag("until", "", STRING, "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m "
             "for 42 minutes)"),
    ],
    run_logs,
)


# --- config -------------------------------------------------------------------------------------------------------


def render_config(project: Project, fmt: str = "yaml") -> str:
    doc = project.canonical
    ordered: dict[str, Any] = {"name": doc["name"], "services": {
        name: {key: svc[key] for key in sorted(svc)} for name, svc in sorted(doc["services"].items())}}
    for section in ("networks", "volumes"):
        if doc.get(section):
            ordered[section] = doc[section]
    if fmt == "json":
        import json

        return json.dumps(ordered, indent=2) + "\n"
    import yaml

    return yaml.dump(ordered, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)


@_guarded
def run_config(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    project = load(opts)
    if opts["quiet"]:
        return 0
    if opts["services"]:
        cli.out.write("".join(s.name + "\n" for s in project.ordered()))
        return 0
    if opts["volumes"]:
        cli.out.write("".join(k + "\n" for k in project.volumes))
        return 0
    if opts["format"] not in ("yaml", "json"):
        raise CliError(f"unsupported format {opts['format']!r}: yaml or json")
    cli.out.write(render_config(project, opts["format"]))
    return 0


CONFIG = Command(
    ("compose", "config"), "[OPTIONS] [SERVICE...]", "Parse, resolve and render compose file in canonical format",
    [
        Flag("format", "", STRING, 'Format the output. Values: [yaml | json] (default "yaml")', default="yaml"),
        Flag("quiet", "q", BOOL, "Only validate the configuration, don't print anything."),
        Flag("services", "", BOOL, "Print the service names, one per line."),
        Flag("volumes", "", BOOL, "Print the volume names, one per line."),
    ],
    run_config,
)


# --- exec, pull -------------------------------------------------------------------------------------------------


@_guarded
def run_exec(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.container import run_exec as container_exec
    from dockyard.cli.tty import is_terminal
    from dockyard.compose.convergence import summary_name, summary_number

    project = load(opts)
    service = project.service(args[0])
    compose = engine(cli, project)
    running = [c for c in compose.containers([service.name], all=False)
               if summary_number(c) == opts["index"]]
    if not running:
        raise CliError(f'service "{service.name}" is not running')
    tty = not opts["no_TTY"] and is_terminal(0) and is_terminal(1)
    exec_opts = {"env_file": [], "env": opts["env"], "detach": opts["detach"], "tty": tty,
                 "interactive": opts["interactive"], "user": opts["user"], "workdir": opts["workdir"],
                 "privileged": opts["privileged"], "detach_keys": ""}
    return container_exec(cli, exec_opts, [summary_name(running[0]), *args[1:]])


EXEC = Command(
    ("compose", "exec"), "[OPTIONS] SERVICE COMMAND [ARGS...]", "Execute a command in a running container.",
    [
        Flag("detach", "d", BOOL, "Detached mode: Run command in the background."),
        Flag("env", "e", LIST, "Set environment variables", metavar="stringArray"),
        Flag("index", "", INT, "index of the container if service has multiple replicas", default=1),
        Flag("interactive", "i", BOOL, "Keep STDIN open even if not attached.", default=True, hidden=True),
        Flag("no-TTY", "T", BOOL, "Disable pseudo-TTY allocation. By default `docker compose exec` allocates a "
             "TTY."),
        Flag("privileged", "", BOOL, "Give extended privileges to the process."),
        Flag("user", "u", STRING, "Run the command as this user."),
        Flag("workdir", "w", STRING, "Path to workdir directory for this command."),
    ],
    run_exec, min_args=2, interspersed=False,
)


@_guarded
def run_pull(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    project = load(opts)
    services = _services(project, args, False)
    compose = engine(cli, project)
    if opts["quiet"]:
        compose.report = lambda resource, status: None
    failed = compose.pull(services, ignore_failures=opts["ignore_pull_failures"])
    for message in failed:
        _warn(message)
    return 0


PULL = Command(
    ("compose", "pull"), "[OPTIONS] [SERVICE...]", "Pull service images",
    [
        Flag("ignore-pull-failures", "", BOOL, "Pull what it can and ignores images with pull failures"),
        Flag("quiet", "q", BOOL, "Pull without printing progress information"),
    ],
    run_pull,
)


# --- the project options before the command -----------------------------------------------------------------------

COMMANDS = {"config": CONFIG, "down": DOWN, "exec": EXEC, "logs": LOGS, "ps": PS, "pull": PULL, "restart": RESTART,
            "rm": RM, "start": START, "stop": STOP, "up": UP}


def _options_first(text: str) -> Command:
    """The command the dispatcher finds for a project option before the command (`compose -f x up`):
    it reads the project options (that one included), then parses and runs the command after them."""
    def run(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
        flag = command.path[-1]  # as the dispatcher matched it: -f, --file, -p…
        parser = Command(("compose",), "[OPTIONS] COMMAND", "Define and run multi-container applications",
                         _PROJECT_FLAGS, lambda *a: 0, interspersed=False)
        given, rest = parser.parse([flag, *args])
        if not rest:
            raise UsageError("no command given: dockyard compose [OPTIONS] COMMAND", parser, 1)
        sub = COMMANDS.get(rest[0])
        if sub is None:
            raise CliError(f"dockyard: unknown command: dockyard compose {rest[0]}\n\n"
                           "Run 'dockyard compose --help' for more information")
        sub_opts, sub_args = sub.parse(rest[1:])
        sub_opts["_project"] = given
        return sub.run(cli, sub_opts, sub_args)

    command = Command(("compose",), "[OPTIONS] COMMAND", text, [], run, interspersed=False)
    return command


# Found by the dispatcher under these names (dockyard/cli/main.py GROUPS).
FILE_FIRST = _options_first("(option before COMMAND) Compose configuration files")
PROJECT_NAME_FIRST = _options_first("(option before COMMAND) Project name")
PROJECT_DIRECTORY_FIRST = _options_first("(option before COMMAND) Specify an alternate working directory")
ENV_FILE_FIRST = _options_first("(option before COMMAND) Specify an alternate environment file")
