"""`dockyard-runtime`: runc's command line.

    RUNTIME [global flags] COMMAND [command flags] <container-id> [args]

Flags are spelled `--flag value`, `--flag=value` or with one dash; their order
is free (podman and containerd order them differently).  For `exec` and `run`
nothing after the container id is a flag: it is the command.  Errors go to
stderr and the `--log` file in runc's formats (see `log`), with runc's exit
codes: 1 for a failed command, 255 for `exec`, 3 for an unknown command.

Imports stay inside the command functions: `state` and `kill` run often
(runtime-tools polls `state`), and each import costs start-up time.
"""

from __future__ import annotations

import os
import sys

DEFAULT_ROOT = "/run/dockyard-runtime"

V, B = "value", "bool"

GLOBAL_FLAGS = {"root": V, "log": V, "log-format": V, "debug": B, "systemd-cgroup": B, "rootless": V, "criu": V,
                "help": B, "h": B, "version": B, "v": B}

# command -> (flags, aliases, usage, description)
COMMANDS = {
    "create": ({"bundle": V, "console-socket": V, "pid-file": V, "no-pivot": B, "no-new-keyring": B,
                "preserve-fds": V}, {"b": "bundle"}, "<container-id>", "create a container"),
    "start": ({}, {}, "<container-id>", "executes the user defined process in a created container"),
    "run": ({"bundle": V, "console-socket": V, "pid-file": V, "no-pivot": B, "no-new-keyring": B,
             "preserve-fds": V, "detach": B, "keep": B, "no-subreaper": B},
            {"b": "bundle", "d": "detach"}, "<container-id>", "create and run a container"),
    "state": ({}, {}, "<container-id>", "output the state of a container"),
    "kill": ({"all": B}, {"a": "all"}, "<container-id> [signal]", "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "delete": ({"force": B}, {"f": "force"}, "<container-id>", "delete any resources held by the container often used with detached container"),
    "exec": ({"process": V, "detach": B, "pid-file": V, "tty": B, "console-socket": V, "preserve-fds": V,
              "env": "list", "cwd": V, "user": V, "additional-gids": "list", "cap": "list", "no-new-privs": B,
              "apparmor": V, "process-label": V, "ignore-paused": B},
             {"p": "process", "d": "detach", "t": "tty", "e": "env", "u": "user", "g": "additional-gids",
              "c": "cap"}, "<container-id> <command> [command options]",
             "execute new process inside the container"),
    "pause": ({}, {}, "<container-id>", "pause suspends all processes inside the container"),
    "resume": ({}, {}, "<container-id>", "resumes all processes that have been previously paused"),
    "ps": ({"format": V}, {"f": "format"}, "<container-id> [ps options]", "ps displays the processes running inside a container"),
    "update": ({"resources": V, "memory": V, "memory-reservation": V, "memory-swap": V, "kernel-memory": V,
                "kernel-memory-tcp": V, "cpu-shares": V, "cpu-quota": V, "cpu-period": V, "cpu-rt-runtime": V,
                "cpu-rt-period": V, "cpuset-cpus": V, "cpuset-mems": V, "pids-limit": V, "blkio-weight": V,
                "l3-cache-schema": V, "mem-bw-schema": V},
               {"r": "resources"}, "<container-id>", "update container resource constraints"),
    "list": ({"format": V, "quiet": B}, {"f": "format", "q": "quiet"}, "", "lists containers started by runc with the given root"),
    "features": ({}, {}, "", "show the enabled features"),
    "spec": ({"bundle": V, "rootless": B}, {"b": "bundle"}, "", "create a new specification file"),
}

# How many positional arguments each command needs (min, max); None = unlimited.
ARITY = {"create": (1, 1), "start": (1, 1), "run": (1, 1), "state": (1, 1), "kill": (1, 2), "delete": (1, 1),
         "exec": (1, None), "pause": (1, 1), "resume": (1, 1), "ps": (1, None), "update": (1, 1),
         "list": (0, 0), "features": (0, 0), "spec": (0, 0)}


class UsageError(Exception):
    def __init__(self, msg: str, command: str | None = None, code: int = 1):
        super().__init__(msg)
        self.command = command
        self.code = code


def parse_flags(args: list[str], spec: dict, aliases: dict, stop_at_positional: bool):
    """Split `args` into ({flag: value}, [positionals]) the way urfave/cli reads runc's flags."""
    flags: dict = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional.extend(args[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not (positional and stop_at_positional):
            name, eq, value = arg.lstrip("-").partition("=")
            name = aliases.get(name, name)
            kind = spec.get(name)
            if kind is None:
                raise UsageError(f"flag provided but not defined: -{arg.lstrip('-').partition('=')[0]}")
            if kind == B:
                flags[name] = value.lower() not in ("false", "0") if eq else True
            else:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"flag needs an argument: -{name}")
                    value = args[i]
                if kind == "list":
                    flags.setdefault(name, []).append(value)
                else:
                    flags[name] = value
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def usage(prog: str, command: str | None) -> str:
    if command is None:
        lines = [f"NAME:\n   {prog} - an OCI runtime with runc's command line (Dockyard)\n",
                 f"USAGE:\n   {prog} [global options] command [command options] [arguments...]\n", "COMMANDS:"]
        lines += [f"   {name:<10}{COMMANDS[name][3]}" for name in COMMANDS]
        lines += ["\nGLOBAL OPTIONS:",
                  f"   --root value        root directory for storage of container state (default: \"{DEFAULT_ROOT}\")",
                  "   --log value         set the log file to write runtime logs to (default: stderr)",
                  "   --log-format value  set the log format ('text' (default), or 'json')",
                  "   --debug             enable debug logging",
                  "   --systemd-cgroup    use the systemd cgroup manager (needs systemd)",
                  "   --help, -h          show help",
                  "   --version, -v       print the version"]
        return "\n".join(lines) + "\n"
    flags, aliases, args, desc = COMMANDS[command]
    short = {v: k for k, v in aliases.items()}
    opts = []
    for name, kind in flags.items():
        spelled = f"--{name}" + (" value" if kind != B else "")
        if name in short:
            spelled += f", -{short[name]}" + (" value" if kind != B else "")
        opts.append(f"   {spelled}")
    return (f"NAME:\n   {prog} {command} - {desc}\n\nUSAGE:\n   {prog} {command} [command options] {args}\n\n"
            "OPTIONS:\n" + "\n".join(opts) + "\n")


def main() -> None:
    """The console script: run the command, then leave at once.

    Interpreter teardown (module and GC clean-up) costs milliseconds that
    every runtime call would pay; there is nothing left to clean up.
    """
    code = run_cli(sys.argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run_cli(argv: list[str]) -> int:
    prog = os.path.basename(argv[0]) if argv else "dockyard-runtime"
    args = argv[1:]
    # Global flags end at the first word that is not a flag: the command.
    i = 0
    glob_args = []
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        glob_args.append(args[i])
        name, eq, _ = args[i].lstrip("-").partition("=")
        if GLOBAL_FLAGS.get(name) == V and not eq:
            i += 1
            if i < len(args):
                glob_args.append(args[i])
        i += 1
    from .log import Log

    try:
        gflags, _ = parse_flags(glob_args, GLOBAL_FLAGS, {}, False)
    except UsageError as err:
        Log().error(str(err))
        return 1
    log = Log(gflags.get("log"), gflags.get("log-format", "text"), bool(gflags.get("debug")))
    if gflags.get("version") or gflags.get("v"):
        from .query import version

        version(prog)
        return 0
    rest = args[i:]
    if not rest or gflags.get("help") or gflags.get("h") or rest[0] == "help":
        if len(rest) > 1 and rest[0] == "help" and rest[1] in COMMANDS:
            sys.stdout.write(usage(prog, rest[1]))
        else:
            sys.stdout.write(usage(prog, None))
        return 0
    command = rest[0]
    if command not in COMMANDS:
        log.error(f"No help topic for '{command}'\n")
        return 3
    flag_spec, aliases, _, _ = COMMANDS[command]
    flag_spec = dict(flag_spec, help=B, h=B)
    try:
        flags, positional = parse_flags(rest[1:], flag_spec, aliases, command in ("exec", "ps"))
        if flags.get("help") or flags.get("h"):
            sys.stdout.write(usage(prog, command))
            return 0
        low, high = ARITY[command]
        if len(positional) < low or (high is not None and len(positional) > high):
            if low == high:
                raise UsageError(f'{prog}: "{command}" requires exactly {low} argument(s)', command)
            if high is None or len(positional) < low:
                raise UsageError(f'{prog}: "{command}" requires a minimum of {low} argument(s)', command)
            raise UsageError(f'{prog}: "{command}" requires a maximum of {high} argument(s)', command)
    except UsageError as err:
        sys.stderr.write(("Incorrect Usage: " + str(err) if "flag" in str(err) else "Incorrect Usage.")
                         + "\n\n" + usage(prog, command))
        log.error(str(err))
        return 1
    root = os.path.abspath(gflags.get("root") or DEFAULT_ROOT)
    try:
        return dispatch(command, flags, positional, root, gflags, log, prog) or 0
    except Exception as err:  # noqa: BLE001 - every failure becomes runc's message and exit code
        return report(err, command, prog, log, bool(gflags.get("debug")))


def report(err: Exception, command: str, prog: str, log, debug: bool) -> int:
    from ..errors import EngineError

    if isinstance(err, EngineError) or isinstance(err, OSError) or type(err).__name__ == "ChildError":
        msg = str(err)
    else:
        msg = f"{type(err).__name__}: {err}"
    if debug:
        import traceback

        log.debug(traceback.format_exc())
    if command == "exec":
        log.error(f"exec failed: {msg}")
        return 255
    if command in ("create", "run"):
        msg = f"{prog} {command} failed: {msg}"
    log.error(msg)
    return 1


def dispatch(command: str, flags: dict, pos: list[str], root: str, gflags: dict, log, prog: str) -> int | None:
    if command == "state":
        from .query import state

        state(root, pos[0])
    elif command == "kill":
        from .kill import kill

        kill(root, pos[0], pos[1] if len(pos) > 1 else None, bool(flags.get("all")))
    elif command == "start":
        from .start import start

        start(root, pos[0], log)
    elif command == "delete":
        from .delete import delete

        delete(root, pos[0], bool(flags.get("force")), log)
    elif command in ("create", "run"):
        from .create import Options, launch

        opts = Options(root=root, bundle=flags.get("bundle"), pid_file=flags.get("pid-file"),
                       console_socket=flags.get("console-socket"), no_pivot=flags.get("no-pivot"),
                       no_new_keyring=flags.get("no-new-keyring"), preserve_fds=_count(flags.get("preserve-fds")),
                       systemd_cgroup=gflags.get("systemd-cgroup"), log=log)
        if command == "create":
            launch(pos[0], opts, use_fifo=True)
            return 0
        from .run import run

        return run(pos[0], opts, bool(flags.get("detach")), log)
    elif command == "exec":
        from .execute import ExecOptions, execute

        opts = ExecOptions(process=flags.get("process"), args=pos[1:], detach=flags.get("detach"),
                           pid_file=flags.get("pid-file"), tty=flags.get("tty"),
                           console_socket=flags.get("console-socket"),
                           preserve_fds=_count(flags.get("preserve-fds")), env=flags.get("env"),
                           cwd=flags.get("cwd"), user=flags.get("user"),
                           additional_gids=flags.get("additional-gids"), caps=flags.get("cap"),
                           no_new_privs=flags.get("no-new-privs"))
        return execute(root, pos[0], opts)
    elif command in ("pause", "resume"):
        from . import pause

        getattr(pause, command)(root, pos[0])
    elif command == "ps":
        from .ps import ps

        ps(root, pos[0], flags.get("format", "table"), pos[1:])
    elif command == "update":
        from .update import FLAGS, update

        update(root, pos[0], flags.get("resources"), {k: v for k, v in flags.items() if k in FLAGS})
    elif command == "list":
        from .query import list_containers

        list_containers(root, flags.get("format", "table"), bool(flags.get("quiet")))
    elif command == "features":
        from .query import features

        features()
    elif command == "spec":
        write_spec(flags.get("bundle"), bool(flags.get("rootless")))
    return 0


def _count(value) -> int:
    if value in (None, ""):
        return 0
    from ..errors import InvalidArgument

    try:
        n = int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value {value!r} for --preserve-fds") from None
    if n < 0:
        raise InvalidArgument("--preserve-fds must not be negative")
    return n


def write_spec(bundle: str | None, rootless: bool) -> None:
    import json

    from ..errors import Conflict
    from .spec import default_spec

    path = os.path.join(bundle or ".", "config.json")
    if os.path.exists(path):
        raise Conflict("File config.json exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless), f, indent="\t")


if __name__ == "__main__":
    main()
