"""`dockyard`: the command-line client, with docker's nouns, verbs and flags.

    dockyard [-H unix:///path] [-D] COMMAND [ARGS...]

The dispatcher knows commands by name only and imports the one module that
implements them (`image`, `system`, `inspect`), so a command pays just for
itself. Every failure is printed here, in one place, with docker's wording
and exit codes: 1 for an engine or command error, 125 for a bad flag.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from dockyard.cli.flags import Command
    from dockyard.client.api import EngineClient

VERSION = "0.1.0"

# name -> (module in dockyard.cli, command attribute). Aliases share a command.
TOP_LEVEL = {
    "images": ("image", "LS"),
    "rmi": ("image", "RM"),
    "tag": ("image", "TAG"),
    "history": ("image", "HISTORY"),
    "import": ("image", "IMPORT"),
    "save": ("image", "SAVE"),
    "load": ("image", "LOAD"),
    "inspect": ("inspect", "INSPECT"),
    "version": ("system", "VERSION_CMD"),
    "info": ("system", "INFO"),
    "events": ("system", "EVENTS"),
    "run": ("run", "RUN"),
    "create": ("run", "CREATE"),
    "ps": ("container", "PS"),
    "start": ("container", "START"),
    "stop": ("container", "STOP"),
    "restart": ("container", "RESTART"),
    "kill": ("container", "KILL"),
    "rm": ("container", "RM"),
    "wait": ("container", "WAIT"),
    "rename": ("container", "RENAME"),
    "pause": ("container", "PAUSE"),
    "unpause": ("container", "UNPAUSE"),
    "top": ("container", "TOP"),
    "port": ("container", "PORT"),
    "diff": ("container", "DIFF"),
    "export": ("container", "EXPORT"),
    "commit": ("container", "COMMIT"),
    "logs": ("container", "LOGS"),
    "attach": ("container", "ATTACH"),
    "exec": ("container", "EXEC"),
    "cp": ("cp", "CP"),
    "stats": ("stats", "STATS"),
    "pull": ("registry", "PULL"),
    "push": ("registry", "PUSH"),
    "login": ("registry", "LOGIN"),
    "logout": ("registry", "LOGOUT"),
    "build": ("build", "BUILD"),
}

# management command -> (module, description, {subcommand: attribute or (module, attribute)})
GROUPS = {
    "container": ("container", "Manage containers", {
        "attach": "ATTACH", "commit": "COMMIT", "cp": ("cp", "CP"), "create": ("run", "CREATE"), "diff": "DIFF",
        "exec": "EXEC", "export": "EXPORT", "inspect": "INSPECT", "kill": "KILL", "logs": "LOGS", "ls": "LS",
        "list": "LS", "ps": "LS", "pause": "PAUSE", "port": "PORT", "prune": "PRUNE", "rename": "RENAME",
        "restart": "RESTART", "rm": "RM", "remove": "RM", "run": ("run", "RUN"), "start": "START",
        "stats": ("stats", "STATS"), "stop": "STOP", "top": "TOP", "unpause": "UNPAUSE", "wait": "WAIT",
    }),
    "image": ("image", "Manage images", {
        "history": "HISTORY", "import": "IMPORT", "inspect": "INSPECT", "load": "LOAD", "ls": "LS",
        "list": "LS", "prune": "PRUNE", "rm": "RM", "remove": "RM", "save": "SAVE", "tag": "TAG",
        "pull": ("registry", "PULL"), "push": ("registry", "PUSH"), "build": ("build", "BUILD"),
    }),
    "compose": ("compose", "Define and run multi-container applications", {
        "config": "CONFIG", "down": "DOWN", "exec": "EXEC", "logs": "LOGS", "ps": "PS", "pull": "PULL",
        "restart": "RESTART", "rm": "RM", "start": "START", "stop": "STOP", "up": "UP",
        # project options before the command: `dockyard compose -f FILE -p NAME up`
        "-f": "FILE_FIRST", "--file": "FILE_FIRST", "-p": "PROJECT_NAME_FIRST",
        "--project-name": "PROJECT_NAME_FIRST", "--project-directory": "PROJECT_DIRECTORY_FIRST",
        "--env-file": "ENV_FILE_FIRST",
    }),
    "system": ("system", "Manage Dockyard", {"df": "DF", "events": "EVENTS", "info": "INFO"}),
    "network": ("network", "Manage networks", {
        "connect": "CONNECT", "create": "CREATE", "disconnect": "DISCONNECT", "inspect": "INSPECT", "ls": "LS",
        "list": "LS", "prune": "PRUNE", "rm": "RM", "remove": "RM",
    }),
    "volume": ("volume", "Manage volumes", {
        "create": "CREATE", "inspect": "INSPECT", "ls": "LS", "list": "LS", "prune": "PRUNE", "rm": "RM",
        "remove": "RM",
    }),
}
# Aliases (and options taken before a subcommand) are not listed in a group's help.
_HIDDEN_IN_HELP = {"list", "remove", "container ps"}


def _listed(group: str, sub: str) -> bool:
    return not (sub in _HIDDEN_IN_HELP or f"{group} {sub}" in _HIDDEN_IN_HELP or sub.startswith("-"))

_TOP_USAGE = "Usage:  dockyard [OPTIONS] COMMAND [ARG...]"


class CliError(Exception):
    """A failure on the client side; printed as is, exit status 1 unless given."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Cli:
    """What a command gets: the engine client (created on first use) and the streams."""

    def __init__(self, host: str | None, debug: bool = False):
        self.host_flag = host
        self.debug = debug
        self.out = sys.stdout
        self.err = sys.stderr
        self._client: EngineClient | None = None

    def client(self) -> EngineClient:
        if self._client is None:
            from dockyard.client.api import EngineClient, InvalidHost, resolve_host

            host, explicit = resolve_host(self.host_flag)
            try:
                self._client = EngineClient(host)
            except InvalidHost as exc:
                raise CliError(str(exc)) from None
            if not explicit:
                self._client.on_unreachable = self._start_daemon
        return self._client

    def _start_daemon(self) -> bool:
        from dockyard.cli.autostart import start_daemon

        return start_daemon(self.err)


