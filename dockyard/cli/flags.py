"""Commands and flags the way the docker CLI (cobra + pflag) parses and prints them.

    -a -q / -aq          boolean shorthands, combinable
    -f VALUE, -fVALUE, -f=VALUE, --filter VALUE, --filter=VALUE
    --all=false          booleans take an explicit value only with "="
    --                   ends the flags
    flags and arguments may be mixed (unless a command says otherwise)

Errors use docker's wording and exit codes: a flag error exits 125, a wrong
number of arguments exits 1. argparse is not used: it costs the CLI several
milliseconds of import time and words its errors differently.
"""

from __future__ import annotations

PROG = "dockyard"

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

BOOL, STRING, LIST, INT = "bool", "string", "list", "int"

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


class UsageError(Exception):
    """Bad command line. `exit_code` is docker's: 125 for flags, 1 for arguments."""

    def __init__(self, message: str, command: Command | None = None, exit_code: int = 125,
                 footer: str = "Run"):
        super().__init__(message)
        self.message = message
        self.command = command
        self.exit_code = exit_code
        self.footer = footer

    def render(self) -> str:
        if self.command is None:
            return f"{self.message}\n"
        cmd = self.command
        return (f"{self.message}\n\nUsage:  {cmd.usage_line()}\n\n"
                f"{self.footer} '{cmd.full_name()} --help' for more information\n")


class Flag:
    """One flag. `check` turns a value into what the command gets (raising ValueError with
    pflag's reason, as docker's typed flags do: `-m 64x` -> "invalid suffix: 'x'");
    `shown_default` is the "(default ...)" pflag appends to the help; `hidden` flags
    parse but are not listed (docker's deprecated spellings such as `--net`)."""

    __slots__ = ("long", "short", "kind", "help", "metavar", "default", "check", "shown_default", "hidden",
                 "deprecated")

    def __init__(self, long: str, short: str = "", kind: str = BOOL, help: str = "",
                 metavar: str | None = None, default: Any = None, check: Callable[[str], Any] | None = None,
                 shown_default: str = "", hidden: bool = False, deprecated: str = ""):
        self.long = long
        self.short = short
        self.kind = kind
        self.help = help
        # pflag prints the value's type after the name: "--format string", "--filter filter".
        self.metavar = metavar if metavar is not None else ("" if kind == BOOL else kind)
        if default is None:
            default = {BOOL: False, STRING: "", LIST: None, INT: 0}[kind]
        self.default = default
        self.check = check
        self.shown_default = shown_default
        # A deprecated flag still works; using it prints pflag's notice (and hides it from help).
        self.deprecated = deprecated
        self.hidden = hidden or bool(deprecated)

    @property
    def key(self) -> str:
        return self.long.replace("-", "_")


