"""`--change` for `import` (and later `commit`): Dockerfile instructions applied to a config.

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL,
USER, VOLUME and WORKDIR here.  Each change is one instruction line in
Dockerfile syntax, JSON (exec) or shell form, parsed by the `dockerfile`
package (BuildKit's own parser); words are then unquoted and `$VAR` /
`${VAR}` expanded against the environment built so far, as in a build.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Sequence

from ..errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def _env_map(env: list[str]) -> dict[str, str]:
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def process_word(word: str, env: dict[str, str], expand: bool = True) -> str:
    """Remove quotes and backslash escapes; expand variables outside single quotes."""
    out: list[str] = []
    i, n = 0, len(word)
    quote = ""
    while i < n:
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                out.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in '"\\$':
                out.append(c)
            out.append(nxt)
            i += 2
            continue
        if c in "'\"" and (not quote or quote == c):
            if quote:
                quote = ""
            elif c == '"':
                quote = '"'
            else:
                quote = "'"
            i += 1
            continue
        if c == "$" and expand and i + 1 < n:
            name, i = _variable(word, i + 1, env)
            out.append(name)
            continue
        out.append(c)
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched {quote} quote in {word!r}")
    return "".join(out)


def _variable(word: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    if word[i] == "{":
        end = word.find("}", i)
        if end < 0:
            raise InvalidArgument(f"missing '}}' in {word!r}")
        inner = word[i + 1:end]
        name, sep, default = inner.partition(":-")
        if sep:
            return env.get(name) or default, end + 1
        name, sep, alt = inner.partition(":+")
        if sep:
            return (alt if env.get(name) else ""), end + 1
        return env.get(inner, ""), end + 1
    j = i
    while j < len(word) and (word[j].isalnum() or word[j] == "_"):
        j += 1
    if j == i:
        return "$", i
    return env.get(word[i:j], ""), j


def _pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    if len(values) % 2:
        raise InvalidArgument(f"{what} needs key=value pairs")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _exec_form(command, env: dict[str, str]) -> list[str]:
    if command.json:
        return list(command.value)
    return ["/bin/sh", "-c", command.value[0]] if command.value and command.value[0] else []


def apply_changes(config: dict, changes: Sequence[str]) -> dict:
    """A copy of container config `config` (the image config's "config") with `changes` applied."""
    import dockerfile

    out = copy.deepcopy(config)
    for change in changes:
        if not isinstance(change, str) or not change.strip():
            continue
        try:
            commands = dockerfile.parse_string(change.strip() + "\n")
        except dockerfile.GoParseError as err:
            raise InvalidArgument(f"invalid change {change!r}: {err}") from None
        for command in commands:
            _apply(out, command, change)
    return out


def _apply(out: dict, command, original: str) -> None:
    instr = command.cmd.upper()
    if instr not in ALLOWED:
        raise InvalidArgument(f"{command.cmd} is not a valid change command")
    env_list = out.get("Env") or []
    env = _env_map(env_list)
    values = command.value
    if instr in ("CMD", "ENTRYPOINT"):
        out["Cmd" if instr == "CMD" else "Entrypoint"] = _exec_form(command, env)
        if instr == "ENTRYPOINT" and not command.json and not out.get("Cmd"):
            out["Cmd"] = None
    elif instr in ("ENV", "LABEL"):
        if not values or values == ("",):
            raise InvalidArgument(f"{instr} requires at least one argument")
        pairs = _pairs(values, instr)
        if instr == "ENV":
            for key, value in pairs:
                value = process_word(value, env)
                env[key] = value
                env_list = [e for e in env_list if e.partition("=")[0] != key] + [f"{key}={value}"]
            out["Env"] = env_list
        else:
            labels = dict(out.get("Labels") or {})
            for key, value in pairs:
                labels[process_word(key, env)] = process_word(value, env)
            out["Labels"] = labels
    elif instr == "EXPOSE":
        ports = dict(out.get("ExposedPorts") or {})
        for word in values:
            for port in _expand_ports(process_word(word, env)):
                ports[port] = {}
        out["ExposedPorts"] = ports
    elif instr == "VOLUME":
        volumes = dict(out.get("Volumes") or {})
        for word in values:
            path = process_word(word, env) if not command.json else word
            if not path:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[path] = {}
        out["Volumes"] = volumes
    elif instr == "WORKDIR":
        path = process_word(values[0], env)
        if not path:
            raise InvalidArgument("WORKDIR requires exactly one argument")
        out["WorkingDir"] = posixpath.join(out.get("WorkingDir") or "/", path) if not path.startswith("/") else path
    elif instr == "USER":
        out["User"] = process_word(values[0], env)
    elif instr == "STOPSIGNAL":
        out["StopSignal"] = process_word(values[0], env)
    elif instr == "ONBUILD":
        body = original.strip()[len(command.cmd):].strip()
        out["OnBuild"] = list(out.get("OnBuild") or []) + [body]


def _expand_ports(spec: str) -> list[str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    start, _, end = port.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {port}") from None
    if not (0 < first <= last <= 65535):
        raise InvalidArgument(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]
