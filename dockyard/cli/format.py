"""Output the way the docker CLI prints it: sizes, durations, tables, `--format`.

Sizes and durations follow docker's go-units (`1.99MB`, `2 minutes ago`);
tables follow Go's tabwriter as docker configures it (minimum cell width 10,
padding 3). `--format` takes docker's keys: "" or `table` (the command's
default table), `table TEMPLATE`, `json` (`{{json .}}` per row), or a Go
template printed once per row.
"""

from __future__ import annotations

import time

from dockyard.units import human_duration

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    size = float(size)
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units (`1.99MB`)."""
    return _scaled(size, 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units (`23.59GiB`)."""
    return _scaled(size, 1024.0, _BINARY_UNITS, 4)


def time_ago(unix_seconds: float, now: float | None = None) -> str:
    return human_duration((time.time() if now is None else now) - unix_seconds) + " ago"


def go_time(unix_seconds: float) -> str:
    """Go's time.Time.String() for a Unix time, in local time: `2026-11-27 21:49:49 +0000 UTC`."""
    local = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def parse_rfc3339(text: str) -> float:
    """`2026-11-27T21:49:49.553926907Z` (or with an offset) -> Unix seconds."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    date, _, rest = text.partition("T")
    clock = rest
    offset = 0
    if clock.endswith("Z"):
        clock = clock[:-1]
    else:
        for sign in ("+", "-"):
            idx = clock.rfind(sign)
            if idx > 0:
                hh, _, mm = clock[idx + 1:].partition(":")
                offset = (int(hh) * 3600 + int(mm or 0) * 60) * (1 if sign == "+" else -1)
                clock = clock[:idx]
                break
    whole, _, fraction = clock.partition(".")
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in whole.split(":"))
    import calendar

    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    return seconds + (float("0." + fraction) if fraction else 0.0)


def rfc3339(unix_seconds: float) -> str:
    """RFC 3339 in local time without fractions, as `docker history` prints CreatedAt."""
    local = time.localtime(unix_seconds)
    zone = time.strftime("%z", local)
    if zone in ("+0000", "-0000"):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", local)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone[:3] + ":" + zone[3:]


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (AlignLeft, pad with spaces) over tab-separated lines.

    A cell belongs to a column only if a tab ends it; consecutive lines with
    a cell in the same column form a block whose width is its widest cell
    plus padding (at least minwidth).
    """
    cells = [line.split("\t") for line in lines]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(line0: int, line1: int) -> None:
        for row in cells[line0:line1]:
            parts = []
            for j, cell in enumerate(row):
                if j < len(widths) and j < len(row) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(cells[this]) - 1:
                width = max(width, len(cells[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(cells))
    return "".join(line + "\n" for line in out)


class Formatter:
    """Renders rows (template contexts) per docker's `--format` rules."""

    def __init__(self, fmt: str, default_table: str, headers: dict[str, str], quiet_format: str | None = None,
                 quiet: bool = False):
        if fmt in ("", "table"):
            # docker prints -q output without a header
            fmt = quiet_format if quiet and quiet_format else "table " + default_table
        self.table = fmt.startswith("table")
        if fmt == "json":
            source = "{{json .}}"
        elif self.table:
            source = fmt[len("table"):]
        else:
            source = fmt
        source = source.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
        from dockyard.cli.template import Template

        self.template = Template(source)
        self.headers = headers

    def render(self, rows: list[Any]) -> str:
        from dockyard.cli.template import HEADER_FUNCTIONS, Context

        body = [self.template.execute(row) for row in rows]
        if not self.table:
            return "".join(line + "\n" for line in body)
        header = self.template.execute(Context(self.headers), HEADER_FUNCTIONS)
        lines: list[str] = []
        for chunk in [header, *body]:
            lines.extend(chunk.split("\n"))
        return tabwrite(lines, 10, 3)
