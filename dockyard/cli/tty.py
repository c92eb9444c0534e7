"""The user's terminal for `run -t`, `exec -t`, `attach`: raw mode, size, resize and signal relays.

Raw mode is cfmakeraw on stdin (what the docker CLI sets through moby/term),
restored on every way out. The engine is told the terminal's size after the
process starts and again on every SIGWINCH. Signals are forwarded to the
container (`--sig-proxy`) as `POST /containers/{id}/kill?signal=NAME`.

Requests made from a signal handler go through a client of their own, and
a signal that arrives while the relay is busy waits for the one in flight
to finish: the main flow may be in the middle of a request on its own
connections, and a handler may interrupt another handler.
"""

from __future__ import annotations

import _signal
import os

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable

# Signals the docker CLI forwards with sig-proxy (all it can catch, less SIGCHLD,
# SIGPIPE, SIGURG and the ones that only make sense for the CLI itself).
_FORWARDED = {
    "HUP": _signal.SIGHUP, "INT": _signal.SIGINT, "QUIT": _signal.SIGQUIT, "USR1": _signal.SIGUSR1,
    "USR2": _signal.SIGUSR2, "ALRM": _signal.SIGALRM, "TERM": _signal.SIGTERM, "CONT": _signal.SIGCONT,
    "TSTP": _signal.SIGTSTP, "WINCH": _signal.SIGWINCH, "VTALRM": _signal.SIGVTALRM, "PROF": _signal.SIGPROF,
    "IO": _signal.SIGIO, "PWR": _signal.SIGPWR, "XCPU": _signal.SIGXCPU, "XFSZ": _signal.SIGXFSZ,
}
SIGNAL_NAMES = {number: name for name, number in _FORWARDED.items()}


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def size(fd: int = 1) -> tuple[int, int]:
    """(rows, columns) of the terminal on `fd`; (0, 0) when it is not one."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return rows, columns


class RawTerminal:
    """cfmakeraw on `fd` until restore() (idempotent) or the end of a with block."""

    def __init__(self, fd: int = 0):
        import termios

        self.fd = fd
        self._saved = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        iflag, oflag, cflag, lflag = raw[0], raw[1], raw[2], raw[3]
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR |
                   termios.IGNCR | termios.ICRNL | termios.IXON)
        oflag &= ~termios.OPOST
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        cflag &= ~(termios.CSIZE | termios.PARENB)
        cflag |= termios.CS8
        raw[0], raw[1], raw[2], raw[3] = iflag, oflag, cflag, lflag
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSADRAIN, raw)

    def restore(self) -> None:
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None

    def __enter__(self) -> RawTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


class SignalRelay:
    """Runs `action(signal number)` for signals, one at a time, outside of other requests."""

    def __init__(self, action: Callable[[int], None]):
        self.action = action
        self._pending: list[int] = []
        self._busy = False
        self._installed: dict[int, object] = {}

    def install(self, signals: list[int] | tuple[int, ...]) -> SignalRelay:
        for number in signals:
            if number not in self._installed:
                self._installed[number] = _signal.signal(number, self._handle)
        return self

    def uninstall(self) -> None:
        for number, previous in self._installed.items():
            _signal.signal(number, previous)
        self._installed.clear()

    def _handle(self, number: int, frame: object) -> None:
        self._pending.append(number)
        if self._busy:
            return
        self._busy = True
        try:
            while self._pending:
                try:
                    self.action(self._pending.pop(0))
                except Exception:  # noqa: BLE001 - like the docker CLI: a failed relay is only logged at debug
                    pass
        finally:
            self._busy = False


class ContainerRelay:
    """What `run`, `start -a`, `attach` and `exec` do on signals: forward them, follow the size.

    kill:    forward the signals sig-proxy covers as `kill?signal=NAME` (container only)
    resize:  on SIGWINCH send the terminal's size (container or exec)
    """

    def __init__(self, host: str, target: str, is_exec: bool = False, main_client=None):  # noqa: ANN001
        self.host = host
        self.target = target
        self.is_exec = is_exec
        self.forward = False
        self.follow_size = False
        # Resizes made by the main flow go on its client (as the docker CLI's do);
        # signal handlers use one of their own (see the module docstring).
        self.main_client = main_client
        self._client = None
        self.relay = SignalRelay(self._on_signal)

    def client(self):  # noqa: ANN201
        if self._client is None:
            from dockyard.client.api import EngineClient

            self._client = EngineClient(self.host)
        return self._client

    def start(self, forward: bool, follow_size: bool) -> ContainerRelay:
        self.forward = forward
        self.follow_size = follow_size
        signals = list(_FORWARDED.values()) if forward else []
        if follow_size:
            signals.append(_signal.SIGWINCH)
        self.relay.install(signals)
        return self

    def stop(self) -> None:
        self.relay.uninstall()
        if self._client is not None:
            self._client.close()

    def resize(self, rows: int, columns: int, from_handler: bool = False) -> None:
        if rows == 0 and columns == 0:
            return
        client = self.client() if from_handler or self.main_client is None else self.main_client
        if self.is_exec:
            client.exec_resize(self.target, rows, columns)
        else:
            client.container_resize(self.target, rows, columns)

    def resize_to_terminal(self) -> None:
        """Send the size. If the engine refuses (the process may not be up yet), retry in the
        background as the docker CLI does, and complain only if that fails too while we still run."""
        rows, columns = size(1)
        try:
            self.resize(rows, columns)
        except Exception:  # noqa: BLE001 - an engine that refuses a resize must not stop the session
            import threading

            threading.Thread(target=self._retry_resize, args=(rows, columns), daemon=True).start()

    def _retry_resize(self, rows: int, columns: int) -> None:
        import time

        from dockyard.client.api import EngineClient

        client = EngineClient(self.host)  # not the main flow's: that one is in use meanwhile
        try:
            for attempt in range(10):
                time.sleep((attempt + 1) * 0.01)
                try:
                    if self.is_exec:
                        client.exec_resize(self.target, rows, columns)
                    else:
                        client.container_resize(self.target, rows, columns)
                    return
                except Exception:  # noqa: BLE001, S112 - retried, then reported below
                    continue
            os.write(2, b"failed to resize tty, using default size\n")
        finally:
            client.close()

    def _on_signal(self, number: int) -> None:
        if number == _signal.SIGWINCH and self.follow_size:
            rows, columns = size(1)
            try:
                self.resize(rows, columns, from_handler=True)
            except Exception:  # noqa: BLE001, S110 - resizes are best effort
                pass
        if self.forward and number in SIGNAL_NAMES and not self.is_exec:
            self.client().container_kill(self.target, SIGNAL_NAMES[number])
