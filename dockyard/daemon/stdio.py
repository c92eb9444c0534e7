"""A hijacked client connection <-> a monitor stream: the bytes of `attach` and attached `exec`.

Output frames from the monitor are Docker's stdcopy frames already; they go
to the client as they are, or as raw bytes when the process has a TTY (the
client knows which from `Config.Tty` or the exec's `Tty`). The client's bytes
are stdin (never framed); its half-close becomes a control `{"eof": true}`,
which ends the process's input when it was attached with StdinOnce. With a
TTY, typing the detach keys (docker's `--detach-keys`, ctrl-p ctrl-q by
default) ends the session and leaves the process running; without one, stdin
is data and passes byte for byte (dockerd watches for the keys only on a TTY).
"""

from __future__ import annotations

import asyncio
import contextlib

from ..errors import InvalidArgument
from .supervisor import MonitorStream


async def pump_session(stream: MonitorStream, frames_from, client, tty: bool, stdin: bool,
                       detach_keys: bytes, closes_stdin: bool) -> None:
    """Pump a hijacked client <-> a monitor stream until the output ends or the client detaches.

    `frames_from` is what output frames are read from (the stream, or a wrapper
    that looks at them on the way); the monitor stream is closed at the end.
    `closes_stdin`: the client's half-close ends the process's input (an exec,
    or a container attached with StdinOnce). Otherwise, and always with a TTY,
    dockerd ends the session there (its attach closes the output streams when
    the client's stdin ends), and so does this.
    """
    outward = asyncio.ensure_future(pump_output(frames_from, client, tty))
    inward = asyncio.ensure_future(pump_input(client, stream, detach_keys)) if stdin else None
    try:
        waiting = {outward} | ({inward} if inward else set())
        while waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if outward in done:
                break
            if inward in done and (inward.result() == "detached" or tty or not closes_stdin):
                break
    finally:
        for task in (outward, inward):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await stream.close()


async def pump_output(stream: MonitorStream, client, tty: bool) -> None:
    """Monitor -> client: output frames as stdcopy frames, or raw bytes for a TTY."""
    from .monitorwire import CONTROL, frame

    while True:
        frames = await stream.read_frames()
        if not frames:
            return
        out = bytearray()
        for channel, payload in frames:
            if channel == CONTROL or not payload:
                continue
            out += payload if tty else frame(channel, payload)
        if out:
            await client.write(bytes(out))
            if client.closing:
                return


async def pump_input(client, stream: MonitorStream, detach_keys: bytes) -> str:
    """Client -> monitor: stdin until the client half-closes ("eof") or types the detach keys ("detached")."""
    from .monitorwire import STDIN

    held = b""
    while True:
        data = await client.read(1 << 16)
        if not data:
            if held:
                await stream.send(STDIN, held)
            await stream.send_control({"eof": True})
            return "eof"
        if detach_keys:
            data, held, detached = scan_detach_keys(held + data, detach_keys)
            if data:
                await stream.send(STDIN, data)
            if detached:
                return "detached"
        else:
            await stream.send(STDIN, data)


def scan_detach_keys(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """(bytes to forward, bytes held as a possible start of the sequence, whether it was typed)."""
    index = data.find(keys)
    if index >= 0:
        return data[:index], b"", True
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False


def parse_detach_keys(text: str | None, word: str = "escape") -> bytes:
    """docker's --detach-keys: `ctrl-p,ctrl-q` (the default), `a,ctrl-@`…

    dockerd calls them "detach keys" in an attach's error and "escape keys" in an exec's.
    """
    if text is None or text == "":
        text = "ctrl-p,ctrl-q"
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise InvalidArgument(f"Invalid {word} keys ({text}) provided")
        else:
            raise InvalidArgument(f"Invalid {word} keys ({text}) provided")
    return bytes(out)
