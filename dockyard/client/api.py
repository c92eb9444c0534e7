"""EngineClient: one method per Engine API endpoint the CLI uses.

Methods return the decoded JSON the engine sent (Docker's casing); the CLI
shapes it for people. Errors: `ApiError` when the engine answers with an
error status, `DaemonUnreachable` when nothing answers on the socket.
"""

from __future__ import annotations

import os

from dockyard.client.http import UnixHttpConnection
from dockyard.jsonio import dumps, loads

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from dockyard.client.http import Response

API_PREFIX = "/v1.41"
DEFAULT_HOST = "unix:///run/dockyard.sock"
HOST_ENV = "DOCKYARD_HOST"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class ApiError(Exception):
    """The engine answered with an error status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class DaemonUnreachable(Exception):
    """No engine answers at `host`."""

    def __init__(self, host: str, reason: OSError):
        super().__init__(f"cannot connect to {host}: {reason}")
        self.host = host
        self.reason = reason


class InvalidHost(ValueError):
    pass


def quote(text: str, safe: str = "") -> str:
    """Percent-encode for a URL (urllib.parse would import `re`)."""
    allowed = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in allowed else f"%{b:02X}" for b in text.encode("utf-8"))


def urlencode(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in params)


def resolve_host(flag: str | None) -> tuple[str, bool]:
    """The engine address to use, and whether it was chosen explicitly (-H or DOCKYARD_HOST)."""
    if flag:
        return flag, True
    env = os.environ.get(HOST_ENV)
    if env:
        return env, True
    return DEFAULT_HOST, False


def socket_path(host: str) -> str:
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith("/"):
        path = host
    else:
        raise InvalidHost(f"unsupported host {host!r}: dockyard talks to its engine over a unix socket "
                          "(unix:///path/to/socket)")
    if not path:
        raise InvalidHost(f"invalid host {host!r}: no socket path")
    return path


def filters_param(filters: dict[str, list[str]]) -> str:
    """The CLI's spelling of filters: a map of sets (`{"label":{"a=1":true}}`)."""
    return dumps({key: {value: True for value in values} for key, values in filters.items()})


class EngineClient:
    def __init__(self, host: str, timeout: float | None = None):
        self.host = host
        self._conn = UnixHttpConnection(socket_path(host), timeout)
        # Called once when nothing answers; returning True means "try again"
        # (the CLI uses it to start a daemon for the default host).
        self.on_unreachable: Callable[[], bool] | None = None

    def close(self) -> None:
        self._conn.close()

    # --- transport ---------------------------------------------------------------

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                body: bytes | BinaryIO | None = None, headers: dict[str, str] | None = None,
                versioned: bool = True) -> Response:
        target = (API_PREFIX if versioned else "") + path
        if params:
            target += "?" + urlencode(params)
        try:
            response = self._conn.request(method, target, body, headers)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            retry, self.on_unreachable = self.on_unreachable, None
            if retry is None or not retry():
                raise DaemonUnreachable(self.host, exc) from None
            return self.request(method, path, params, body, headers, versioned)
        except PermissionError as exc:
            raise DaemonUnreachable(self.host, exc) from None
        if response.status >= 400:
            raise ApiError(response.status, _error_message(response))
        return response

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        return loads(self.request("GET", path, params).read())

    def post_json(self, path: str, params: list[tuple[str, str]] | None = None, body: Any = None) -> Any:
        data = None if body is None else dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        raw = self.request("POST", path, params, data, headers).read()
        return loads(raw) if raw.strip() else None

    # --- system ----------------------------------------------------------------------

    def ping(self) -> bool:
        return self.request("GET", "/_ping", versioned=False).read() == b"OK"

    def version(self) -> dict[str, Any]:
        return self.get_json("/version")

    def info(self) -> dict[str, Any]:
        return self.get_json("/info")

    def disk_usage(self) -> dict[str, Any]:
        return self.get_json("/system/df")

    def events(self, filters: dict[str, list[str]] | None = None, since: str | None = None,
               until: str | None = None) -> Iterator[dict[str, Any]]:
        params = []
        if since:
            params.append(("since", since))
        if until:
            params.append(("until", until))
        if filters:
            params.append(("filters", filters_param(filters)))
        response = self.request("GET", "/events", params)
        try:
            for line in response.iter_lines():
                yield loads(line)
        finally:
            response.close()

    # --- images ------------------------------------------------------------------------

    def images(self, all: bool = False, filters: dict[str, list[str]] | None = None,
               digests: bool = False) -> list[dict[str, Any]]:
        params = []
        if all:
            params.append(("all", "1"))
        if filters:
            params.append(("filters", filters_param(filters)))
        if digests:
            params.append(("digests", "1"))
        return self.get_json("/images/json", params)

    def image_inspect(self, name: str) -> dict[str, Any]:
        return self.get_json(f"/images/{quote(name, '/:@')}/json")

    def image_history(self, name: str) -> list[dict[str, Any]]:
        return self.get_json(f"/images/{quote(name, '/:@')}/history")

    def image_tag(self, name: str, repo: str, tag: str | None) -> None:
        params = [("repo", repo)]
        if tag:
            params.append(("tag", tag))
        self.request("POST", f"/images/{quote(name, '/:@')}/tag", params).read()

    def image_remove(self, name: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        params = []
        if force:
            params.append(("force", "1"))
        if noprune:
            params.append(("noprune", "1"))
        return loads(self.request("DELETE", f"/images/{quote(name, '/:@')}", params).read())

    def image_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        params = [("filters", filters_param(filters))] if filters else []
        return self.post_json("/images/prune", params)

    def image_save(self, names: list[str]) -> Response:
        return self.request("GET", "/images/get", [("names", n) for n in names])

    def image_load(self, source: BinaryIO, quiet: bool = False) -> Iterator[dict[str, Any]]:
        params = [("quiet", "1" if quiet else "0")]
        response = self.request("POST", "/images/load", params, source, {"Content-Type": "application/x-tar"})
        for line in response.iter_lines():
            yield loads(line)

    def image_import(self, source: BinaryIO | None, src_url: str = "-", repo: str = "", tag: str = "",
                     message: str = "", changes: list[str] | None = None,
                     platform: str = "") -> Iterator[dict[str, Any]]:
        params = [("fromSrc", src_url)]
        if repo:
            params.append(("repo", repo))
        if tag:
            params.append(("tag", tag))
        if message:
            params.append(("message", message))
        if platform:
            params.append(("platform", platform))
        params.extend(("changes", change) for change in changes or ())
        body = source if source is not None else None
        response = self.request("POST", "/images/create", params, body, {"Content-Type": "text/plain"})
        for line in response.iter_lines():
            yield loads(line)


def _error_message(response: Response) -> str:
    raw = response.read()
    if "json" in response.headers.get("content-type", ""):
        try:
            message = loads(raw).get("message")
            if isinstance(message, str):
                return message
        except (ValueError, AttributeError):
            pass
    text = raw.decode("utf-8", "replace").strip()
    return text or f"{response.status} {response.reason}".strip()
