"""`kill`: signal a container's init, or with --all every process in its cgroup."""

from __future__ import annotations

import os

from ..errors import InvalidArgument
from .state import Container

# Linux's signal numbers (the same on x86 and arm; `signal.Signals` would cost
# an enum import on every `kill`).
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN, SIGRTMAX = 34, 64


def parse_signal(text: str | None) -> int:
    """runc's accepted spellings: `9`, `KILL`, `SIGKILL`, `RTMIN+3` (any case); default SIGTERM."""
    if text is None or text == "":
        return SIGNALS["TERM"]
    if text.isdigit():
        number = int(text)
        if 0 < number <= SIGRTMAX:
            return number
        raise InvalidArgument(f'unknown signal "{text}"')
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value in (("RTMIN", SIGRTMIN), ("RTMAX", SIGRTMAX)):
        if name.startswith(base):
            offset = name[len(base):]
            try:
                number = value + (int(offset) if offset else 0)
            except ValueError:
                break
            if SIGRTMIN <= number <= SIGRTMAX:
                return number
    raise InvalidArgument(f'unknown signal "{text}"')


def kill(root: str, cid: str, sigtext: str | None, all_processes: bool) -> None:
    signum = parse_signal(sigtext)
    c = Container.load(root, cid)
    c.check("kill")
    if all_processes:
        c.cgroup().kill_all(signum)
        return
    try:
        os.kill(c.pid, signum)
    except ProcessLookupError:
        pass
