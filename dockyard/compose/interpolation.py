"""`${VAR}` interpolation and `.env` files, as compose does them (pure: no I/O but reading a named file).

    $$              a literal `$`
    $VAR ${VAR}     the variable's value ("" and a warning when unset)
    ${VAR:-dflt}    dflt when VAR is unset or empty      ${VAR-dflt}   dflt when VAR is unset
    ${VAR:?err}     an error when VAR is unset or empty  ${VAR?err}    an error when VAR is unset
    ${VAR:+alt}     alt when VAR is set and not empty    ${VAR+alt}    alt when VAR is set
    defaults, errors and alternatives may hold substitutions themselves

Any other `$` (`$ `, `${}`, an unclosed `${`) is an invalid template, as in
compose-go. Only values are interpolated, never keys.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Lookup = Callable[[str], "str | None"]

_NAME_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_REST = _NAME_START | frozenset("0123456789")


class ComposeError(InvalidArgument):
    """A compose file, its variables or the command line asked for something invalid."""


class InterpolationError(ComposeError):
    pass


def _name_end(text: str, start: int) -> int:
    end = start
    if end < len(text) and text[end] in _NAME_START:
        end += 1
        while end < len(text) and text[end] in _NAME_REST:
            end += 1
    return end


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start` (nested `${…}` skipped), or -1."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "$" and text.startswith("$$", i):
            i += 2
            continue
        if ch == "$" and text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def substitute(text: str, lookup: Lookup, warn: Callable[[str], None] | None = None) -> str:
    """`text` with every substitution done; raises InterpolationError (message without a path)."""
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        nxt = text[j + 1] if j + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt == "{":
            close = _closing_brace(text, j + 2)
            if close < 0:
                raise InterpolationError(f'Invalid template: "{text}"')
            out.append(_braced(text[j + 2:close], text, lookup, warn))
            i = close + 1
        else:
            end = _name_end(text, j + 1)
            if end == j + 1:
                raise InterpolationError(f'Invalid template: "{text}"')
            out.append(_value(text[j + 1:end], lookup, warn))
            i = end


def _value(name: str, lookup: Lookup, warn: Callable[[str], None] | None) -> str:
    value = lookup(name)
    if value is None:
        if warn is not None:
            warn(f'The "{name}" variable is not set. Defaulting to a blank string.')
        return ""
    return value


def _braced(body: str, whole: str, lookup: Lookup, warn: Callable[[str], None] | None) -> str:
    end = _name_end(body, 0)
    name, rest = body[:end], body[end:]
    if not name:
        raise InterpolationError(f'Invalid template: "{whole}"')
    if not rest:
        return _value(name, lookup, warn)
    colon = rest.startswith(":")
    op = rest[1:2] if colon else rest[:1]
    arg = rest[2:] if colon else rest[1:]
    if op not in ("-", "?", "+"):
        raise InterpolationError(f'Invalid template: "{whole}"')
    value = lookup(name)
    present = value is not None and (value != "" or not colon)
    if op == "-":
        return value if present else substitute(arg, lookup, warn)  # type: ignore[return-value]
    if op == "+":
        return substitute(arg, lookup, warn) if present else ""
    if present:
        return value  # type: ignore[return-value]
    message = substitute(arg, lookup, warn)
    raise InterpolationError(f"required variable {name} is missing a value" + (f": {message}" if message else ""))


def interpolate(node: Any, lookup: Lookup, path: str = "", warn: Callable[[str], None] | None = None) -> Any:
    """Every string value below `node` (a YAML document) substituted; keys are left alone."""
    if isinstance(node, str):
        try:
            return substitute(node, lookup, warn)
        except InterpolationError as exc:
            raise InterpolationError(f"error while interpolating {path or 'the file'}: {exc.message}") from None
    if isinstance(node, dict):
        return {key: interpolate(value, lookup, f"{path}.{key}" if path else str(key), warn)
                for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, lookup, f"{path}[{i}]", warn) for i, value in enumerate(node)]
    return node


# --- .env files ------------------------------------------------------------------------------------


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "\\$"}


def parse_env_file(text: str, lookup: Lookup | None = None, source: str = ".env") -> dict[str, str | None]:
    """KEY=VALUE lines (compose-go's dotenv): `export ` prefixes, `#` comments, '…' literal,
    "…" with escapes, `${VAR}` expanded in unquoted and double-quoted values (from earlier
    keys, then `lookup`). A bare KEY maps to None (its value comes from elsewhere)."""
    values: dict[str, str | None] = {}

    def expand(raw: str) -> str:
        def find(name: str) -> str | None:
            if name in values and values[name] is not None:
                return values[name]
            return lookup(name) if lookup is not None else None

        try:
            return substitute(raw, find)
        except InterpolationError as exc:
            if exc.message.startswith("Invalid template"):
                return raw  # dotenv is lenient: a `$` that starts no substitution stays
            raise ComposeError(f"{source}: {exc.message}") from None

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        sep = line.find("=")
        if sep < 0:
            key = line.rstrip()
            if not _is_key(key):
                raise ComposeError(f"{source}:{number}: unexpected character in variable name {key!r}")
            values[key] = None
            continue
        key, raw = line[:sep].strip(), line[sep + 1:].lstrip()
        if not _is_key(key):
            raise ComposeError(f"{source}:{number}: unexpected character in variable name {key!r}")
        if raw[:1] in ("'", '"'):
            quote = raw[0]
            body = raw[1:]
            # a quoted value may span lines
            while _closing_quote(body, quote) < 0 and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _closing_quote(body, quote)
            if end < 0:
                raise ComposeError(f"{source}:{number}: unterminated quoted value")
            body = body[:end]
            if quote == "'":
                values[key] = body
            else:
                values[key] = expand(_unescape(body))
            continue
        comment = raw.find(" #")
        if comment >= 0:
            raw = raw[:comment]
        values[key] = expand(raw.rstrip())
    return values


def _is_key(key: str) -> bool:
    return bool(key) and all(ch in _NAME_REST or ch in ".-" for ch in key)


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                # `\$` stays escaped for the expansion that follows, as `$$`
                out.append("$$" if nxt == "$" else _ESCAPES[nxt])
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def read_env_file(path: str, lookup: Lookup | None = None) -> dict[str, str | None]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ComposeError(f"env file {path} not found") from None
    except OSError as exc:
        raise ComposeError(f"env file {path}: {exc.strerror}") from None
    return parse_env_file(text, lookup, path)
