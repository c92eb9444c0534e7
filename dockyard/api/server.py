"""The HTTP/1.1 server: a unix-socket listener and one h11 loop per connection.

Connections are served concurrently (one asyncio task each) and kept alive
across requests; a handler that blocks (events, wait, logs -f) holds up only
its own connection. Blocking service work runs in the default executor (see
`http.run_blocking`), never on the event loop.

Per request:

    read head -> route -> handler(req) -> drain unread body -> write answer
                                                               |
        Response: Content-Length body        Stream: chunked, flushed per item,
        Hijack: 101 + raw pipe to the        stopped when the client hangs up
                handler's session

Shutdown (`close`) stops accepting, cuts streams and hijacked connections at
once, lets requests in progress finish for a grace period, then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from http import HTTPStatus
from typing import Any

import h11

from dockyard.api.errors import message_for, status_for
from dockyard.api.http import Request, Response, error_response, unquote_path
from dockyard.api.routing import Router
from dockyard.api.streams import Hijack, HijackedStream, Stream
from dockyard.api.versions import COMMON_HEADERS, check_version, split_version
from dockyard.errors import Conflict, InvalidArgument

log = logging.getLogger("dockyard.api")

READ_SIZE = 256 << 10
_NO_BODY_STATUSES = frozenset({204, 304})


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def claim_socket_path(path: str) -> None:
    """Make `path` free for a new listener, or explain why it cannot be.

    A socket left behind by a crashed daemon refuses connections and is
    removed; one that still accepts them belongs to a live daemon, which we
    must not steal from. Anything that is not a socket is left alone.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise Conflict(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        os.unlink(path)
        return
    finally:
        probe.close()
    raise Conflict(f"another daemon is already listening on unix://{path}")


def bind_unix_socket(path: str, mode: int = 0o660, group: str = "dockyard") -> socket.socket:
    """A listening socket at `path`, never reachable by others even for a moment.

    The umask is tightened around bind() so the socket is born with at most
    `mode`; it is then given to `group` when that group exists (root:root
    otherwise).
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    claim_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    if os.geteuid() == 0:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            gid = 0
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ApiServer:
    def __init__(self, router: Router, services: Any, *, grace: float = 10.0):
        self.router = router
        self.services = services
        self.grace = grace
        self._servers: list[asyncio.base_events.Server] = []
        self._connections: set[_Connection] = set()
        self._socket_paths: list[str] = []
        self._closing = False

    async def listen_unix(self, path: str, mode: int = 0o660, group: str = "dockyard") -> None:
        await self.serve_socket(bind_unix_socket(path, mode, group), path)

    async def serve_socket(self, sock: socket.socket, path: str) -> None:
        """Accept connections on a socket bound beforehand (see bind_unix_socket); `path` is removed on close."""
        self._socket_paths.append(path)
        server = await asyncio.start_unix_server(self._accept, sock=sock, limit=READ_SIZE)
        self._servers.append(server)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        conn = _Connection(self, reader, writer)
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        try:
            await conn.serve()
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(conn)
            with contextlib.suppress(Exception):
                writer.close()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        """Stop accepting, cut streams, let requests in progress finish, remove the sockets."""
        self._closing = True
        for server in self._servers:
            server.close()
        for path in self._socket_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for conn in list(self._connections):
            if not conn.busy:
                conn.cancel()
        deadline = asyncio.get_running_loop().time() + self.grace
        while any(c.busy for c in self._connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            conn.cancel()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)


class _ClientGone(Exception):
    """The peer closed the connection while we were reading its request."""


class _Connection:
    """One client connection; implements `http.BodySource` for its current request."""

    def __init__(self, server: ApiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=256 << 10)
        self.task: asyncio.Task[Any] | None = None
        # True while a request is being handled and answered with a fixed body:
        # shutdown lets those finish; idle, streaming and hijacked ones are cut.
        self.busy = False

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # --- reading -------------------------------------------------------------

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.they_are_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=list(COMMON_HEADERS)))
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            self.h11.receive_data(data)

    async def receive_body(self) -> bytes:
        event = await self._next_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return b""
        raise _ClientGone("the client closed the connection before sending the whole request body")

    # --- writing -------------------------------------------------------------

    def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)

    async def _flush(self) -> None:
        await self.writer.drain()

    # --- the request loop ------------------------------------------------------

    async def serve(self) -> None:
        while True:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as exc:
                await self._reject_malformed(exc)
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed, or garbage after a finished exchange
            self.busy = True
            try:
                keep_alive = await self._handle(event)
            except (_ClientGone, ConnectionError, BrokenPipeError):
                return
            except h11.RemoteProtocolError as exc:
                await self._reject_malformed(exc)
                return
            finally:
                self.busy = False
            if not keep_alive or self.server._closing:
                return
            if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                self.h11.start_next_cycle()
            else:
                return

    async def _reject_malformed(self, exc: h11.RemoteProtocolError) -> None:
        if self.h11.our_state is h11.SEND_RESPONSE:
            with contextlib.suppress(Exception):
                await self._write_response("GET", error_response(exc.error_status_hint, f"bad request: {exc}"))

    async def _handle(self, event: h11.Request) -> bool:
        method = event.method.decode("ascii")
        target = event.target.decode("latin-1")
        raw_path, _, query = target.partition("?")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
        version, path = split_version(unquote_path(raw_path))
        req = Request(method, path, version, query, headers, self, self.server.services)
        try:
            check_version(version)
            handler, req.params = self.server.router.match(method, path)
            response = await handler(req)
        except (_ClientGone, asyncio.CancelledError):
            raise
        except Exception as exc:  # every failure becomes Docker's {"message": ...}
            response = self._error(method, target, exc)
        try:
            await req.drain()
        except InvalidArgument:
            pass
        log.debug("%s %s -> %s", method, target, getattr(response, "status", "hijack"))
        if isinstance(response, Stream):
            return await self._write_stream(response)
        if isinstance(response, Hijack):
            await self._hijack(req, response)
            return False
        await self._write_response(method, response)
        return True

    def _error(self, method: str, target: str, exc: BaseException) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed", method, target, exc_info=exc)
        return error_response(status, message_for(exc))

    def _headers(self, content_type: bytes | None, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = list(COMMON_HEADERS)
        if content_type:
            headers.append((b"Content-Type", content_type))
        headers.extend(extra)
        return headers

    async def _write_response(self, method: str, response: Response) -> None:
        headers = self._headers(response.content_type, response.headers)
        if response.status not in _NO_BODY_STATUSES:
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        self._send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if response.body and method != "HEAD" and response.status not in _NO_BODY_STATUSES:
            self._send(h11.Data(data=response.body))
        self._send(h11.EndOfMessage())
        await self._flush()

    async def _write_stream(self, stream: Stream) -> bool:
        self._send(h11.Response(status_code=stream.status, reason=_reason(stream.status),
                                headers=self._headers(stream.content_type, stream.headers)))
        await self._flush()
        self.busy = False  # streams may last forever; shutdown cuts them
        body = stream.body
        # The request is fully read, so anything arriving now is either the
        # next request (kept for h11) or EOF: the client went away.
        watcher = asyncio.ensure_future(self.reader.read(READ_SIZE))
        pending_item: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending_item is None:
                    pending_item = asyncio.ensure_future(body.__anext__())
                done, _ = await asyncio.wait({pending_item, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if watcher in done:
                    data = b"" if watcher.exception() else watcher.result()
                    if not data:
                        return False
                    self.h11.receive_data(data)
                    watcher = asyncio.ensure_future(self.reader.read(READ_SIZE))
                if pending_item in done:
                    try:
                        chunk = pending_item.result()
                    except StopAsyncIteration:
                        break
                    except Exception as exc:
                        # Too late for an HTTP status: end the body abruptly so
                        # the client sees a truncated stream, not a clean end.
                        log.error("stream failed", exc_info=exc)
                        return False
                    finally:
                        pending_item = None
                    if chunk:
                        self._send(h11.Data(data=chunk))
                        await self._flush()
            self._send(h11.EndOfMessage())
            await self._flush()
            return True
        finally:
            # Wait for cancelled helpers to finish (asyncio.wait never raises):
            # a watcher still pending would collide with the next request's read.
            if pending_item is not None and not pending_item.done():
                pending_item.cancel()
                await asyncio.wait({pending_item})
            elif pending_item is not None and not pending_item.cancelled():
                pending_item.exception()  # the body ended as the client left: nothing to report
            if not watcher.done():
                watcher.cancel()
                await asyncio.wait({watcher})
            if not watcher.cancelled() and watcher.exception() is None and watcher.result():
                self.h11.receive_data(watcher.result())
            with contextlib.suppress(Exception):
                await body.aclose()  # type: ignore[attr-defined]

    async def _hijack(self, req: Request, hijack: Hijack) -> None:
        if req.wants_upgrade and self.h11.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            headers = [
                (b"Content-Type", hijack.content_type),
                (b"Connection", b"Upgrade"),
                (b"Upgrade", b"tcp"),
                *COMMON_HEADERS,
            ]
            self._send(h11.InformationalResponse(status_code=101, headers=headers, reason=b"UPGRADED"))
        else:
            # A client that did not ask to upgrade gets dockerd's fallback:
            # 200 and then the raw stream, delimited by closing the connection.
            head = [b"HTTP/1.1 200 OK", b"Content-Type: " + hijack.content_type, b"Connection: close"]
            head += [name + b": " + value for name, value in COMMON_HEADERS]
            self.writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        await self._flush()
        self.busy = False
        prefix, _closed = self.h11.trailing_data
        stream = HijackedStream(self.reader, self.writer, bytes(prefix))
        try:
            await hijack.session(stream)
        finally:
            await stream.close()