class Command:
    """One command: `path` like ("image", "ls"), with its flags, arity and handler."""

    __slots__ = ("path", "usage", "short", "aliases", "flags", "min_args", "max_args", "run",
                 "interspersed", "ranged", "long_help")

    def __init__(self, path: tuple[str, ...], usage: str, short: str, flags: list[Flag],
                 run: Callable[..., int | None], min_args: int = 0, max_args: int | None = None,
                 aliases: tuple[str, ...] = (), interspersed: bool = True, long_help: str = "",
                 ranged: bool = False):
        self.path = path
        self.usage = usage
        self.short = short
        self.flags = flags
        self.run = run
        self.min_args = min_args
        self.max_args = max_args
        self.aliases = aliases
        self.interspersed = interspersed
        # Printed instead of `short` by --help, where docker has a longer text (cp).
        self.long_help = long_help
        # docker words min/max arity one of two ways; `ranged` commands say both bounds at once
        self.ranged = ranged

    def full_name(self) -> str:
        return " ".join((PROG, *self.path))

    def usage_line(self) -> str:
        return f"{self.full_name()} {self.usage}".rstrip()

    # --- parsing ---------------------------------------------------------------------

    def _by_long(self, name: str) -> Flag | None:
        for flag in self.flags:
            if flag.long == name:
                return flag
        return None

    def _by_short(self, letter: str) -> Flag | None:
        for flag in self.flags:
            if flag.short == letter:
                return flag
        return None

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        """-> (options by flag key, positional arguments). Raises UsageError; `--help` -> HelpRequested.

        The key "_set" holds the keys of the flags given on the command line
        (docker treats some flags differently when given, even with their default).
        """
        opts: dict[str, Any] = {}
        for flag in self.flags:
            opts[flag.key] = [] if flag.kind == LIST else flag.default
        given: set[str] = set()
        opts["_set"] = given
        args: list[str] = []
        i = 0
        # `run -h` is --hostname: -h asks for help only where no flag owns the letter.
        help_short = self._by_short("h") is None
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                args.extend(argv[i:])
                break
            if arg == "--help" or (arg == "-h" and help_short):
                raise HelpRequested(self)
            if arg.startswith("--") and len(arg) > 2:
                name, eq, value = arg[2:].partition("=")
                flag = self._by_long(name)
                if flag is None:
                    raise UsageError(f"unknown flag: --{name}", self)
                given.add(flag.key)
                if flag.kind == BOOL:
                    opts[flag.key] = self._bool(flag, value) if eq else True
                    continue
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: --{name}", self)
                    value = argv[i]
                    i += 1
                self._set(opts, flag, value)
            elif arg.startswith("-") and len(arg) > 1:
                letters = arg[1:]
                j = 0
                while j < len(letters):
                    letter = letters[j]
                    flag = self._by_short(letter)
                    if flag is None:
                        if letter == "h":
                            raise HelpRequested(self)
                        raise UsageError(f"unknown shorthand flag: '{letter}' in -{letters}", self)
                    rest = letters[j + 1:]
                    given.add(flag.key)
                    if flag.kind == BOOL:
                        if rest.startswith("="):
                            opts[flag.key] = self._bool(flag, rest[1:])
                            break
                        opts[flag.key] = True
                        j += 1
                        continue
                    if rest:
                        value = rest[1:] if rest.startswith("=") else rest
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise UsageError(f"flag needs an argument: '{letter}' in -{letters}", self)
                    self._set(opts, flag, value)
                    break
            else:
                args.append(arg)
                if not self.interspersed:
                    args.extend(argv[i:])
                    break
        self._check_arity(args)
        return opts, args

    def _bool(self, flag: Flag, value: str) -> bool:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise UsageError(self._invalid(flag, value, f'strconv.ParseBool: parsing "{value}": invalid syntax'), self)

    def _invalid(self, flag: Flag, value: str, why: str) -> str:
        names = f"-{flag.short}, --{flag.long}" if flag.short else f"--{flag.long}"
        return f'invalid argument "{value}" for "{names}" flag: {why}'

    def _set(self, opts: dict[str, Any], flag: Flag, value: str) -> None:
        if flag.deprecated:
            import sys

            sys.stdout.write(f"Flag --{flag.long} has been deprecated, {flag.deprecated}\n")
        if flag.check is not None:
            try:
                converted = flag.check(value)
            except ValueError as exc:
                raise UsageError(self._invalid(flag, value, str(exc)), self) from None
            if flag.kind == LIST:
                opts[flag.key].append(converted)
            else:
                opts[flag.key] = converted
            return
        if flag.kind == LIST:
            opts[flag.key].append(value)
        elif flag.kind == INT:
            try:
                opts[flag.key] = int(value)
            except ValueError:
                raise UsageError(self._invalid(flag, value, f'strconv.ParseInt: parsing "{value}": invalid syntax'),
                                 self) from None
        else:
            opts[flag.key] = value

    def _check_arity(self, args: list[str]) -> None:
        n, lo, hi = len(args), self.min_args, self.max_args
        name = f"{PROG}: '{self.full_name()}'"

        def plural(k: int) -> str:
            return f"{k} argument" + ("" if k == 1 else "s")

        if hi == 0 and n > 0:
            raise UsageError(f"{name} accepts no arguments", self, 1)
        if lo == hi and n != lo:
            raise UsageError(f"{name} requires {plural(lo)}", self, 1)
        if self.ranged and hi is not None and not lo <= n <= hi:
            raise UsageError(f"{name} requires at least {lo} and at most {plural(hi)}", self, 1)
        if n < lo:
            raise UsageError(f"{name} requires at least {plural(lo)}", self, 1, footer="See")
        if hi is not None and n > hi:
            raise UsageError(f"{name} requires at most {plural(hi)}", self, 1)

    # --- help ----------------------------------------------------------------------------

    def help(self) -> str:
        out = [f"Usage:  {self.usage_line()}", "", self.long_help or self.short, ""]
        if self.aliases:
            out += ["Aliases:", "  " + ", ".join(f"{PROG} {a}" for a in self.aliases), ""]
        shown = [f for f in self.flags if not f.hidden]
        if shown:
            out += ["Options:", render_flags(shown, help_columns())]
        return "\n".join(out).rstrip("\n") + "\n"


