"""`start`: let a created container's init exec its program."""

from __future__ import annotations

import errno
import os
import sys
import time

from ..errors import Conflict, InvalidArgument
from . import hooks
from .state import CREATED, RUNNING, Container


def start(root: str, cid: str, log) -> None:
    c = Container.load(root, cid)
    c.lock()
    c.check("start")
    if c.config().get("process") is None:
        import signal

        c.cgroup().kill_all(signal.SIGKILL)
        c.wait_gone()
        raise InvalidArgument("cannot start a container without a process: config.json has none")
    run_prestart(c, c.pid, log)
    try:
        fd = os.open(c.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.ENOENT):
            raise Conflict("cannot start a container that has stopped") from None
        raise
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.unlink(c.fifo)
    poststart = hooks.chosen(c.config(), "poststart")
    if poststart:
        _wait_exec(c.pid)
        hooks.run("poststart", poststart, hooks.state_for(c, RUNNING, c.pid), warn=log.warning)


def run_prestart(c: Container, pid: int, log) -> None:
    """The prestart hooks, before the program runs; if one fails the container is stopped and deleted."""
    prestart = hooks.chosen(c.config(), "prestart")
    if not prestart:
        return
    try:
        hooks.run("prestart", prestart, hooks.state_for(c, CREATED, pid))
    except hooks.HookError:
        import signal

        from .delete import destroy

        c.cgroup().kill_all(signal.SIGKILL)
        c.wait_gone()
        destroy(c, log)
        raise


def _wait_exec(pid: int, timeout: float = 2.0) -> None:
    """Wait until the init has replaced the runtime's image with the program's."""
    ours = os.path.realpath(sys.executable)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.path.realpath(f"/proc/{pid}/exe") != ours:
                return
        except OSError:
            return
        time.sleep(0.002)
