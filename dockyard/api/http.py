"""Requests as handlers see them, and the fixed-body responses they return.

A `Request` owns the not-yet-read request body: a handler may read it whole
(`await req.body()`), as chunks (`req.chunks()`), or hand a blocking file
object to a service running in a worker thread (`req.body_file()`). Whatever
the handler leaves unread is drained by the server before the answer goes
out, because the docker CLI streams tarballs chunked and logs errors when a
server answers before it has read the whole upload.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from dockyard.errors import InvalidArgument

JSON_TYPE = b"application/json"

# Query-string booleans: the CLI sends 1/0/true, docker-py sends Python's
# spelling (`stream=False`), so `False` must not count as true.
_FALSE_WORDS = frozenset({"", "0", "false", "no", "none"})


class BodySource(Protocol):
    """The connection side of a request body (implemented by the server)."""

    async def receive_body(self) -> bytes:
        """The next piece of the body; b"" once it has all been read."""
        ...


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in _FALSE_WORDS


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's `filters` query parameter, in both shapes clients send.

    The CLI sends a map of sets (`{"label":{"a=1":true}}`), docker-py and
    compose a map of lists (`{"label":["a=1"]}`); a bare string value is
    accepted too. The result maps each key to its list of values.
    """
    if raw is None or raw.strip() == "":
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter: {raw!r} is not valid JSON ({exc})") from None
    if not isinstance(decoded, dict):
        raise InvalidArgument(f"invalid filter: {raw!r} is not a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in decoded.items():
        if isinstance(values, dict):
            filters[key] = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(v) for v in values]
        elif isinstance(values, str):
            filters[key] = [values]
        else:
            raise InvalidArgument(f"invalid filter: values of {key!r} must be a list or a set")
    return filters


class Request:
    """One HTTP request, routed: method, path without the version prefix, query, headers."""

    __slots__ = ("method", "path", "api_version", "query", "headers", "params", "services",
                 "_source", "_finished")

    def __init__(self, method: str, path: str, api_version: str | None, query: str,
                 headers: dict[str, str], source: BodySource, services: Any):
        self.method = method
        self.path = path
        self.api_version = api_version
        self.query: dict[str, list[str]] = parse_qs(query, keep_blank_values=True)
        self.headers = headers
        self.params: dict[str, str] = {}
        self.services = services
        self._source = source
        self._finished = False

    # --- query -------------------------------------------------------------

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, ()))

    def flag(self, name: str, default: bool = False) -> bool:
        return parse_bool(self.arg(name), default)

    def int_arg(self, name: str, default: int) -> int:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for {name}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        return parse_filters(self.arg("filters"))

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()

    # --- body --------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._finished:
            data = await self._source.receive_body()
            if not data:
                self._finished = True
                return
            yield data

    async def body(self, limit: int = 64 << 20) -> bytes:
        parts = bytearray()
        async for data in self.chunks():
            parts += data
            if len(parts) > limit:
                raise InvalidArgument(f"request body larger than {limit} bytes")
        return bytes(parts)

    async def json(self) -> Any:
        raw = await self.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"request body is not valid JSON: {exc}") from None

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass

    def body_file(self) -> io.BufferedReader:
        """The body as a blocking binary file, for a service running in a worker thread.

        Each read in the thread waits for the event loop to receive the next
        piece from the socket, so a large upload streams through with
        back-pressure instead of being held in memory.
        """
        return io.BufferedReader(_ThreadBodyReader(self, asyncio.get_running_loop()), 1 << 20)


class _ThreadBodyReader(io.RawIOBase):
    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop):
        self._request = request
        self._loop = loop
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        if self._request._finished:
            return b""
        data = await self._request._source.receive_body()
        if not data:
            self._request._finished = True
        return data

    def readinto(self, buffer) -> int:
        if not self._pending and not self._eof:
            self._pending = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if not self._pending:
                self._eof = True
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class Response:
    """A response with a fixed body (or none)."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int = 200, body: bytes = b"", content_type: bytes | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


def json_response(obj: Any, status: int = 200) -> Response:
    # dockerd encodes with Go's json.Encoder, which ends the document with "\n".
    body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    return Response(status, body, JSON_TYPE)


def empty_response(status: int = 204) -> Response:
    return Response(status)


def error_response(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


async def run_blocking(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking service call (SQLite, hashing, unpacking) in the worker pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def unquote_path(raw: str) -> str:
    return unquote(raw)