class HelpRequested(Exception):
    def __init__(self, command: Command):
        super().__init__(command.full_name())
        self.command = command


def help_columns() -> int:
    """The width docker wraps flag help to: its terminal's (on stdin), else 80, less one."""
    try:
        import fcntl
        import struct
        import termios

        rows_cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        width = rows_cols[1] or 80
    except (OSError, ImportError):
        width = 80
    return width - 1


def render_flags(flags: list[Flag], columns: int = 79) -> str:
    """pflag's FlagUsagesWrapped: names padded to the longest, three spaces, help wrapped to `columns`."""
    heads = []
    for flag in flags:
        head = f"  -{flag.short}, --{flag.long}" if flag.short else f"      --{flag.long}"
        if flag.metavar:
            head += " " + flag.metavar
        heads.append(head)
    width = max(len(h) for h in heads)
    lines = []
    for head, flag in zip(heads, flags, strict=False):
        usage = flag.help
        if flag.shown_default:
            usage += f" (default {flag.shown_default})"
        lines.append(f"{head.ljust(width)}   {_wrap(width + 3, columns, usage)}")
    return "\n".join(lines)


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(c, 0, i) for c in " \t\n")
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def _wrap(i: int, w: int, s: str) -> str:
    """pflag's wrap: `s` wrapped to width `w`, continuation lines indented by `i`."""
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    room = w - i
    out = ""
    if room < 24:
        i = 16
        room = w - i
        out += "\n" + " " * i
    if room < 24:
        return s.replace("\n", out)
    slop = 5
    room -= slop
    line, s = _wrap_n(room, slop, s)
    out += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(room, slop, s)
        out += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return out


def group_help(path: tuple[str, ...], short: str, commands: list[tuple[str, str]]) -> str:
    """Help of a management command (`dockyard image`): its subcommands."""
    name = " ".join((PROG, *path))
    lines = [f"Usage:  {name} COMMAND", "", short, "", "Commands:"]
    width = max(11, *(len(c) for c, _ in commands))
    lines += [f"  {c.ljust(width)} {s}" for c, s in commands]
    lines += ["", f"Run '{name} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


# Help texts shared by many commands, wrapped as docker prints them.
_FORMAT_TEMPLATE_HELP = """'json':             Print in JSON format
'TEMPLATE':         Print output using the given
Go template.
Refer to https://docs.docker.com/go/formatting/
for more information about formatting output with
templates"""
FORMAT_HELP = "Format output using a custom template:\n" + _FORMAT_TEMPLATE_HELP
FORMAT_TABLE_HELP = """Format output using a custom template:
'table':            Print output in table format
with column headers (default)
'table TEMPLATE':   Print output in table format
using the given Go template
""" + _FORMAT_TEMPLATE_HELP
