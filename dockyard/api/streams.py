"""Everything that streams: stdcopy framing, JSON message streams, hijack.

stdcopy frames (attach, exec start and logs of a container without a TTY):

    byte 0     stream id: 0 stdin, 1 stdout, 2 stderr, 3 system error
    bytes 1-3  zero
    bytes 4-7  payload length, uint32 big-endian
    bytes 8-   payload

Frames need not line up with HTTP chunks or socket reads; `StdcopyDecoder`
reassembles them from any split of the byte stream. With a TTY the output is
the raw byte stream, without headers; the client knows which from `Config.Tty`.

JSON message streams (load, import, later pull/push/build) are one object per
message, each written and flushed as `<json>\\r\\n`; a failure after the 200
went out becomes an `{"errorDetail":…,"error":…}` message that ends the stream.
Newline-delimited JSON (events, wait, stats) is the same with `\\n`.

Hijack: the server answers `101 UPGRADED` (or, for a client that did not ask
to upgrade, `200` with a raw-stream content type) and the connection becomes a
raw bidirectional pipe handed to the handler's session coroutine: client ->
server bytes are stdin (never framed), server -> client is output. A client
half-close (`shutdown(SHUT_WR)`) shows up as `read()` returning b"". The
session ends by closing the connection; that close is how the client learns
the output has ended. A hijacked connection never carries HTTP again.

This module is also imported by the client for `StdcopyDecoder`, so it keeps
its top-level imports to what the CLI can afford (no asyncio, no json).
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False  # typing and collections.abc cost the CLI ~20 ms; only checkers need them
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from typing import Any

RAW_STREAM_TYPE = b"application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM_TYPE = b"application/vnd.docker.multiplexed-stream"
JSON_TYPE = b"application/json"
TAR_TYPE = b"application/x-tar"

_MAX_FRAME = 0xFFFFFFFF


class StdStream(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEM = 3


# --- stdcopy -------------------------------------------------------------------


def stdcopy_frame(stream: int, data: bytes) -> bytes:
    """Frame one payload (possibly as several frames); empty data gives no frame."""
    out = bytearray()
    view = memoryview(data)
    for start in range(0, len(view), _MAX_FRAME):
        piece = view[start:start + _MAX_FRAME]
        out += bytes((stream, 0, 0, 0)) + len(piece).to_bytes(4, "big")
        out += piece
    return bytes(out)


class StdcopyDecoder:
    """Incremental stdcopy reader: feed it bytes in any split, get (stream, payload) back."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        buf = self._buffer
        offset = 0
        while len(buf) - offset >= 8:
            stream = buf[offset]
            if stream > 3 or buf[offset + 1:offset + 4] != b"\x00\x00\x00":
                raise ValueError(f"not a stdcopy stream: bad frame header {bytes(buf[offset:offset + 8])!r}")
            size = int.from_bytes(buf[offset + 4:offset + 8], "big")
            if len(buf) - offset - 8 < size:
                break
            frames.append((stream, bytes(buf[offset + 8:offset + 8 + size])))
            offset += 8 + size
        del buf[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means truncation)."""
        return len(self._buffer)


# --- JSON messages -------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":")).encode()


def json_message(obj: Any) -> bytes:
    """One message of a JSON message stream (dockerd ends each with CRLF)."""
    return _dumps(obj) + b"\r\n"


def json_line(obj: Any) -> bytes:
    """One line of newline-delimited JSON (events, wait, stats)."""
    return _dumps(obj) + b"\n"


def error_message(message: str, code: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail["code"] = code
    return {"errorDetail": detail, "error": message}


# --- streaming responses -------------------------------------------------------


class Stream:
    """A response whose body is sent chunked, one flush per item of `body`.

    Headers go out before the first item is produced: clients such as the
    docker CLI block on the headers of `wait` and `events` before they go on.
    If the client hangs up, the server stops iterating and closes `body`.
    """

    __slots__ = ("body", "status", "content_type", "headers")

    def __init__(self, body: AsyncIterator[bytes], content_type: bytes | None = JSON_TYPE,
                 status: int = 200, headers: list[tuple[bytes, bytes]] | None = None):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers or []


def json_stream(messages: AsyncIterator[dict[str, Any]], *, crlf: bool = True) -> Stream:
    """A JSON message stream; an EngineError raised while streaming becomes an error message."""
    encode = json_message if crlf else json_line

    async def body() -> AsyncIterator[bytes]:
        from dockyard.errors import EngineError

        try:
            async for message in messages:
                yield encode(message)
        except EngineError as exc:
            yield encode(error_message(exc.message))
        finally:
            aclose = getattr(messages, "aclose", None)
            if aclose is not None:
                await aclose()

    return Stream(body())


# --- running blocking producers in a worker thread ------------------------------


class ConsumerGone(BrokenPipeError):
    """Raised inside the worker thread when the client stopped reading."""


_DONE = object()


async def iterate_in_thread(producer: Callable[[Callable[[Any], None]], Any],
                            max_pending: int = 8) -> AsyncIterator[Any]:
    """Run `producer(put)` in the worker pool and yield each item it `put`s.

    The queue is bounded, so a slow client slows the producer down instead of
    letting it fill memory. If the consumer stops early (client gone), the
    next `put` raises ConsumerGone in the thread so the producer unwinds.
    An exception from the producer is re-raised here.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(max_pending)
    gone = False

    def put(item: Any) -> None:
        if gone:
            raise ConsumerGone("the client stopped reading")
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def run() -> Any:
        try:
            return producer(put)
        finally:
            if not gone:
                asyncio.run_coroutine_threadsafe(queue.put(_DONE), loop).result()

    task = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            yield item
        await task  # re-raises the producer's exception
    finally:
        if not task.done():
            gone = True
            # Unblock a producer waiting on a full queue, then let it unwind.
            while not queue.empty():
                queue.get_nowait()
            try:
                await task
            except Exception:  # ConsumerGone or the producer's own failure: the client is gone
                pass


