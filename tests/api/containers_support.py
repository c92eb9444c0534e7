"""Raw Engine API helpers for the container tests: plain HTTP over the unix socket, hijacks, stdcopy.

Raw on purpose: these tests check the wire (status codes, header timing,
framing) as the docker CLI sees it, so no client library sits in between.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse

from dockyard.api.streams import StdcopyDecoder


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Api:
    """`api.post("/containers/create", {...}, name="x")` -> (status, decoded body)."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    def request(self, method: str, endpoint: str, body=None, raw: bytes | None = None, timeout: float = 60,
                **params) -> tuple[int, object, dict]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        url = "/v1.41" + endpoint + ("?" + query if query else "")
        conn = UnixHTTPConnection(self.socket_path, timeout)
        try:
            headers = {}
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, url, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type") or ""
            decoded: object = payload
            if "json" in ctype and payload.strip() and method != "HEAD":
                try:
                    decoded = json.loads(payload)
                except ValueError:
                    decoded = payload  # a stream of several documents (events, stats)
            return resp.status, decoded, dict(resp.getheaders())
        finally:
            conn.close()

    def get(self, endpoint: str, **params):
        return self.request("GET", endpoint, **params)[:2]

    def post(self, endpoint: str, body=None, **params):
        return self.request("POST", endpoint, body=body, **params)[:2]

    def delete(self, endpoint: str, **params):
        return self.request("DELETE", endpoint, **params)[:2]

    # --- conveniences -----------------------------------------------------------------------
    def create(self, cmd: list[str] | None = None, image: str = "busybox", name: str | None = None,
               **config) -> str:
        host_config = config.pop("HostConfig", {})
        body = {"Image": image, "Cmd": cmd, "HostConfig": host_config, **config}
        status, answer = self.post("/containers/create", body, name=name)
        assert status == 201, answer
        return answer["Id"]

    def start(self, cid: str) -> None:
        status, answer = self.post(f"/containers/{cid}/start")
        assert status == 204, answer

    def wait(self, cid: str, condition: str | None = None, timeout: float = 60) -> int:
        status, answer, _ = self.request("POST", f"/containers/{cid}/wait", timeout=timeout, condition=condition)
        assert status == 200, answer
        return answer["StatusCode"]

    def inspect(self, cid: str) -> dict:
        status, answer = self.get(f"/containers/{cid}/json")
        assert status == 200, answer
        return answer

    def logs(self, cid: str, **params) -> list[tuple[int, bytes]]:
        params.setdefault("stdout", 1)
        params.setdefault("stderr", 1)
        status, body, _ = self.request("GET", f"/containers/{cid}/logs", **params)
        assert status == 200, body
        return StdcopyDecoder().feed(body)

    def remove(self, cid: str, force: bool = True) -> None:
        self.delete(f"/containers/{cid}", force=1 if force else 0)

    def run(self, cmd: list[str], **config) -> tuple[int, bytes, bytes]:
        """create, start, wait, logs, remove: (exit code, stdout, stderr)."""
        cid = self.create(cmd, **config)
        try:
            self.start(cid)
            code = self.wait(cid)
            frames = self.logs(cid)
        finally:
            self.remove(cid)
        out = b"".join(p for s, p in frames if s == 1)
        err = b"".join(p for s, p in frames if s == 2)
        return code, out, err


class Hijacked:
    """A connection after `101 UPGRADED`: raw bytes both ways."""

    def __init__(self, sock: socket.socket, leftover: bytes, head: bytes):
        self.sock = sock
        self.buffer = leftover
        self.head = head

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def read_all(self, timeout: float = 30) -> bytes:
        self.sock.settimeout(timeout)
        data = self.buffer
        self.buffer = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def read_until(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        data = self.buffer
        while needle not in data:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.buffer = b""
        return data

    def close(self) -> None:
        self.sock.close()


def hijack(socket_path: str, path: str, body: bytes = b"", content_type: str = "text/plain",
           **params) -> Hijacked:
    query = urllib.parse.urlencode(params)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(socket_path)
    request = (f"POST /v1.41{path}{'?' + query if query else ''} HTTP/1.1\r\nHost: api.moby.localhost\r\n"
               f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: {content_type}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before the response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"expected 101 UPGRADED, got {head!r} {rest!r}")
    return Hijacked(sock, rest, head)


def demux(data: bytes) -> tuple[bytes, bytes]:
    frames = StdcopyDecoder().feed(data)
    return b"".join(p for s, p in frames if s == 1), b"".join(p for s, p in frames if s == 2)


def eventually(check, timeout: float = 10, interval: float = 0.05):
    """Call `check` until it returns something truthy (returned) or raise its last AssertionError."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as err:
            last = err
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")
