"""A subset of Go's text/template, for `--format`.

Covers what people write in docker format strings: fields and chains
(`{{.Config.Env}}`), `$` and variables, pipelines (`{{.Os | upper}}`),
parenthesised calls, `if`/`else if`/`range`/`with` with `else`, `{{-`/`-}}`
trimming, comments, and the functions docker adds to Go's builtins (json,
join, split, lower, upper, title, pad, truncate). Values print the way Go's
fmt prints them (`[a b]`, `map[k:v]`, `<no value>` for a missing map key).

Data is either decoded JSON (dicts, lists, scalars; a missing key is
`<no value>`) or a *context* object, which the CLI builds for listings:
it has `fields` (name -> value) and `type_name`, and an unknown field is an
error, as with docker's Go structs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any


class TemplateError(Exception):
    """Printed by the CLI after "template parsing error: " (docker's wording for both kinds)."""


class Context:
    """Base for row contexts: field values by name, and a Go type name for error messages."""

    type_name = "*formatter.context"
    escape_json = True  # docker marshals its contexts with json.Marshal, which escapes <, >, &

    def __init__(self, fields: dict[str, Any], json_value: Any = None):
        self.fields = fields
        # What `{{json .}}` prints when it is not the fields (a wire struct such as an event).
        self.json_value = json_value


class _Nil:
    """A nil pointer in a Go struct: printed `<nil>` (a missing map key prints `<no value>`), false, JSON null."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NIL"


NIL = _Nil()


# --- values, printed and compared as Go would --------------------------------------


def go_str(value: Any) -> str:
    if value is None:
        return "<no value>"
    if value is NIL:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_inner(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_inner(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Context):
        return "{" + " ".join(_go_inner(v) for v in value.fields.values()) + "}"
    return str(value)


def _go_inner(value: Any) -> str:
    # Inside a slice or map Go prints a nil interface as <nil>, not <no value>.
    return "<nil>" if value is None else go_str(value)


def _go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        return str(int(value)) if abs(value) < 1e6 else f"{value:g}".replace("e+0", "e+")
    return repr(value)


def go_json(value: Any, escape_html: bool = False) -> str:
    import json

    sort = False
    if isinstance(value, Context) and value.json_value is not None:
        value = value.json_value
    elif isinstance(value, Context):
        # docker marshals a context through a map, so its keys come out sorted;
        # decoded engine JSON keeps the engine's order, as Go's typed structs do.
        escape_html, sort = value.escape_json, True
        # Methods that take arguments ({{.Label "k"}}) are not part of a context's JSON.
        value = {k: (None if v is NIL else v) for k, v in value.fields.items() if not callable(v)}
    text = json.dumps(value, separators=(",", ":"), sort_keys=sort, ensure_ascii=False)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def _truth(value: Any) -> bool:
    if isinstance(value, Context):
        return True
    return bool(value)


# --- functions -----------------------------------------------------------------------


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int):
                raise TemplateError(f"cannot index slice/array with type {type(key).__name__}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {type(item).__name__}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, (list, tuple, dict, str)):
        return len(item)
    if item is None or item is NIL:
        return 0  # a JSON null is a nil slice or map in docker's typed structs: length 0
    raise TemplateError(f"error calling len: len of type {type(item).__name__}")


def _printf(fmt: str, *args: Any) -> str:
    out = []
    i = n = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%" or i + 1 >= len(fmt):
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        if verb == "q":
            out.append(go_json(go_str(arg)))
        elif verb == "d" and isinstance(arg, (int, float)):
            out.append(str(int(arg)))
        elif verb == "x" and isinstance(arg, int):
            out.append(f"{arg:x}")
        else:
            out.append(go_str(arg))
    return "".join(out)


def _compare(op: str) -> Any:
    def compare(a: Any, *bs: Any) -> bool:
        if op == "eq":
            return any(a == b for b in bs)
        b = bs[0]
        try:
            return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise TemplateError(f"error calling {op}: incompatible types for comparison") from None

    return compare


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in str(text).split(" "))


def _truncate(text: Any, length: int) -> str:
    text = go_str(text)
    return text[:length] if len(text) > length else text


def _pad(text: Any, left: int, right: int) -> str:
    text = go_str(text)
    return " " * left + text + " " * right if text else ""  # docker pads nothing around nothing


def _print(*args: Any) -> str:
    # Go's Sprint adds spaces only between operands when neither is a string.
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


FUNCTIONS: dict[str, Any] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda text, sep: str(text).split(sep),
    "lower": lambda text: go_str(text).lower(),
    "upper": lambda text: go_str(text).upper(),
    "title": _title,
    "pad": _pad,
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": _print,
    "printf": _printf,
    "index": _index,
    "len": _len,
    "not": lambda a: not _truth(a),
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"),
    "le": _compare("le"), "gt": _compare("gt"), "ge": _compare("ge"),
    "slice": lambda item, *ix: item[slice(*ix)],
}
# In a table's header row every field is its column title; docker makes the
# formatting functions pass titles through unchanged.
HEADER_FUNCTIONS: dict[str, Any] = {
    name: (lambda v, *_: v) for name in ("json", "split", "join", "title", "lower", "upper", "pad", "truncate")
}
# `and`/`or` short-circuit and return an operand, so they are evaluated specially.
_LAZY = {"and", "or"}


# --- lexer ---------------------------------------------------------------------------


class _Token:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: Any, pos: int):
        self.kind = kind
        self.value = value
        self.pos = pos


def _lex_action(src: str, start: int, end: int, line_of: Any) -> list[_Token]:
    tokens: list[_Token] = []
    i = start
    while i < end:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()|":
            tokens.append(_Token(c, c, i))
            i += 1
        elif c == ":" and src.startswith(":=", i):
            tokens.append(_Token(":=", ":=", i))
            i += 2
        elif c == "=":
            tokens.append(_Token(":=", "=", i))
            i += 1
        elif c == ",":
            tokens.append(_Token(",", ",", i))
            i += 1
        elif c == '"':
            j = i + 1
            while j < end and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            if j >= end:
                raise TemplateError(f"template: :{line_of(i)}: unterminated quoted string")
            import json

            try:
                value = json.loads(src[i:j + 1])
            except ValueError:
                raise TemplateError(f"template: :{line_of(i)}: bad quoted string") from None
            tokens.append(_Token("str", value, i))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1, end)
            if j < 0:
                raise TemplateError(f"template: :{line_of(i)}: unterminated raw quoted string")
            tokens.append(_Token("str", src[i + 1:j], i))
            i = j + 1
        elif c == "." or c == "$" or c.isalpha() or c == "_":
            j = i + 1
            while j < end and (src[j].isalnum() or src[j] in "._$"):
                j += 1
            word = src[i:j]
            if word.startswith("$"):
                name, _, rest = word.partition(".")
                chain = [p for p in rest.split(".")] if rest else []
                tokens.append(_Token("var", (name, chain), i))
            elif word.startswith("."):
                chain = [p for p in word[1:].split(".")] if word != "." else []
                if any(p == "" for p in chain):
                    raise TemplateError(f"template: :{line_of(i)}: bad field {word}")
                tokens.append(_Token("field", chain, i))
            elif word in ("true", "false"):
                tokens.append(_Token("lit", word == "true", i))
            elif word == "nil":
                tokens.append(_Token("lit", None, i))
            else:
                tokens.append(_Token("ident", word, i))
            i = j
        elif c.isdigit() or (c == "-" and i + 1 < end and src[i + 1].isdigit()):
            j = i + 1
            while j < end and (src[j].isalnum() or src[j] == "."):
                j += 1
            text = src[i:j]
            try:
                value: Any = float(text) if "." in text else int(text, 0)
            except ValueError:
                raise TemplateError(f"template: :{line_of(i)}: bad number syntax: {text!r}") from None
            tokens.append(_Token("lit", value, i))
            i = j
        else:
            raise TemplateError(f"template: :{line_of(i)}: unexpected {c!r} in command")
    return tokens


# --- parser ----------------------------------------------------------------------------


class _Node:
    __slots__ = ("kind", "a", "b", "c", "d")

    def __init__(self, kind: str, a: Any = None, b: Any = None, c: Any = None, d: Any = None):
        self.kind, self.a, self.b, self.c, self.d = kind, a, b, c, d


class Template:
    def __init__(self, source: str):
        self.source = source
        self._functions = FUNCTIONS
        self._root = self._parse(source)

    def _line_of(self, pos: int) -> int:
        return self.source.count("\n", 0, pos) + 1

    def _col_of(self, pos: int) -> int:
        return pos - (self.source.rfind("\n", 0, pos) + 1)

    def _parse(self, src: str) -> list[_Node]:
        items: list[tuple[str, Any, int]] = []  # ("text", str, pos) | ("action", tokens, pos)
        i = 0
        while True:
            j = src.find("{{", i)
            if j < 0:
                items.append(("text", src[i:], i))
                break
            text = src[i:j]
            start = j + 2
            if src.startswith("-", start) and start + 1 < len(src) and src[start + 1] in " \t\r\n":
                text = text.rstrip(" \t\r\n")
                start += 1
            close = src.find("}}", start)
            if close < 0:
                raise TemplateError(f"template: :{self._line_of(j)}: unclosed action")
            end = close
            trim_right = False
            if close - 1 >= start and src[close - 1] == "-" and close - 2 >= start and src[close - 2] in " \t\r\n":
                trim_right = True
                end = close - 1
            items.append(("text", text, i))
            inner = src[start:end].strip()
            if inner.startswith("/*"):
                if not inner.endswith("*/"):
                    raise TemplateError(f"template: :{self._line_of(j)}: unclosed comment")
            else:
                tokens = _lex_action(src, start, end, self._line_of)
                if not tokens:
                    raise TemplateError(f"template: :{self._line_of(j)}: missing value for command")
                items.append(("action", tokens, start))
            i = close + 2
            if trim_right:
                while i < len(src) and src[i] in " \t\r\n":
                    i += 1
        nodes, stop, _ = self._parse_list(items, 0, ())
        if stop is not None:
            raise TemplateError(f"template: :{self._line_of(stop[1])}: unexpected {{{{{stop[0]}}}}}")
        return nodes

    def _parse_list(self, items: list[tuple[str, Any, int]], i: int,
                    stops: tuple[str, ...]) -> tuple[list[_Node], Any, int]:
        nodes: list[_Node] = []
        while i < len(items):
            kind, value, pos = items[i]
            i += 1
            if kind == "text":
                if value:
                    nodes.append(_Node("text", value))
                continue
            first = value[0]
            word = first.value if first.kind == "ident" else None
            if word in ("end", "else"):
                if word not in stops:
                    raise TemplateError(f"template: :{self._line_of(pos)}: unexpected {{{{{word}}}}}")
                return nodes, (word, pos, value[1:]), i
            if word in ("if", "range", "with"):
                node, i = self._parse_block(word, value[1:], pos, items, i)
                nodes.append(node)
                continue
            if word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: :{self._line_of(pos)}: {{{{{word}}}}} is not supported")
            nodes.append(_Node("action", self._parse_pipeline(value, pos), None, None, pos))
        if stops:
            raise TemplateError(f"template: :{self._line_of(items[-1][2] if items else 0)}: unexpected EOF")
        return nodes, None, i

    def _parse_block(self, word: str, tokens: list[_Token], pos: int, items: list[tuple[str, Any, int]],
                     i: int) -> tuple[_Node, int]:
        """An if/range/with block; `{{else if …}}` nests a block that shares our `{{end}}`."""
        pipe = self._parse_pipeline(tokens, pos)
        body, stop, i = self._parse_list(items, i, ("end", "else"))
        other: list[_Node] = []
        if stop is None:
            raise TemplateError(f"template: :{self._line_of(pos)}: unexpected EOF")
        if stop[0] == "else":
            rest = stop[2]
            if rest and rest[0].kind == "ident" and rest[0].value in ("if", "with"):
                nested, i = self._parse_block(rest[0].value, rest[1:], stop[1], items, i)
                other = [nested]
            else:
                other, stop, i = self._parse_list(items, i, ("end",))
                if stop is None:
                    raise TemplateError(f"template: :{self._line_of(pos)}: unexpected EOF")
        return _Node(word, pipe, body, other, pos), i

    def _parse_pipeline(self, tokens: list[_Token], pos: int) -> _Node:
        decl: list[str] = []
        if len(tokens) >= 2 and tokens[0].kind == "var" and tokens[1].kind in (":=", ","):
            k = 0
            while k < len(tokens) and tokens[k].kind == "var":
                decl.append(tokens[k].value[0])
                k += 1
                if k < len(tokens) and tokens[k].kind == ",":
                    k += 1
                    continue
                break
            if k >= len(tokens) or tokens[k].kind != ":=":
                raise TemplateError(f"template: :{self._line_of(pos)}: expected :=")
            tokens = tokens[k + 1:]
        commands: list[list[Any]] = [[]]
        stack: list[list[list[Any]]] = []
        for tok in tokens:
            if tok.kind == "|":
                if not commands[-1]:
                    raise TemplateError(f"template: :{self._line_of(tok.pos)}: missing command")
                commands.append([])
            elif tok.kind == "(":
                stack.append(commands)
                commands = [[]]
            elif tok.kind == ")":
                if not stack:
                    raise TemplateError(f"template: :{self._line_of(tok.pos)}: unexpected right paren")
                inner = _Node("pipe", [], commands, None, tok.pos)
                commands = stack.pop()
                commands[-1].append(_Node("sub", inner, None, None, tok.pos))
            else:
                commands[-1].append(tok)
        if stack:
            raise TemplateError(f"template: :{self._line_of(pos)}: unclosed left paren")
        if not commands[-1]:
            raise TemplateError(f"template: :{self._line_of(pos)}: missing value for command")
        return _Node("pipe", decl, commands, None, pos)

    # --- execution ----------------------------------------------------------------------

    def execute(self, data: Any, functions: dict[str, Any] | None = None) -> str:
        """Run the template on `data`; `functions` replaces some functions (table headers)."""
        self._functions = FUNCTIONS if functions is None else {**FUNCTIONS, **functions}
        out: list[str] = []
        self._run(self._root, data, {"$": data}, out)
        return "".join(out)

    def _run(self, nodes: list[_Node], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node.kind
            if kind == "text":
                out.append(node.a)
            elif kind == "action":
                value = self._pipe(node.a, dot, scope)
                if not node.a.a:  # declarations print nothing
                    out.append(go_str(value))
            elif kind == "if":
                value = self._pipe(node.a, dot, scope)
                self._run(node.b if _truth(value) else node.c, dot, dict(scope), out)
            elif kind == "with":
                value = self._pipe(node.a, dot, scope)
                if _truth(value):
                    self._run(node.b, value, dict(scope), out)
                else:
                    self._run(node.c, dot, dict(scope), out)
            elif kind == "range":
                self._range(node, dot, scope, out)

    def _range(self, node: _Node, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        names = node.a.a
        pipe = _Node("pipe", [], node.a.b, None, node.a.c)
        value = self._pipe(pipe, dot, scope)
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        if not pairs:
            self._run(node.c, dot, dict(scope), out)
            return
        for key, item in pairs:
            inner = dict(scope)
            if len(names) == 1:
                inner[names[0]] = item
            elif len(names) >= 2:
                inner[names[0]], inner[names[1]] = key, item
            self._run(node.b, item, inner, out)

    def _pipe(self, pipe: _Node, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = _MISSING
        for command in pipe.b:
            value = self._command(command, dot, scope, value)
        for name in pipe.a:
            scope[name] = value
        return value

    def _command(self, command: list[Any], dot: Any, scope: dict[str, Any], piped: Any) -> Any:
        head = command[0]
        if isinstance(head, _Token) and head.kind == "ident":
            name = head.value
            if name in _LAZY:
                args = [lambda a=a: self._operand(a, dot, scope) for a in command[1:]]
                if piped is not _MISSING:
                    args.append(lambda: piped)
                result: Any = None
                for get in args:
                    result = get()
                    if _truth(result) != (name == "and"):
                        return result
                return result
            fn = self._functions.get(name)
            if fn is None:
                raise TemplateError(f'template: :{self._line_of(head.pos)}: function "{name}" not defined')
            args = [self._operand(a, dot, scope) for a in command[1:]]
            if piped is not _MISSING:
                args.append(piped)
            try:
                return fn(*args)
            except TemplateError:
                raise
            except TypeError as exc:
                raise TemplateError(self._exec_error(head.pos, name, f"wrong number of args for {name}: {exc}")) \
                    from None
        if len(command) > 1 or piped is not _MISSING:
            if isinstance(head, _Token) and head.kind == "field":
                method = self._walk(dot, head.value, head.pos)
                if callable(method):  # a context's method with arguments: {{.Label "com.x"}}
                    args = [self._operand(a, dot, scope) for a in command[1:]]
                    if piped is not _MISSING:
                        args.append(piped)
                    return method(*args)
            raise TemplateError(self._exec_error(head.pos if isinstance(head, _Token) else 0, "",
                                                 "can't give argument to non-function"))
        value = self._operand(head, dot, scope)
        if callable(value) and isinstance(head, _Token) and head.kind == "field":
            name = head.value[-1]
            raise TemplateError(self._exec_error(head.pos, "." + ".".join(head.value),
                                                 f"wrong number of args for {name}: want 1 got 0"))
        return value

    def _operand(self, tok: Any, dot: Any, scope: dict[str, Any]) -> Any:
        if isinstance(tok, _Node):  # parenthesised pipeline
            return self._pipe(tok.a, dot, scope)
        if tok.kind == "lit" or tok.kind == "str":
            return tok.value
        if tok.kind == "field":
            return self._walk(dot, tok.value, tok.pos)
        if tok.kind == "var":
            name, chain = tok.value
            if name not in scope:
                raise TemplateError(f"template: :{self._line_of(tok.pos)}: undefined variable: {name}")
            return self._walk(scope[name], chain, tok.pos)
        if tok.kind == "ident":
            fn = self._functions.get(tok.value)
            if fn is None:
                raise TemplateError(f'template: :{self._line_of(tok.pos)}: function "{tok.value}" not defined')
            return fn()
        raise TemplateError(f"template: :{self._line_of(tok.pos)}: unexpected {tok.value!r}")

    def _walk(self, value: Any, chain: list[str], pos: int) -> Any:
        offset = pos
        for name in chain:
            where = "." + ".".join(chain)
            if isinstance(value, dict):
                if name not in value:
                    raise TemplateError(self._exec_error(offset, where, f'map has no entry for key "{name}"'))
                value = value[name]
            elif isinstance(value, Context):
                if name not in value.fields:
                    raise TemplateError(self._exec_error(
                        offset, where, f"can't evaluate field {name} in type {value.type_name}"))
                value = value.fields[name]
            elif value is None:
                raise TemplateError(self._exec_error(offset, where, f"nil pointer evaluating interface {{}}.{name}"))
            else:
                raise TemplateError(self._exec_error(
                    offset, where, f"can't evaluate field {name} in type {_go_type(value)}"))
            offset += len(name) + 1
        return value

    def _exec_error(self, pos: int, where: str, message: str) -> str:
        return (f'template: :{self._line_of(pos)}:{self._col_of(pos)}: executing "" at <{where}>: '
                f"{message}")


_MISSING = object()


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, list):
        return "[]interface {}"
    return "interface {}"
