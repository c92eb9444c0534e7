"""The hijacked attach/exec stream on the client side: output to the terminal, stdin to the engine.

One thread, one poll loop (no threads to start, nothing to join):

    engine socket ──recv──> TTY: raw bytes to stdout
                            no TTY: stdcopy frames demultiplexed to stdout/stderr
    stdin ──read──> [detach-key watch, TTY only] ──send──> engine socket
    stdin EOF ──> shutdown(SHUT_WR): the engine closes the process's stdin, output goes on
    engine closes ──> done (the exit status comes from `wait` or the exec's inspect)

Without stdin the write side is shut at once, as the docker CLI does. Input
is sent without blocking (a container that does not read its stdin must not
stop its output from being read). The frame format is the Engine API's
stdcopy: 8-byte header (stream id, 3 zero bytes, big-endian length), then
the payload.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from dockyard.client.api import Hijacked

_READ = 1 << 16
STDIN, STDOUT, STDERR, SYSTEM_ERROR = 0, 1, 2, 3


class StreamError(Exception):
    """The engine sent something that is not a stdcopy stream (or an error frame)."""


class Detached(Exception):
    """The user typed the detach keys: leave the container running."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Demultiplexer:
    """stdcopy: frames in, payloads written to the stream each frame names."""

    def __init__(self, out_fd: int, err_fd: int):
        self.fds = {STDIN: out_fd, STDOUT: out_fd, STDERR: err_fd}
        self.pending = bytearray()

    def feed(self, data: bytes) -> None:
        buf = self.pending
        buf += data
        while len(buf) >= 8:
            stream = buf[0]
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                return
            payload = bytes(buf[8:8 + size])
            del buf[:8 + size]
            if stream == SYSTEM_ERROR:
                raise StreamError(f"error from daemon in stream: {payload.decode('utf-8', 'replace')}")
            fd = self.fds.get(stream)
            if fd is None:
                raise StreamError(f"Unrecognized input header: {stream}")
            write_all(fd, payload)


class EscapeWatch:
    """moby/term's escape proxy: hold back a prefix of the detach keys; the whole sequence detaches.

    Keys that start the sequence but do not finish it are sent on with
    whatever broke the match, so typing ctrl-p then x still reaches the
    container as ctrl-p x.
    """

    def __init__(self, keys: bytes):
        self.keys = keys
        self.matched = 0

    def filter(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    raise Detached()
                continue
            if self.matched:
                out += self.keys[:self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out)


def pump(hijacked: Hijacked, tty: bool, stdin_fd: int | None, detach_keys: bytes | None = None,
         out_fd: int = 1, err_fd: int = 2) -> None:
    """Move bytes until the engine closes the stream. Raises Detached on the detach keys.

    `stdin_fd` None: no stdin (the write side is shut at once). `detach_keys`
    is only watched with a TTY, where the terminal is raw and the keys reach
    us as bytes (without a TTY the engine watches for them).
    """
    import select

    sock = hijacked.sock
    demux = None if tty else Demultiplexer(out_fd, err_fd)
    if hijacked.early:
        _output(hijacked.early, demux, out_fd)
    if stdin_fd is None:
        hijacked.close_write()
    watch = EscapeWatch(detach_keys) if (tty and stdin_fd is not None and detach_keys) else None
    outbox = bytearray()
    reading = stdin_fd is not None
    sock_fd = sock.fileno()
    sock.setblocking(False)
    try:
        while True:
            readable = [sock_fd, stdin_fd] if reading and not outbox else [sock_fd]
            r, w, _ = select.select(readable, [sock_fd] if outbox else [], [])
            if w:
                try:
                    del outbox[:sock.send(outbox)]
                except BlockingIOError:
                    pass
                except OSError:
                    # The engine no longer takes input (the process closed its stdin, or
                    # the stream is ending): drop it and keep reading the output.
                    outbox.clear()
                    reading = False
            if sock_fd in r:
                try:
                    data = sock.recv(_READ)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    # The docker CLI ends with Go's words for a broken stream, and exit status 1.
                    raise StreamError(f"read unix @->{_peer(sock)}: read: "
                                      f"{(exc.strerror or str(exc)).lower()}") from None
                if not data:
                    return
                _output(data, demux, out_fd)
            elif reading and stdin_fd in r:
                try:
                    data = os.read(stdin_fd, _READ)
                except OSError:
                    data = b""
                if not data:
                    reading = False
                    hijacked.close_write()
                    continue
                outbox += watch.filter(data) if watch is not None else data
    finally:
        try:
            sock.setblocking(True)
        except OSError:
            pass


def _peer(sock) -> str:  # noqa: ANN001
    try:
        return sock.getpeername() or ""
    except OSError:
        return ""


def _output(data: bytes, demux: Demultiplexer | None, out_fd: int) -> None:
    if demux is None:
        write_all(out_fd, data)
    else:
        demux.feed(data)


def copy_logs(response, tty: bool, out_fd: int = 1, err_fd: int = 2) -> None:  # noqa: ANN001
    """A logs body to stdout/stderr: raw for a TTY container, demultiplexed otherwise."""
    demux = None if tty else Demultiplexer(out_fd, err_fd)
    for piece in response.iter_raw():
        _output(piece, demux, out_fd)


def body_to_stdout(cli, response) -> None:  # noqa: ANN001
    """A response body, as it arrives, to our stdout (after any text already written there)."""
    import sys

    cli.out.flush()
    out = sys.stdout.buffer
    for piece in response.iter_raw():
        out.write(piece)
    out.flush()
