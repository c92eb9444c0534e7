"""JSON for the start-up-sensitive commands, without the `json` package's import cost.

`import json` compiles several regular expressions and pulls in `re`: about
10 ms on the machines we measure, a third of `dockyard-runtime run`'s budget.
The parsing and string escaping are done by CPython's own C accelerator
(`_json`, which `json` itself uses); this module only supplies the small
glue `json` would.  Output matches `json.dumps` (compact, or indented like
`json.dumps(indent=N)`).  Anything off the fast path (error details) defers
to the real `json` module.
"""

from __future__ import annotations

import _json

_NAN = float("nan")
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": _NAN}


class _Context:
    """The attributes `_json.make_scanner` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict = {}


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(data: bytes | str):
    """Parse one JSON document; ValueError (json.JSONDecodeError) when it is not one."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
        if not text[end:].strip(_WS):
            return obj
    except (StopIteration, ValueError, SystemError):
        # The scanner's own error path imports `json.decoder` mid-scan and can
        # lose its message; let the real module find and word the error.
        pass
    import json

    return json.loads(text)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
_encode_spaced = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def dumps(obj, *, indent: int | None = None, compact: bool = True) -> str:
    """`json.dumps(obj)` (with `compact`, `separators=(",", ":")`), or indented like `indent=N`."""
    if indent is None:
        return "".join((_encode_compact if compact else _encode_spaced)(obj, 0))
    out: list[str] = []
    _pretty(obj, out, " " * indent, "\n")
    return "".join(out)


def _pretty(obj, out: list, step: str, nl: str) -> None:
    if isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = nl + step
        out.append("{")
        first = True
        for key, value in obj.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(_json.encode_basestring_ascii(str(key)))
            out.append(": ")
            _pretty(value, out, step, inner)
        out.append(nl + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        inner = nl + step
        out.append("[")
        for i, value in enumerate(obj):
            out.append(inner if i == 0 else "," + inner)
            _pretty(value, out, step, inner)
        out.append(nl + "]")
    else:
        out.append("".join(_encode_compact(obj, 0)))