class ThreadWriter:
    """A write-only binary file for a producer thread; writes become stream items.

    Small writes are gathered into pieces of about `chunk` bytes so that a tar
    writer's 512-byte records do not each become an HTTP chunk.
    """

    def __init__(self, put: Callable[[Any], None], chunk: int = 256 << 10):
        self._put = put
        self._chunk = chunk
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= self._chunk:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            piece = bytes(self._buffer)
            self._buffer.clear()
            self._put(piece)

    def close(self) -> None:
        self.flush()


def bytes_from_thread(producer: Callable[[ThreadWriter], Any]) -> AsyncIterator[bytes]:
    """Run `producer(file)` in a worker thread; what it writes to `file` is streamed out."""

    def run(put: Callable[[Any], None]) -> Any:
        writer = ThreadWriter(put)
        result = producer(writer)
        writer.flush()
        return result

    return iterate_in_thread(run)


# --- hijack ----------------------------------------------------------------------


class HijackedStream:
    """The raw connection after a hijack. Reads are stdin, writes are output."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: bytes = b""):
        self._reader = reader
        self._writer = writer
        self._prefix = prefix

    async def read(self, n: int = 65536) -> bytes:
        """Up to n bytes from the client; b"" once it has half-closed or gone."""
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        try:
            return await self._reader.read(n)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        if data:
            self._writer.write(data)
            await self._writer.drain()

    @property
    def closing(self) -> bool:
        return self._writer.is_closing()

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class StdcopyWriter:
    """Writes output to a hijacked stream as stdcopy frames (containers without a TTY)."""

    def __init__(self, stream: HijackedStream):
        self._stream = stream

    async def write(self, stream_id: int, data: bytes) -> None:
        await self._stream.write(stdcopy_frame(stream_id, data))


class Hijack:
    """Response: switch protocols and run `session(stream)` on the raw connection.

    `101 UPGRADED` is sent at once, before the session starts, because the
    docker CLI sets up attach before it starts the container and may already
    be sending stdin.
    """

    __slots__ = ("session", "content_type")

    def __init__(self, session: Callable[[HijackedStream], Awaitable[None]],
                 content_type: bytes = RAW_STREAM_TYPE):
        self.session = session
        self.content_type = content_type


def iter_stdcopy(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Demultiplex a blocking iterator of byte chunks (client side)."""
    decoder = StdcopyDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    if decoder.pending:
        raise ValueError(f"stdcopy stream ended inside a frame ({decoder.pending} bytes left)")
