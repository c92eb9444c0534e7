"""The wire format between dockyardd and the monitor: frames, as in Docker's stdcopy.

Every byte on a monitor connection, both ways, travels in frames:

    byte 0     channel: 0 stdin, 1 stdout, 2 stderr, 3 control
    bytes 1-3  zero
    bytes 4-7  payload length, uint32 big-endian
    bytes 8-   payload

A control frame's payload is one JSON object: requests (`op`), replies
(`ok`/`error`, matching the request's `seq`) and events (`event`).  Frames on
channels 0-2 carry a process's input or output as raw bytes; with a TTY the
output is all on channel 1.  Using Docker's own framing means the daemon can
hand output frames of non-TTY streams to a client unchanged.

The protocol itself is drawn in monitor.py.  This module is imported by the
monitor at start-up, so it uses `jsonio` (no `json` import).
"""

from __future__ import annotations

from .. import jsonio

STDIN, STDOUT, STDERR, CONTROL = 0, 1, 2, 3
HEADER = 8
MAX_PAYLOAD = 1 << 20


def frame(channel: int, data: bytes) -> bytes:
    return bytes((channel, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def control(obj: dict) -> bytes:
    return frame(CONTROL, jsonio.dumps(obj).encode())


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


class Decoder:
    """Reassemble frames from reads of any size: `feed(data)` -> [(channel, payload)]."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= HEADER:
            channel = buf[pos]
            if channel > CONTROL or buf[pos + 1:pos + 4] != b"\0\0\0":
                raise ProtocolError(f"bad frame header {bytes(buf[pos:pos + HEADER])!r}")
            size = int.from_bytes(buf[pos + 4:pos + 8], "big")
            if size > MAX_PAYLOAD:
                raise ProtocolError(f"frame of {size} bytes is larger than {MAX_PAYLOAD}")
            if len(buf) - pos - HEADER < size:
                break
            out.append((channel, bytes(buf[pos + HEADER:pos + HEADER + size])))
            pos += HEADER + size
        if pos:
            del buf[:pos]
        return out


def parse_control(payload: bytes) -> dict:
    try:
        obj = jsonio.loads(payload)
    except ValueError as err:
        raise ProtocolError(f"control frame is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("control frame is not a JSON object")
    return obj
