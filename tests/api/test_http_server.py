"""The API server's HTTP machinery, driven with test routes over a real unix socket.

Keep-alive, concurrency, request bodies (Content-Length, chunked, 100-continue,
unread bodies drained), streams flushed per message and stopped when the
client leaves, hijack (101, stdin before the answer, half-close, stdcopy),
errors, shutdown, and stale/live sockets. No root needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import threading
import time

import pytest

from dockyard.api.http import Request, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.api.server import bind_unix_socket
from dockyard.api.streams import Hijack, HijackedStream, StdcopyDecoder, StdcopyWriter, Stream, json_line
from dockyard.client.http import ProtocolError, UnixHttpConnection
from dockyard.errors import Conflict, NotFound
from tests.support.apiserver import ServerThread


class Gates:
    """Hooks the test routes use to talk to the test (set from the test thread)."""

    def __init__(self) -> None:
        self.release: asyncio.Event | None = None
        self.stream_closed = threading.Event()
        self.session_done = threading.Event()


routes = RouteTable()


@routes.get(r"/echo/(?P<word>[^/]+)")
async def echo(req: Request):
    return json_response({"word": req.params["word"], "query": req.query, "version": req.api_version,
                          "flag": req.flag("f"), "filters": req.filters()})


@routes.post(r"/upload")
async def upload(req: Request):
    body = await req.body()
    return json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


@routes.post(r"/upload-in-thread")
async def upload_in_thread(req: Request):
    reader = req.body_file()

    def digest() -> tuple[int, str]:
        h = hashlib.sha256()
        size = 0
        while True:
            piece = reader.read(4096)
            if not piece:
                return size, h.hexdigest()
            size += len(piece)
            h.update(piece)

    size, sha = await run_blocking(digest)
    return json_response({"size": size, "sha256": sha})


@routes.post(r"/refuse")
async def refuse(req: Request):
    raise NotFound("No such thing: refuse")


@routes.get(r"/conflict")
async def conflict(req: Request):
    raise Conflict("busy")


@routes.get(r"/crash")
async def crash(req: Request):
    raise RuntimeError("boom")


@routes.get(r"/slow")
async def slow(req: Request):
    await run_blocking(time.sleep, 1.0)
    return json_response({"slept": True})


@routes.get(r"/stream")
async def stream(req: Request):
    gates: Gates = req.services
    gates.release = asyncio.Event()

    async def body():
        try:
            yield json_line({"n": 1})
            await gates.release.wait()
            yield json_line({"n": 2})
            if req.flag("forever"):
                await asyncio.Event().wait()
        finally:
            gates.stream_closed.set()

    return Stream(body())


@routes.post(r"/hijack")
async def hijack(req: Request):
    gates: Gates = req.services

    async def session(stream: HijackedStream) -> None:
        out = StdcopyWriter(stream)
        await out.write(1, b"hello\n")
        stdin = bytearray()
        while True:
            data = await stream.read()
            if not data:
                break
            stdin += data
        await out.write(1, bytes(stdin))
        await out.write(2, b"bye\n")
        gates.session_done.set()

    return Hijack(session)


@pytest.fixture
def gates():
    return Gates()


@pytest.fixture
def server(tmp_path, gates):
    with ServerThread(str(tmp_path / "api.sock"), [routes], gates) as srv:
        yield srv


def raw_connect(srv: ServerThread) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(srv.socket_path)
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before the response head: {data!r}"
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_all(sock: socket.socket, initial: bytes = b"") -> bytes:
    data = bytearray(initial)
    while True:
        piece = sock.recv(65536)
        if not piece:
            return bytes(data)
        data += piece


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = UnixHttpConnection(server.socket_path)
    first = conn.request("GET", "/v1.41/echo/one?f=1")
    assert json.loads(first.read())["word"] == "one"
    sock = conn.sock
    second = conn.request("GET", "/echo/two?f=False")
    body = json.loads(second.read())
    assert conn.sock is sock, "the second request should reuse the kept-alive connection"
    assert body == {"word": "two", "query": {"f": ["False"]}, "version": None, "flag": False, "filters": {}}
    conn.close()


def test_common_headers_and_version_prefix(server):
    conn = UnixHttpConnection(server.socket_path)
    response = conn.request("GET", "/v1.30/echo/x?filters=" + "%7B%22label%22%3A%5B%22a%3D1%22%5D%7D")
    assert response.status == 200
    assert response.headers["api-version"] == "1.41"
    assert response.headers["ostype"] == "linux"
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.read())
    assert body["version"] == "1.30"
    assert body["filters"] == {"label": ["a=1"]}
    too_new = conn.request("GET", "/v1.99/echo/x")
    assert too_new.status == 400
    assert "too new" in json.loads(too_new.read())["message"]
    too_old = conn.request("GET", "/v1.11/echo/x")
    assert too_old.status == 400
    assert "too old" in json.loads(too_old.read())["message"]


def test_errors_are_json_messages_with_statuses(server):
    conn = UnixHttpConnection(server.socket_path)
    cases = [("GET", "/nowhere", 404, "page not found"), ("DELETE", "/echo/x", 404, "page not found"),
             ("GET", "/conflict", 409, "busy"), ("GET", "/crash", 500, "boom"),
             ("GET", "/echo/x?filters=%7Bnot-json", 400, None)]
    for method, path, status, message in cases:
        response = conn.request(method, path)
        assert response.status == status, path
        assert response.headers["content-type"] == "application/json"
        body = json.loads(response.read())
        if message is not None:
            assert body["message"] == message


def test_request_bodies_content_length_and_chunked(server):
    payload = os.urandom(3 << 20)
    expected = hashlib.sha256(payload).hexdigest()
    conn = UnixHttpConnection(server.socket_path)
    fixed = json.loads(conn.request("POST", "/upload", payload).read())
    assert fixed == {"size": len(payload), "sha256": expected}
    chunked = json.loads(conn.request("POST", "/upload", io.BytesIO(payload)).read())
    assert chunked == {"size": len(payload), "sha256": expected}
    threaded = json.loads(conn.request("POST", "/upload-in-thread", io.BytesIO(payload)).read())
    assert threaded == {"size": len(payload), "sha256": expected}


def test_unread_body_is_drained_before_the_answer(server):
    """The CLI streams tarballs chunked; answering before reading them all breaks it."""
    sock = raw_connect(server)
    sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(b"5\r\nhello\r\n")
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(1)  # no answer while the body is still coming
    sock.settimeout(10)
    sock.sendall(b"6;ext=1\r\n world\r\n0\r\n\r\n")
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 404 ")
    assert b"No such thing: refuse" in rest or b"No such thing" in sock.recv(65536)
    # The connection is still usable afterwards.
    sock.sendall(b"GET /echo/again HTTP/1.1\r\nHost: x\r\n\r\n")
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_expect_100_continue(server):
    sock = raw_connect(server)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 100 ")
    assert rest == b"", "the final answer must wait for the body"
    sock.sendall(b"abc")
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_stream_is_flushed_per_message_and_ends(server, gates):
    conn = UnixHttpConnection(server.socket_path)
    response = conn.request("GET", "/stream")
    assert response.status == 200
    assert response.headers["transfer-encoding"] == "chunked"
    lines = response.iter_lines()
    assert json.loads(next(lines)) == {"n": 1}  # arrives while the handler is still waiting
    server.loop.call_soon_threadsafe(gates.release.set)
    assert json.loads(next(lines)) == {"n": 2}
    assert list(lines) == []
    assert gates.stream_closed.wait(5)
    # After a finished stream the connection is kept alive (the same socket, not a retry).
    sock = conn.sock
    assert json.loads(conn.request("GET", "/echo/after").read())["word"] == "after"
    assert conn.sock is sock


def test_stream_stops_when_the_client_goes(server, gates):
    sock = raw_connect(server)
    sock.sendall(b"GET /stream?forever=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, rest = read_head(sock)
    assert b"200" in head.split(b"\r\n")[0]
    sock.close()
    assert gates.stream_closed.wait(5), "the stream generator was not closed after the client left"


def test_a_blocked_request_does_not_hold_up_others(server, gates):
    blocked = UnixHttpConnection(server.socket_path)
    stream_response = blocked.request("GET", "/stream?forever=1")
    next(stream_response.iter_lines())
    slow = UnixHttpConnection(server.socket_path)
    results = {}

    def call_slow():
        results["slow"] = json.loads(slow.request("GET", "/slow").read())

    t = threading.Thread(target=call_slow)
    t.start()
    time.sleep(0.1)
    started = time.monotonic()
    fast = UnixHttpConnection(server.socket_path)
    assert json.loads(fast.request("GET", "/echo/fast").read())["word"] == "fast"
    assert time.monotonic() - started < 0.5, "a fast request waited behind a slow or blocked one"
    t.join(5)
    assert results["slow"] == {"slept": True}
    blocked.close()


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    decoder = StdcopyDecoder()
    frames = decoder.feed(data)
    assert decoder.pending == 0
    return frames


def test_hijack_upgrade_with_stdin_before_the_answer_and_half_close(server, gates):
    sock = raw_connect(server)
    # Like `docker run -i`: stdin bytes may follow the request before the 101 arrives.
    sock.sendall(b"POST /v1.41/hijack?stdin=1&stdout=1 HTTP/1.1\r\nHost: api.moby.localhost\r\n"
                 b"Content-Length: 0\r\nConnection: Upgrade\r\nContent-Type: text/plain\r\nUpgrade: tcp\r\n\r\n"
                 b"early ")
    head, rest = read_head(sock)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 UPGRADED"
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines[1:])}
    assert headers[b"content-type"] == b"application/vnd.docker.raw-stream"
    assert headers[b"upgrade"] == b"tcp"
    sock.sendall(b"stdin")
    sock.shutdown(socket.SHUT_WR)  # the CLI's half-close at stdin EOF
    data = read_all(sock, rest)  # the server closes when the session ends
    assert _frames(data) == [(1, b"hello\n"), (1, b"early stdin"), (2, b"bye\n")]
    assert gates.session_done.wait(5)


def test_hijack_with_a_json_body_like_exec_start(server):
    conn = UnixHttpConnection(server.socket_path)
    body = b'{"Detach":false,"Tty":false}'
    response = conn.request("POST", "/hijack", body,
                            {"Connection": "Upgrade", "Upgrade": "tcp", "Content-Type": "application/json"})
    assert response.status == 101
    sock, rest = conn.detach()
    sock.shutdown(socket.SHUT_WR)
    data = bytearray(rest)
    while True:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    sock.close()
    # No stdin: the empty echo produces no frame (docker never sends zero-length frames).
    assert _frames(bytes(data)) == [(1, b"hello\n"), (2, b"bye\n")]


def test_hijack_without_upgrade_falls_back_to_a_raw_200(server):
    sock = raw_connect(server)
    sock.sendall(b"POST /hijack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    head, rest = read_head(sock)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert b"application/vnd.docker.raw-stream" in head
    sock.shutdown(socket.SHUT_WR)
    assert _frames(read_all(sock, rest))[0] == (1, b"hello\n")


def test_shutdown_cuts_streams_and_removes_the_socket(tmp_path, gates):
    srv = ServerThread(str(tmp_path / "api.sock"), [routes], gates).start()
    conn = UnixHttpConnection(srv.socket_path)
    response = conn.request("GET", "/stream?forever=1")
    next(response.iter_lines())
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 3, "a stream held up the shutdown"
    assert gates.stream_closed.wait(2)
    assert not os.path.exists(srv.socket_path)
    with pytest.raises(ProtocolError, match="connection closed"):
        list(response.iter_lines())  # cut mid-stream: no terminating chunk


def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path, gates):
    path = str(tmp_path / "api.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: what a crash leaves
    with ServerThread(path, [routes], gates):
        assert json.loads(UnixHttpConnection(path).request("GET", "/echo/x").read())["word"] == "x"
        with pytest.raises(Conflict, match="another daemon"):
            bind_unix_socket(path)
        assert json.loads(UnixHttpConnection(path).request("GET", "/echo/y").read())["word"] == "y"


def test_socket_mode_is_0660(tmp_path):
    path = str(tmp_path / "mode.sock")
    sock = bind_unix_socket(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o660
    finally:
        sock.close()
        os.unlink(path)


def test_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    with pytest.raises(Conflict, match="not a socket"):
        bind_unix_socket(str(path))
    assert path.read_text() == "precious"
