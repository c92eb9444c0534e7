"""`kill`: signal a container's init, or with --all every process in its cgroup."""

from __future__ import annotations

import os
import signal

from ..errors import InvalidArgument
from .state import Container


def parse_signal(text: str | None) -> int:
    """runc's accepted spellings: `9`, `KILL`, `SIGKILL` (any case); default SIGTERM."""
    if text is None or text == "":
        return signal.SIGTERM
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise InvalidArgument(f'unknown signal "{text}"')
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise InvalidArgument(f'unknown signal "{text}"')
    return int(sig)


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