def _top_help() -> str:
    common = [
        ("run", "Create and run a new container from an image"),
        ("exec", "Execute a command in a running container"),
        ("ps", "List containers"),
        ("build", "Build an image from a Dockerfile"),
        ("pull", "Download an image from a registry"),
        ("push", "Upload an image to a registry"),
        ("images", "List images"),
        ("login", "Authenticate to a registry"),
        ("logout", "Log out from a registry"),
        ("version", "Show the Dockyard version information"),
        ("info", "Display system-wide information"),
    ]
    management = [("compose", "Define and run multi-container applications"), ("container", "Manage containers"),
                  ("image", "Manage images"), ("network", "Manage networks"), ("system", "Manage Dockyard"),
                  ("volume", "Manage volumes")]
    commands = [
        ("attach", "Attach local standard input, output, and error streams to a running container"),
        ("commit", "Create a new image from a container's changes"),
        ("cp", "Copy files/folders between a container and the local filesystem"),
        ("create", "Create a new container"),
        ("diff", "Inspect changes to files or directories on a container's filesystem"),
        ("events", "Get real time events from the server"),
        ("export", "Export a container's filesystem as a tar archive"),
        ("history", "Show the history of an image"),
        ("import", "Import the contents from a tarball to create a filesystem image"),
        ("inspect", "Return low-level information on Dockyard objects"),
        ("kill", "Kill one or more running containers"),
        ("load", "Load an image from a tar archive or STDIN"),
        ("logs", "Fetch the logs of a container"),
        ("pause", "Pause all processes within one or more containers"),
        ("port", "List port mappings or a specific mapping for the container"),
        ("rename", "Rename a container"),
        ("restart", "Restart one or more containers"),
        ("rm", "Remove one or more containers"),
        ("rmi", "Remove one or more images"),
        ("save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
        ("start", "Start one or more stopped containers"),
        ("stats", "Display a live stream of container(s) resource usage statistics"),
        ("stop", "Stop one or more running containers"),
        ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
        ("top", "Display the running processes of a container"),
        ("unpause", "Unpause all processes within one or more containers"),
        ("wait", "Block until one or more containers stop, then print their exit codes"),
    ]

    def block(title: str, rows: list[tuple[str, str]]) -> list[str]:
        return [title, *(f"  {name.ljust(11)} {text}" for name, text in rows), ""]

    lines = [_TOP_USAGE, "", "A container engine with docker's commands", ""]
    lines += block("Common Commands:", common)
    lines += block("Management Commands:", management)
    lines += block("Commands:", commands)
    lines += [
        "Global Options:",
        "  -D, --debug              Enable debug mode",
        "  -H, --host string        Daemon socket to connect to (default",
        '                           "unix:///run/dockyard.sock", or $DOCKYARD_HOST)',
        "  -l, --log-level string   Set the logging level (accepted for compatibility)",
        "  -v, --version            Print version information and quit",
        "",
        "Run 'dockyard COMMAND --help' for more information on a command.",
        "",
    ]
    return "\n".join(lines)


def _global_usage_error(message: str) -> int:
    sys.stderr.write(f"{message}\n\n{_TOP_USAGE}\n\nRun 'dockyard --help' for more information\n")
    return 125


def _parse_globals(argv: list[str]) -> tuple[dict[str, object], int] | int:
    """Options before the command -> (options, index of the command), or an exit status."""
    opts: dict[str, object] = {"host": None, "debug": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        i += 1
        name, eq, value = arg.partition("=")
        if name in ("-H", "--host", "-l", "--log-level", "--config", "-c", "--context"):
            if not eq:
                if i >= len(argv):
                    shown = f"'{name[1]}' in {name}" if not name.startswith("--") else name
                    return _global_usage_error(f"flag needs an argument: {shown}")
                value = argv[i]
                i += 1
            if name in ("-H", "--host"):
                opts["host"] = value
        elif arg.startswith("-H") and len(arg) > 2:
            opts["host"] = arg[2:]
        elif arg in ("-D", "--debug"):
            opts["debug"] = True
        elif arg in ("-v", "--version"):
            sys.stdout.write(f"Dockyard version {VERSION}\n")
            return 0
        elif arg in ("-h", "--help"):
            sys.stdout.write(_top_help())
            return 0
        elif arg.startswith("--"):
            return _global_usage_error(f"unknown flag: {name}")
        else:
            return _global_usage_error(f"unknown shorthand flag: '{arg[1]}' in {arg}")
    return opts, i


def _load(module: str, attr: str | tuple[str, str]) -> Command:
    if isinstance(attr, tuple):  # a group's subcommand that lives in another module
        module, attr = attr
    return getattr(__import__(f"dockyard.cli.{module}", fromlist=[attr]), attr)


def _resolve(argv: list[str]) -> tuple[Command, tuple[str, ...], list[str]] | int:
    name = argv[0]
    if name in TOP_LEVEL:
        module, attr = TOP_LEVEL[name]
        return _load(module, attr), (name,), argv[1:]
    if name in GROUPS:
        module, short, subs = GROUPS[name]
        rest = argv[1:]
        if not rest or rest[0] in ("--help", "-h"):
            from dockyard.cli.flags import group_help

            listing = sorted((sub, _load(module, attr).short) for sub, attr in subs.items() if _listed(name, sub))
            # Like docker: asked for help -> stdout; no subcommand -> stderr, status 0 either way.
            (sys.stdout if rest else sys.stderr).write(group_help((name,), short, listing))
            return 0
        if rest[0] not in subs:
            sys.stderr.write(f"dockyard: unknown command: dockyard {name} {rest[0]}\n\n"
                             f"Usage:  dockyard {name}\n\nRun 'dockyard {name} --help' for more information\n")
            return 1
        return _load(module, subs[rest[0]]), (name, rest[0]), rest[1:]
    if name == "help":
        sys.stdout.write(_top_help())
        return 0
    sys.stderr.write(f"dockyard: unknown command: dockyard {name}\n\nRun 'dockyard --help' for more information\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parsed = _parse_globals(argv)
    if isinstance(parsed, int):
        return parsed
    opts, index = parsed
    if index >= len(argv):
        sys.stdout.write(_top_help())
        return 0
    resolved = _resolve(argv[index:])
    if isinstance(resolved, int):
        return resolved
    command, path, rest = resolved
    command.path = path
    cli = Cli(opts["host"], bool(opts["debug"]))  # type: ignore[arg-type]
    return run_command(cli, command, rest)


def run_command(cli: Cli, command: Command, argv: list[str]) -> int:
    from dockyard.cli.flags import HelpRequested, UsageError
    from dockyard.client.api import ApiError, DaemonUnreachable

    try:
        opts, args = command.parse(argv)
        status = command.run(cli, opts, args)
        cli.out.flush()
        return status or 0
    except HelpRequested as req:
        sys.stdout.write(req.command.help())
        return 0
    except UsageError as exc:
        sys.stderr.write(exc.render())
        return exc.exit_code
    except ApiError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
        return 1
    except DaemonUnreachable as exc:
        if isinstance(exc.reason, PermissionError):
            sys.stderr.write(f"permission denied while trying to connect to the dockyard daemon socket at "
                             f"{exc.host}: {exc.reason.strerror}\n")
        else:
            sys.stderr.write(f"Cannot connect to the Dockyard daemon at {exc.host}. "
                             f"Is the dockyard daemon running?\n")
        return 1
    except CliError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`dockyard images | head -1`): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from dockyard.cli.template import TemplateError

        if isinstance(exc, TemplateError):
            sys.stderr.write(f"template parsing error: {exc}\n")
            return 1
        if isinstance(exc, OSError) and not cli.debug:
            sys.stderr.write(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + "\n")
            return 1
        if cli.debug:
            raise
        sys.stderr.write(f"dockyard: unexpected error: {exc!r} (run with -D for details)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
