"""Signals as dockerd reads them (its pkg/signal): `kill -s`, `--stop-signal`, a stop's signal.

A signal is a number (Go's strconv.Atoi of the text, never 0) or a name from
dockerd's Linux table, any case, with or without `SIG`; anything else is
`Invalid signal: X`. A number Linux has no signal for passes the parse and is
refused where it would be sent (`valid_signal`).
"""

from __future__ import annotations

from ..errors import InvalidArgument


def _docker_signals() -> dict[str, int]:
    from ..runtime.kill import SIGNALS, SIGRTMAX, SIGRTMIN

    names = dict(SIGNALS, CLD=SIGNALS["CHLD"], RTMIN=SIGRTMIN, RTMAX=SIGRTMAX)
    names.update({f"RTMIN+{i}": SIGRTMIN + i for i in range(1, 16)})
    names.update({f"RTMAX-{i}": SIGRTMAX - i for i in range(1, 15)})
    return names


def signal_number(text: str | int | None, default: int = 15) -> int:
    """The signal `text` names (see the module docstring); `default` when it is empty."""
    if text is None or text == "":
        return default
    text = str(text)
    digits = text[1:] if text[:1] in ("+", "-") else text
    if digits.isascii() and digits.isdigit() and -(1 << 63) <= int(text) < 1 << 63:
        if int(text) == 0:
            raise InvalidArgument(f"Invalid signal: {text}")
        return int(text)
    number = _docker_signals().get(text.upper().removeprefix("SIG"))
    if number is None:
        raise InvalidArgument(f"Invalid signal: {text}")
    return number


def valid_signal(number: int) -> bool:
    return number in _docker_signals().values()
