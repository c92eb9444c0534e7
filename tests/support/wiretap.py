"""A recording proxy on a unix socket: what a client sends to the engine, request by request.

    with Wiretap(upstream_socket, tmp_dir) as tap:
        run the client with its host at tap.host
        tap.requests()   # [Request(conn=0, method="POST", path="/containers/create", ...), ...]

Each client connection gets its own upstream connection and a number, so
tests can see which requests share a connection (`docker run` uses three).
Requests are parsed from the client's bytes until an `Upgrade` request
(attach, exec start): after that the connection is a raw pipe. The bytes the
client sends after the upgrade are kept as `Request.after_upgrade`, and a
half-close (shutdown of the client's write side) is recorded as
`Request.half_closed`, which is how the stdin contract of a hijacked stream
is checked.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    conn: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    after_upgrade: bytearray = field(default_factory=bytearray)
    half_closed: bool = False

    @property
    def path(self) -> str:
        """The path without the /vX.Y prefix."""
        path = urlsplit(self.target).path
        parts = path.split("/", 2)
        if len(parts) > 2 and parts[1].startswith("v") and parts[1][1:2].isdigit():
            return "/" + parts[2]
        return path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def json(self):
        return json.loads(self.body) if self.body else None

    def __str__(self) -> str:
        query = urlsplit(self.target).query
        return f"C{self.conn} {self.method} {self.path}" + (f"?{query}" if query else "")


class Wiretap:
    def __init__(self, upstream: str, directory: str | Path):
        self.upstream = upstream.removeprefix("unix://")
        self.socket_path = str(Path(directory) / "tap.sock")
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._conns = 0
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> Wiretap:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.socket_path)
        self._server.listen(64)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            for sock in self._open:
                try:
                    sock.close()
                except OSError:
                    pass
            self._open.clear()
        for thread in self._threads:
            thread.join(5)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def requests(self, skip_ping: bool = True) -> list[Request]:
        with self._lock:
            found = list(self._requests)
        return [r for r in found if not (skip_ping and r.path == "/_ping")]

    # --- plumbing -------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()  # type: ignore[union-attr]
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            with self._lock:
                number = self._conns
                self._conns += 1
                self._open += [client, upstream]
            for target in (self._client_to_server, self._server_to_client):
                thread = threading.Thread(target=target, args=(number, client, upstream), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _server_to_client(self, number: int, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _client_to_server(self, number: int, client: socket.socket, upstream: socket.socket) -> None:
        buf = bytearray()
        upgraded: Request | None = None
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                # Record before forwarding: once forwarded, the engine may answer and the client
                # send its next request on another connection before this one is logged.
                if upgraded is not None:
                    upgraded.after_upgrade += data
                else:
                    buf += data
                    while upgraded is None:
                        request, used = _parse_request(number, buf)
                        if request is None:
                            break
                        del buf[:used]
                        with self._lock:
                            self._requests.append(request)
                        if "upgrade" in request.headers:
                            upgraded = request
                            upgraded.after_upgrade += buf
                            buf.clear()
                upstream.sendall(data)
        except OSError:
            pass
        if upgraded is not None:
            upgraded.half_closed = True
        try:
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _parse_request(number: int, buf: bytearray) -> tuple[Request | None, int]:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, 0
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    pos = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None, 0
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            if len(buf) < line_end + 2 + size + 2:
                return None, 0
            body += buf[line_end + 2:line_end + 2 + size]
            pos = line_end + 2 + size + 2
            if size == 0:
                break
        return Request(number, method, target, headers, bytes(body)), pos
    length = int(headers.get("content-length", "0") or 0)
    if len(buf) < pos + length:
        return None, 0
    return Request(number, method, target, headers, bytes(buf[pos:pos + length])), pos + length
