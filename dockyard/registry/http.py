"""The registry's small HTTP/1.1 server: asyncio streams, one h11 state machine per connection.

Bodies are streamed both ways, since blobs may be hundreds of megabytes:

    request body:  `Request.chunks()` yields the bytes as they arrive (after a
                   `100 Continue` when the client asked for one); the handler
                   writes them away chunk by chunk.
    response body: bytes, or an open file and a byte span that goes out
                   through `loop.sendfile` (the kernel's sendfile on plain TCP;
                   read-and-write through a thread under TLS).

Per connection: read head -> handler(request) -> response -> skip what is
left of the request body (up to DRAIN_LIMIT; past that the connection is
closed after the answer) -> next request (keep-alive).

Shutdown (`close`) stops accepting, lets requests in progress finish for a
grace period, then cancels them; idle keep-alive connections are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, BinaryIO

import h11

log = logging.getLogger("dockyard.registry")
access_log = logging.getLogger("dockyard.registry.access")

READ_SIZE = 256 << 10
DRAIN_LIMIT = 1 << 20
MAX_HEAD = 64 << 10
IDLE_TIMEOUT = 120.0   # a keep-alive connection with no request (or a head that never ends) is closed
BODY_TIMEOUT = 300.0   # a request body that stalls this long is given up


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class ClientGone(Exception):
    """The client closed the connection, or broke HTTP, before sending the whole request body."""


class BodyTooLarge(Exception):
    """A request body was longer than its handler accepts."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # A file body: `length` bytes of `file` from `offset`; the server closes the file.
    file: BinaryIO | None = None
    offset: int = 0
    length: int = 0
    close_connection: bool = False


class _FileSpan:
    """A file body handed through h11 untouched (`send_with_data_passthrough`) to go out by sendfile."""

    def __init__(self, file: BinaryIO, offset: int, length: int):
        self.file, self.offset, self.length = file, offset, length

    def __len__(self) -> int:
        return self.length


