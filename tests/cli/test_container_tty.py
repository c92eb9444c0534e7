"""Through a real terminal: `run -it`, `exec -it`, `attach`, detach keys, Ctrl-C, window size.

Each scenario runs with our CLI and with the docker CLI, each on a fresh pty
that is its controlling terminal (tests/support/peers.Terminal), and both
must behave alike: the same exit status, the same lines from the container.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import time
import uuid

import pytest

from tests.support.engine import DOCKER, DOCKYARD
from tests.support.peers import Terminal, wait_for
from tests.support.targets import SESSION_LABEL

pytestmark = [pytest.mark.root, pytest.mark.peers]

PROGRAMS = {"dockyard": DOCKYARD, "docker": DOCKER}
RUN_IT = ["run", "-it", "--network", "none", "-l", SESSION_LABEL]


def terminal(target, cli: str, *args: str, rows: int = 20, cols: int = 90) -> Terminal:
    return Terminal([PROGRAMS[cli], *args], env=target.env(), rows=rows, cols=cols)


def session(target, cli, args, keys, rows=20, cols=90, prompt=b"# ", timeout=20.0):
    """Start `args` on a terminal, wait for the prompt, type each of `keys` (bytes, or a callable
    given the terminal), and finish: (exit status, what the terminal showed)."""
    term = terminal(target, cli, *args, rows=rows, cols=cols)
    try:
        if prompt:
            term.read_until(prompt)
            # as a person would: the CLI sends the window size right after the start, and
            # a command typed before it lands sees 0x0 (with dockerd as with ours)
            time.sleep(0.3)
        for key in keys:
            if callable(key):
                key(term)
            else:
                term.type(key)
                time.sleep(0.2)
        return term.finish(timeout)
    finally:
        term.kill()


def both(target, args, keys, **kw):
    return {cli: session(target, cli, args, keys, **kw) for cli in PROGRAMS}


def test_run_it_exit_status_and_output(target):
    results = both(target, [*RUN_IT, "--rm", "bb", "sh"], [b"echo in-run; exit 5\n"])
    for cli, (status, output) in results.items():
        assert status == 5, (cli, output)
        assert b"in-run\r\n" in output, (cli, output)


def test_run_it_has_the_terminal_size_and_follows_resizes(target):
    def resize(term):
        fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        time.sleep(0.5)  # the CLI gets SIGWINCH and tells the engine

    keys = [b"stty size\n", resize, b"stty size; exit 0\n"]
    for cli, (status, output) in both(target, [*RUN_IT, "--rm", "bb", "sh"], keys).items():
        assert status == 0, (cli, output)
        assert b"20 90\r\n" in output, (cli, output)
        assert b"33 101\r\n" in output, (cli, output)


def test_ctrl_c_reaches_the_container(target):
    def interrupt(term):
        term.read_until(b"sleeping")
        term.type(b"\x03")
        time.sleep(0.3)

    keys = [b"echo sleeping; sleep 30\n", interrupt, b"echo after-interrupt; exit 0\n"]
    start = time.monotonic()
    for cli, (status, output) in both(target, [*RUN_IT, "--rm", "bb", "sh"], keys).items():
        assert status == 0, (cli, output)
        assert b"after-interrupt\r\n" in output, (cli, output)
    assert time.monotonic() - start < 30, "Ctrl-C must stop the sleep, not wait for it"


def _running(target, name: str) -> bool:
    result = target.docker("inspect", "-f", "{{.State.Running}}", name)
    return result.stdout.strip() == b"true"


def test_detach_keys_and_attach(target):
    for cli in PROGRAMS:
        name = f"tty-{uuid.uuid4().hex[:8]}"
        try:
            status, output = session(target, cli, [*RUN_IT, "--name", name, "bb", "sh"],
                                     [b"echo first\n", b"\x10", b"\x11"])
            assert status == 0, (cli, output)  # run: detaching is no error
            assert b"read escape sequence" not in output
            assert _running(target, name), f"{cli}: the container must keep running after a detach"
            status, output = session(target, cli, ["attach", name], [b"echo again\n", b"\x10", b"\x11"],
                                     prompt=None)
            assert status == 1 and b"again\r\n" in output, (cli, output)
            assert output.endswith(b"read escape sequence\r\n"), (cli, output)  # attach: docker's error
            assert _running(target, name)
            # other keys, ctrl-p ctrl-q among them, reach the shell (^C then clears its line)
            status, output = session(target, cli, ["attach", "--detach-keys", "ctrl-a,x", name],
                                     [b"echo custom\n", b"\x10\x11", b"\x03", b"\x01", b"x"], prompt=None)
            assert status == 1 and b"custom\r\n" in output, (cli, output)
            assert output.endswith(b"read escape sequence\r\n"), (cli, output)
            status, output = session(target, cli, ["attach", name], [b"exit 7\n"], prompt=None)
            assert status == 7, (cli, output)
            wait_for(lambda name=name: not _running(target, name), what=f"{name} to stop")
        finally:
            target.docker("rm", "-f", name)


def test_exec_it(target):
    name = f"tty-exec-{uuid.uuid4().hex[:8]}"
    started = target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                            "300")
    assert started.returncode == 0
    try:
        results = both(target, ["exec", "-it", name, "sh"], [b"stty size; tty; exit 3\n"], rows=25, cols=81)
        for cli, (status, output) in results.items():
            assert status == 3, (cli, output)
            assert b"25 81\r\n" in output and b"/dev/pts/" in output, (cli, output)
        results = both(target, ["exec", "-it", name, "sh"], [b"echo before\n", b"\x10", b"\x11"])
        for cli, (status, output) in results.items():
            assert status == 1 and output.endswith(b"read escape sequence\r\n"), (cli, output)
        results = both(target, ["exec", "-t", name, "sh", "-c", "echo no-stdin; test -t 0 && echo tty"], [],
                       prompt=None)
        # without stdin the terminal stays cooked: the pty's CRLF passes through ours again (\r\r\n)
        assert results["dockyard"] == results["docker"]
        assert results["dockyard"] == (0, b"no-stdin\r\r\ntty\r\r\n")
    finally:
        target.docker("rm", "-f", name)


def test_start_ai_on_a_terminal(target):
    for cli in PROGRAMS:
        name = f"tty-start-{uuid.uuid4().hex[:8]}"
        created = target.docker("create", "-it", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb",
                                "sh")
        assert created.returncode == 0
        try:
            status, output = session(target, cli, ["start", "-ai", name], [b"echo started; exit 4\n"])
            assert status == 4 and b"started\r\n" in output, (cli, output)
        finally:
            target.docker("rm", "-f", name)
