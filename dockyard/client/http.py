"""A minimal HTTP/1.1 client over a unix stream socket.

Just what the Engine API needs: keep-alive, request bodies with
Content-Length or chunked (streamed from a file), responses with
Content-Length, chunked or close-delimited bodies, read whole or piece by
piece as they arrive, and connection takeover after `101 UPGRADED`.
It uses `_socket` directly: the `socket` module builds enums at import time
and would cost the CLI more than everything else it does.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

USER_AGENT = "Dockyard-Client/0.1.0 (linux)"
_READ_SIZE = 256 << 10
_UPLOAD_CHUNK = 1 << 20


class ProtocolError(Exception):
    """The server sent something that is not HTTP/1.1 as we know it."""


class UnixHttpConnection:
    def __init__(self, path: str, timeout: float | None = None):
        self.path = path
        self.timeout = timeout
        self.sock: _socket.socket | None = None
        self._buf = bytearray()
        self._reusable = False
        self._eof = False
        # True from a request until its response is read to the end (or the
        # connection is taken over): a client with several connections picks
        # an idle one for its next request.
        self.busy = False

    # --- connection ------------------------------------------------------------

    def connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._buf.clear()
        self._eof = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._reusable = False
        self.busy = False

    def detach(self) -> tuple[_socket.socket, bytes]:
        """Take over the raw socket (after 101 UPGRADED) with any bytes already read."""
        if self.sock is None:
            raise ProtocolError("no connection to take over")
        sock, rest = self.sock, bytes(self._buf)
        self.sock = None
        self._buf.clear()
        self._reusable = False
        self.busy = False
        return sock, rest

    # --- requests ----------------------------------------------------------------

    def request(self, method: str, target: str, body: bytes | BinaryIO | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send a request and read the response head; the body is read from the Response."""
        reused = self.sock is not None and self._reusable
        if self.sock is None or not self._reusable:
            self.close()
            self.connect()
        self._reusable = False
        self.busy = True
        lines = [f"{method} {target} HTTP/1.1", "Host: dockyard", "User-Agent: " + USER_AGENT]
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        streaming = body is not None and not isinstance(body, (bytes, bytearray))
        if streaming:
            lines.append("Transfer-Encoding: chunked")
        elif body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if streaming:
                self._send_chunked(head, body)  # type: ignore[arg-type]
            else:
                self.sock.sendall(head + (body or b""))  # type: ignore[union-attr]
            return self._read_head(method)
        except (BrokenPipeError, ConnectionResetError, _EmptyResponse):
            # A kept-alive connection the server closed meanwhile: retry once on a new one.
            if not reused or streaming:
                raise
            self.close()
            return self.request(method, target, body, headers)

    def _send_chunked(self, head: bytes, body: BinaryIO) -> None:
        sock = self.sock
        sock.sendall(head)  # type: ignore[union-attr]
        while True:
            data = body.read(_UPLOAD_CHUNK)
            if not data:
                break
            sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")  # type: ignore[union-attr]
        sock.sendall(b"0\r\n\r\n")  # type: ignore[union-attr]

    # --- reading -------------------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self.sock.recv(_READ_SIZE)  # type: ignore[union-attr]
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 2]
                return line
            if not self._fill():
                raise ProtocolError("connection closed in the middle of a response")

    def _read_head(self, method: str) -> Response:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self._fill():
                if not self._buf:
                    raise _EmptyResponse()
                raise ProtocolError("connection closed in the middle of a response head")
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 4]
        status_line, _, rest = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in rest.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status = int(parts[1])
        return Response(self, status, parts[2] if len(parts) > 2 else "", headers, method)


class _EmptyResponse(ConnectionResetError):
    pass


class Response:
    """A response whose head has been read; read the body with read()/iter_raw()/iter_lines()."""

    def __init__(self, conn: UnixHttpConnection, status: int, reason: str, headers: dict[str, str],
                 method: str):
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
            self._mode, self._left = "none", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode, self._left = "chunked", 0
        elif "content-length" in headers:
            self._mode, self._left = "length", int(headers["content-length"])
        else:
            self._mode, self._left = "close", 0
        self._done = self._mode == "none" or (self._mode == "length" and self._left == 0)
        if self._done:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        conn = self.conn
        if self.status == 101:
            return
        conn.busy = False
        keep = self._mode != "close" and self.headers.get("connection", "").lower() != "close"
        conn._reusable = keep and not conn._eof
        if not conn._reusable:
            conn.close()

    def _take(self, truncated: str) -> bytes:
        """Up to the rest of the current body part (or chunk) from what has arrived."""
        conn = self.conn
        if not conn._buf and not conn._fill():
            raise ProtocolError(truncated)
        piece = bytes(conn._buf[:self._left])
        del conn._buf[:len(piece)]
        self._left -= len(piece)
        return piece

    def iter_raw(self) -> Iterator[bytes]:
        """The body in pieces, as they arrive."""
        conn = self.conn
        while not self._done:
            if self._mode == "length":
                piece = self._take("connection closed before the whole body arrived")
                if self._left == 0:
                    self._finish()
                yield piece
            elif self._mode == "chunked":
                if self._left == 0:
                    size_line = conn._read_line()
                    try:
                        self._left = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise ProtocolError(f"bad chunk size line {size_line[:40]!r}") from None
                    if self._left == 0:
                        while conn._read_line():  # trailers, up to the empty line
                            pass
                        self._finish()
                        return
                piece = self._take("connection closed inside a chunk")
                if self._left == 0:
                    conn._read_line()  # the CRLF after the chunk data
                yield piece
            else:  # close-delimited
                if conn._buf:
                    piece = bytes(conn._buf)
                    conn._buf.clear()
                    yield piece
                elif not conn._fill():
                    self._finish()
                    return

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def iter_lines(self) -> Iterator[bytes]:
        """Newline-delimited pieces of the body (CRLF or LF), without the line ends."""
        pending = b""
        for piece in self.iter_raw():
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line:
                    yield line
        if pending.strip():
            yield pending.rstrip(b"\r")

    def close(self) -> None:
        if not self._done:
            self.conn.close()
            self._done = True