class Request:
    def __init__(self, conn: _Connection, event: h11.Request):
        self._conn = conn
        self.method = event.method.decode("ascii")
        target = event.target.decode("latin-1")
        if target.startswith(("http://", "https://")):  # absolute-form
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
        self.peer = conn.peer
        self.user = ""  # set once authenticated
        self.body_started = False
        self.body_done = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None and value.strip().isdigit() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The request body, piece by piece as it arrives; ClientGone if it is cut short."""
        self.body_started = True
        while not self.body_done:
            event = await self._conn.next_event(continue_ok=True, timeout=BODY_TIMEOUT)
            if isinstance(event, h11.Data):
                if event.data:
                    yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.body_done = True
            else:
                raise ClientGone("the client closed the connection before sending the whole request body")

    async def read(self, limit: int) -> bytes:
        """The whole (small) body; BodyTooLarge past `limit` bytes."""
        if self.content_length is not None and self.content_length > limit:
            raise BodyTooLarge()
        buf = bytearray()
        async for chunk in self.chunks():
            buf += chunk
            if len(buf) > limit:
                raise BodyTooLarge()
        return bytes(buf)

    async def drain(self, limit: int) -> bool:
        """Skip the rest of the body; False when more than `limit` bytes are left (the connection must close)."""
        if self.body_done:
            return True
        if self._conn.h11.they_are_waiting_for_100_continue and not self.body_started:
            return False  # they wait for our word before sending it: do not ask for it, just close
        left = limit
        try:
            async for chunk in self.chunks():
                left -= len(chunk)
                if left < 0:
                    return False
        except (ClientGone, h11.RemoteProtocolError):
            return False
        return True


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None, grace: float = 10.0,
                 common_headers: list[tuple[str, str]] | None = None, server_header: str = ""):
        self.handler = handler
        self.ssl_context = ssl_context
        self.grace = grace
        self.common_headers = [(k.encode(), v.encode()) for k, v in (common_headers or [])]
        if server_header:
            self.common_headers.append((b"Server", server_header.encode()))
        self._servers: list[asyncio.base_events.Server] = []
        self._connections: set[_Connection] = set()
        self.closing = False

    async def listen(self, host: str, port: int) -> list[tuple[str, int]]:
        """Start accepting on host:port; the addresses bound (port 0 picks a free one)."""
        server = await asyncio.start_server(self._accept, host, port, ssl=self.ssl_context, limit=READ_SIZE,
                                            reuse_address=True)
        self._servers.append(server)
        return [s.getsockname()[:2] for s in server.sockets]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing:
            writer.close()
            return
        conn = _Connection(self, reader, writer)
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        try:
            await conn.serve()
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("connection from %s ended: %s", conn.peer, exc)
        finally:
            self._connections.discard(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def close(self) -> None:
        self.closing = True
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while any(c.busy for c in self._connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            conn.cancel()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)


class _Connection:
    def __init__(self, server: HttpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.task: asyncio.Task[Any] | None = None
        self.busy = False  # a request is being handled: shutdown lets it finish

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def next_event(self, continue_ok: bool = False, timeout: float = IDLE_TIMEOUT) -> Any:
        """The next h11 event; a peer silent for `timeout` seconds counts as gone (ConnectionClosed)."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if continue_ok and self.h11.they_are_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[]))
                await self.writer.drain()
            try:
                data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
            except TimeoutError:
                return h11.ConnectionClosed()
            except (ConnectionError, OSError, ssl.SSLError):
                data = b""
            self.h11.receive_data(data)

    def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)

    async def serve(self) -> None:
        while True:
            try:
                event = await self.next_event()
            except h11.RemoteProtocolError as exc:
                await self._reject(exc)
                return
            if not isinstance(event, h11.Request):
                return
            self.busy = True
            try:
                keep = await self._exchange(event)
            except (ClientGone, ConnectionError, BrokenPipeError):
                return
            except h11.RemoteProtocolError as exc:
                await self._reject(exc)
                return
            finally:
                self.busy = False
            if not keep or self.server.closing:
                return
            if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                self.h11.start_next_cycle()
            else:
                return

    async def _reject(self, exc: h11.RemoteProtocolError) -> None:
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"bad request: {exc}\n".encode()
            with contextlib.suppress(Exception):
                self._send(h11.Response(status_code=exc.error_status_hint, reason=_reason(exc.error_status_hint),
                                        headers=[(b"Content-Type", b"text/plain"),
                                                 (b"Content-Length", str(len(body)).encode()),
                                                 (b"Connection", b"close")]))
                self._send(h11.Data(data=body))
                self._send(h11.EndOfMessage())
                await self.writer.drain()

    async def _exchange(self, event: h11.Request) -> bool:
        started = time.monotonic()
        req = Request(self, event)
        response = await self.server.handler(req)
        keep = not response.close_connection
        try:
            if keep and not await req.drain(DRAIN_LIMIT):
                keep = False
            await self._write(req, response, keep)
        finally:
            if response.file is not None:
                response.file.close()
        access_log.info('%s %s "%s %s" %d %d %.3fs', req.peer, req.user or "-", req.method, req.target[:300],
                        response.status, response.length if response.file else len(response.body),
                        time.monotonic() - started)
        return keep

    async def _write(self, req: Request, response: Response, keep: bool) -> None:
        headers = list(self.server.common_headers)
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        length = response.length if response.file is not None else len(response.body)
        if response.status not in (204, 304) and not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"Content-Length", str(length).encode()))
        if not keep:
            headers.append((b"Connection", b"close"))
        self._send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if req.method != "HEAD" and response.status not in (204, 304):
            if response.file is not None and length:
                span = _FileSpan(response.file, response.offset, length)
                for piece in self.h11.send_with_data_passthrough(h11.Data(data=span)) or []:
                    if piece is span:
                        await self.writer.drain()
                        await asyncio.get_running_loop().sendfile(self.writer.transport, response.file,
                                                                  response.offset, length)
                    else:
                        self.writer.write(piece)
            elif response.body:
                self._send(h11.Data(data=response.body))
        self._send(h11.EndOfMessage())
        await self.writer.drain()
