"""`run`: create, start, and (unless --detach) wait for the program and delete the container."""

from __future__ import annotations

import _signal
import os

from ..linux import proc as lproc
from . import create, hooks
from . import delete as deletemod
from .start import run_prestart, start
from .state import RUNNING

# Signals `run` passes on to the container instead of acting on them itself
# (`_signal`: the C module, without `signal`'s enum import).
FORWARDED = [s for s in range(1, _signal.NSIG)
             if s not in (_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGURG)
             and not 32 <= s < 34]


def run(cid: str, opts: create.Options, detach: bool, log) -> int:
    if detach:
        create.launch(cid, opts, use_fifo=True)
        start(opts.root, cid, log)
        return 0
    lproc.set_child_subreaper()
    launched = create.launch(cid, opts, use_fifo=False)
    c = launched.container
    run_prestart(c, launched.pid, log)  # on failure it has deleted the container itself
    try:
        launched.channel.send("start")
        launched.channel.close()
        poststart = hooks.chosen(c.config(), "poststart")
        if poststart:
            hooks.run("poststart", poststart, hooks.state_for(c, RUNNING, launched.pid), warn=log.warning)
        return wait_foreground(launched.pid, launched.console_fd)
    finally:
        c.wait_gone(5.0)
        deletemod.destroy(c, log)


def wait_foreground(pid: int, console_fd: int = -1) -> int:
    """Forward signals to `pid`, proxy its terminal if we hold one, and return its exit code."""

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        try:
            _signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    if console_fd >= 0:
        _proxy_terminal(console_fd, pid)
    while True:
        try:
            got, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            break
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _proxy_terminal(master: int, pid: int) -> None:
    """Be the container's terminal: our stdin to the pty, the pty to our stdout."""
    import select
    import termios
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def resize(_signum=None, _frame=None):
        if stdin_tty:
            import fcntl

            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    if stdin_tty:
        tty.setraw(0)
        resize()
        _signal.signal(_signal.SIGWINCH, resize)
    try:
        watch = [master, 0]
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    watch = [master]
                    os.write(master, b"\x04")
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
