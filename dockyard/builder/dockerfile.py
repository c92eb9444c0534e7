"""A Dockerfile as values: instructions, grouped into stages.

Parsing is BuildKit's own parser (the `dockerfile` package); this module
checks what it accepts (known instructions, flags, argument counts) so that a
bad Dockerfile fails before any step runs, and groups the instructions:

    Dockerfile
      meta_args   the ARGs before the first FROM (usable in FROM lines)
      stages      Stage(index, name, base, instructions), in file order

An `Instruction` keeps the parser's words (`args`, quotes and variables not
yet processed: that happens at dispatch time against the build's
environment), its `--flags`, whether it was in JSON form, and the original
text (`original`), which is what the build prints as `Step n/m : …`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidArgument

INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
})

# The flags each instruction accepts (the legacy builder's set).
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
    "RUN": set(),
}


@dataclass(frozen=True)
class Instruction:
    cmd: str                       # upper case: "RUN"
    args: tuple[str, ...]          # the parser's words
    flags: tuple[tuple[str, str], ...] = ()
    json: bool = False
    original: str = ""
    line: int = 0
    sub: Instruction | None = None  # ONBUILD's instruction

    def flag(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.flags:
            if key == name:
                return value
        return default


@dataclass(frozen=True)
class Stage:
    index: int
    name: str                      # lower case, "" when unnamed
    base: str                      # the FROM argument, unexpanded
    platform: str = ""
    instructions: tuple[Instruction, ...] = field(default=())


@dataclass(frozen=True)
class Dockerfile:
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    escape: str = "\\"

    def stage_index(self, name: str) -> int | None:
        """The index of the stage called `name` (or numbered `name`), None when there is none."""
        name = name.lower()
        for stage in self.stages:
            if stage.name and stage.name == name:
                return stage.index
        if name.isdigit() and int(name) < len(self.stages):
            return int(name)
        return None

    def until(self, target: str | None) -> tuple[Stage, ...]:
        """The stages up to `target` (all of them without one)."""
        if not target:
            return self.stages
        index = self.stage_index(target)
        if index is None:
            raise InvalidArgument(f"failed to reach build target {target} in Dockerfile")
        return self.stages[:index + 1]


def _parse_flags(command, cmd: str, line: int) -> tuple[tuple[str, str], ...]:
    allowed = FLAGS.get(cmd, set())
    out = []
    for raw in command.flags:
        if not raw.startswith("--"):
            raise InvalidArgument(f"dockerfile parse error line {line}: invalid flag {raw!r}")
        name, sep, value = raw[2:].partition("=")
        if name not in allowed:
            raise InvalidArgument(f"dockerfile parse error line {line}: Unknown flag: {name}")
        out.append((name, value if sep else "true"))
    return tuple(out)


def _instruction(command, escape: str) -> Instruction:
    cmd = command.cmd.upper()
    line = command.start_line
    if cmd not in INSTRUCTIONS:
        raise InvalidArgument(f"dockerfile parse error line {line}: unknown instruction: {command.cmd.upper()}")
    sub = None
    if cmd == "ONBUILD":
        if not command.sub_cmd:
            raise InvalidArgument(f"dockerfile parse error line {line}: ONBUILD requires at least one argument")
        sub_cmd = command.sub_cmd.upper()
        if sub_cmd in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"dockerfile parse error line {line}: {sub_cmd} isn't allowed as an ONBUILD trigger")
        body = command.original.strip()[len(command.cmd):].strip()
        sub = _parse_one(body, escape, line)
    args = tuple(command.value)
    flags = _parse_flags(command, cmd, line)
    if cmd not in ("ONBUILD",) and (not args or args == ("",)) and cmd not in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
        raise InvalidArgument(f"dockerfile parse error line {line}: {cmd} requires at least one argument")
    if cmd in ("COPY", "ADD") and len(args) < 2:
        raise InvalidArgument(f"dockerfile parse error line {line}: {cmd} requires at least two arguments, "
                              f"but only one was provided. Destination could not be determined")
    if cmd in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER") and len(args) != 1:
        raise InvalidArgument(f"dockerfile parse error line {line}: {cmd} requires exactly one argument")
    if cmd == "SHELL" and not command.json:
        raise InvalidArgument(f"dockerfile parse error line {line}: SHELL requires the arguments to be in JSON form")
    if cmd == "FROM" and len(args) not in (1, 3) or cmd == "FROM" and len(args) == 3 and args[1].lower() != "as":
        raise InvalidArgument(f"dockerfile parse error line {line}: FROM requires either one or three arguments")
    return Instruction(cmd, args, flags, bool(command.json), command.original, line, sub)


def _parse_one(text: str, escape: str, line: int) -> Instruction:
    import dockerfile

    try:
        commands = dockerfile.parse_string(text + "\n")
    except dockerfile.GoParseError as err:
        raise InvalidArgument(f"dockerfile parse error line {line}: {err}") from None
    if len(commands) != 1:
        raise InvalidArgument(f"dockerfile parse error line {line}: ONBUILD needs one instruction")
    return _instruction(commands[0], escape)


def _escape_directive(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].partition("=")
        if sep and key.strip().lower() == "escape":
            value = value.strip()
            if value not in ("\\", "`"):
                raise InvalidArgument(f"invalid ESCAPE '{value}'. Must be ` or \\")
            return value
    return "\\"


def parse(text: str) -> Dockerfile:
    """Parse and check a whole Dockerfile; InvalidArgument says what is wrong and on which line."""
    import dockerfile

    escape = _escape_directive(text)
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        raise InvalidArgument(f"dockerfile parse error: {err}") from None
    instructions = [_instruction(command, escape) for command in commands]
    if not instructions:
        raise InvalidArgument("the Dockerfile cannot be empty")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: Instruction | None = None
    for ins in instructions:
        if ins.cmd == "FROM":
            if header is not None:
                stages.append(_stage(len(stages), header, current or []))
            header, current = ins, []
        elif header is None:
            if ins.cmd != "ARG":
                raise InvalidArgument("no build stage in current context")
            meta.append(ins)
        else:
            current.append(ins)
    if header is None:
        raise InvalidArgument("no build stage in current context")
    stages.append(_stage(len(stages), header, current or []))
    seen = set()
    for stage in stages:
        if stage.name:
            if stage.name in seen:
                raise InvalidArgument(f"duplicate name {stage.name}")
            seen.add(stage.name)
    return Dockerfile(tuple(meta), tuple(stages), escape)


def _stage(index: int, header: Instruction, body: list[Instruction]) -> Stage:
    name = header.args[2].lower() if len(header.args) == 3 else ""
    if name and not (name[0].isalpha() and all(c.isalnum() or c in "_.-" for c in name)):
        raise InvalidArgument(f"invalid name for build stage: {name!r}, name can't start with a number or "
                              f"contain symbols")
    return Stage(index, name, header.args[0], header.flag("platform", "") or "", (header, *body))
