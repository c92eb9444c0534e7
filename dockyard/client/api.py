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
    """Requests to one engine. Like the docker CLI it may hold several connections at
    once: a request goes out on an idle one, or a new one while the others are
    busy with a response still being read (`wait`, a hijacked `attach`)."""

    def __init__(self, host: str, timeout: float | None = None):
        self.host = host
        self._path = socket_path(host)
        self._timeout = timeout
        self._conns: list[UnixHttpConnection] = []
        # Called once when nothing answers; returning True means "try again"
        # (the CLI uses it to start a daemon for the default host).
        self.on_unreachable: Callable[[], bool] | None = None

    def close(self) -> None:
        for conn in self._conns:
            conn.close()

    def _idle_connection(self) -> UnixHttpConnection:
        for conn in self._conns:
            if not conn.busy:
                return conn
        conn = UnixHttpConnection(self._path, self._timeout)
        self._conns.append(conn)
        return conn

    # --- transport ---------------------------------------------------------------

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                body: bytes | BinaryIO | None = None, headers: dict[str, str] | None = None,
                versioned: bool = True) -> Response:
        target = (API_PREFIX if versioned else "") + path
        if params:
            target += "?" + urlencode(params)
        conn = self._idle_connection()
        try:
            response = conn.request(method, target, body, headers)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            retry, self.on_unreachable = self.on_unreachable, None
            if retry is None or not retry():
                raise DaemonUnreachable(self.host, exc) from None
            return self.request(method, path, params, body, headers, versioned)
        except PermissionError as exc:
            conn.close()
            raise DaemonUnreachable(self.host, exc) from None
        except BaseException:
            conn.close()
            raise
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

    # --- volumes -------------------------------------------------------------------------
    def volume_create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post_json("/volumes/create", None, body)

    def volumes(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params = [("filters", filters_param(filters))] if filters else None
        return self.get_json("/volumes", params).get("Volumes") or []

    def volume_inspect(self, name: str) -> dict[str, Any]:
        return self.get_json(f"/volumes/{quote(name)}")

    def volume_remove(self, name: str, force: bool = False) -> None:
        self.request("DELETE", f"/volumes/{quote(name)}", [("force", "1")] if force else None).read()

    def volume_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        params = [("filters", filters_param(filters))] if filters else []
        return self.post_json("/volumes/prune", params)

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

    def image_pull(self, name: str, tag: str = "", platform: str = "", auth: str = "e30=") -> Iterator[dict[str, Any]]:
        """`POST /images/create?fromImage=...`: the pull's JSON messages as they arrive."""
        params = [("fromImage", name)]
        if platform:
            params.append(("platform", platform))
        params.append(("tag", tag))
        # The docker CLI always sends an auth header (`e30=`, "{}", without a stored login).
        response = self.request("POST", "/images/create", params, b"", {"X-Registry-Auth": auth})
        for line in response.iter_lines():
            yield loads(line)

    def image_push(self, name: str, tag: str = "", auth: str = "e30=") -> Iterator[dict[str, Any]]:
        """`POST /images/{name}/push?tag=`: the push's JSON messages as they arrive."""
        response = self.request("POST", f"/images/{quote(name, '/:@')}/push", [("tag", tag)], b"",
                                {"X-Registry-Auth": auth})
        for line in response.iter_lines():
            yield loads(line)

    def image_build(self, context_stream: BinaryIO, params: list[tuple[str, str]],
                    registry_config: str = "e30=") -> Iterator[dict[str, Any]]:
        """`POST /build`: the context tar streamed chunked from `context_stream` (read to its end before
        the answer is read), then the build's JSON messages as they arrive. `registry_config` is the
        X-Registry-Config header (base64 JSON of logins by registry, `e30=` for none)."""
        headers = {"Content-Type": "application/x-tar", "X-Registry-Config": registry_config}
        response = self.request("POST", "/build", params, context_stream, headers)
        try:
            for line in response.iter_lines():
                yield loads(line)
        finally:
            response.close()

    def auth(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /auth`: the engine checks a login against the registry."""
        return self.post_json("/auth", None, body)

    # --- containers ----------------------------------------------------------------------
    # Query parameters go out sorted by name, as the docker CLI (Go's url.Values) sends them.

    def container_create(self, config: dict[str, Any], name: str = "", platform: str = "") -> dict[str, Any]:
        params = []
        if name:
            params.append(("name", name))
        if platform:
            params.append(("platform", platform))
        return self.post_json("/containers/create", params, config)

    def container_inspect(self, name: str, size: bool = False) -> dict[str, Any]:
        return self.get_json(f"/containers/{_ref(name)}/json", [("size", "1")] if size else None)

    def containers(self, all: bool = False, limit: int = -1, size: bool = False,
                   filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params = []
        if all:
            params.append(("all", "1"))
        if filters:
            params.append(("filters", filters_param(filters)))
        if limit != -1:
            params.append(("limit", str(limit)))
        if size:
            params.append(("size", "1"))
        return self.get_json("/containers/json", params)

    def container_start(self, name: str) -> bool:
        """Start; False when it was already running (304)."""
        response = self.request("POST", f"/containers/{_ref(name)}/start")
        response.read()
        return response.status != 304

    def container_wait(self, name: str, condition: str = "") -> Response:
        """Send `wait` and return once the response head is in; read the body with wait_result().

        The docker CLI sends `wait` before `start` and goes on as soon as the
        engine has answered with its headers: the result arrives at the exit.
        """
        params = [("condition", condition)] if condition else None
        return self.request("POST", f"/containers/{_ref(name)}/wait", params)

    @staticmethod
    def wait_result(response: Response) -> dict[str, Any]:
        return loads(response.read())

    def container_stop(self, name: str, timeout: int | None = None, signal: str = "") -> None:
        self.request("POST", f"/containers/{_ref(name)}/stop", _stop_params(timeout, signal)).read()

    def container_restart(self, name: str, timeout: int | None = None, signal: str = "") -> None:
        self.request("POST", f"/containers/{_ref(name)}/restart", _stop_params(timeout, signal)).read()

    def container_kill(self, name: str, signal: str = "") -> None:
        self.request("POST", f"/containers/{_ref(name)}/kill", [("signal", signal)] if signal else None).read()

    def container_remove(self, name: str, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        params = []
        if force:
            params.append(("force", "1"))
        if link:
            params.append(("link", "1"))
        if volumes:
            params.append(("v", "1"))
        self.request("DELETE", f"/containers/{_ref(name)}", params).read()

    def container_rename(self, name: str, new_name: str) -> None:
        self.request("POST", f"/containers/{_ref(name)}/rename", [("name", new_name)]).read()

    def container_pause(self, name: str) -> None:
        self.request("POST", f"/containers/{_ref(name)}/pause").read()

    def container_unpause(self, name: str) -> None:
        self.request("POST", f"/containers/{_ref(name)}/unpause").read()

    def container_top(self, name: str, ps_args: str = "") -> dict[str, Any]:
        return self.get_json(f"/containers/{_ref(name)}/top", [("ps_args", ps_args)] if ps_args else None)

    def container_changes(self, name: str) -> list[dict[str, Any]] | None:
        return self.get_json(f"/containers/{_ref(name)}/changes")

    def container_export(self, name: str) -> Response:
        return self.request("GET", f"/containers/{_ref(name)}/export")

    def container_stats(self, name: str, stream: bool) -> Response:
        return self.request("GET", f"/containers/{_ref(name)}/stats", [("stream", "1" if stream else "0")])

    def container_resize(self, name: str, height: int, width: int) -> None:
        self.request("POST", f"/containers/{_ref(name)}/resize", [("h", str(height)), ("w", str(width))]).read()

    def container_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        return self.post_json("/containers/prune", [("filters", filters_param(filters))] if filters else None)

    def container_commit(self, name: str, repo: str = "", tag: str = "", comment: str = "", author: str = "",
                         changes: list[str] | None = None, pause: bool = True) -> dict[str, Any]:
        params = [("author", author)]
        params.extend(("changes", change) for change in changes or ())
        params += [("comment", comment), ("container", name)]
        if not pause:
            params.append(("pause", "0"))
        params += [("repo", repo), ("tag", tag)]
        return self.post_json("/commit", params)

    def container_logs(self, name: str, follow: bool = False, since: str = "", until: str = "",
                       timestamps: bool = False, tail: str = "all", details: bool = False) -> Response:
        params = []
        if details:
            params.append(("details", "1"))
        if follow:
            params.append(("follow", "1"))
        if since:
            params.append(("since", since))
        params += [("stderr", "1"), ("stdout", "1"), ("tail", tail)]
        if timestamps:
            params.append(("timestamps", "1"))
        if until:
            params.append(("until", until))
        return self.request("GET", f"/containers/{_ref(name)}/logs", params)

    def container_attach(self, name: str, stdin: bool, stdout: bool = True, stderr: bool = True,
                         detach_keys: str = "") -> Hijacked:
        params = []
        if detach_keys:
            params.append(("detachKeys", detach_keys))
        if stderr:
            params.append(("stderr", "1"))
        if stdin:
            params.append(("stdin", "1"))
        if stdout:
            params.append(("stdout", "1"))
        params.append(("stream", "1"))
        return self.hijack("POST", f"/containers/{_ref(name)}/attach", params, b"", "text/plain")

    # --- archives (cp) --------------------------------------------------------------------

    def archive_stat(self, name: str, path: str) -> dict[str, Any]:
        """`HEAD .../archive`: the path's stat (Go FileMode bits in `mode`)."""
        response = self.request("HEAD", f"/containers/{_ref(name)}/archive", [("path", path)])
        return _path_stat(response)

    def archive_get(self, name: str, path: str) -> tuple[Response, dict[str, Any]]:
        response = self.request("GET", f"/containers/{_ref(name)}/archive", [("path", path)])
        return response, _path_stat(response)

    def archive_put(self, name: str, path: str, body: BinaryIO | bytes, copy_uid_gid: bool = False) -> None:
        params = []
        if copy_uid_gid:
            params.append(("copyUIDGID", "true"))
        params += [("noOverwriteDirNonDir", "true"), ("path", path)]
        self.request("PUT", f"/containers/{_ref(name)}/archive", params, body, {"Content-Type": "text/plain"}).read()

    # --- exec --------------------------------------------------------------------------------

    def exec_create(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        return self.post_json(f"/containers/{_ref(name)}/exec", None, config)

    def exec_start_detached(self, exec_id: str, tty: bool) -> None:
        body = dumps({"Detach": True, "Tty": tty}).encode()
        self.request("POST", f"/exec/{exec_id}/start", None, body, {"Content-Type": "application/json"}).read()

    def exec_start(self, exec_id: str, tty: bool) -> Hijacked:
        body = dumps({"Detach": False, "Tty": tty}).encode()
        return self.hijack("POST", f"/exec/{exec_id}/start", None, body, "application/json")

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.get_json(f"/exec/{exec_id}/json")

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self.request("POST", f"/exec/{exec_id}/resize", [("h", str(height)), ("w", str(width))]).read()

    # --- hijacking -------------------------------------------------------------------------

    def hijack(self, method: str, path: str, params: list[tuple[str, str]] | None, body: bytes,
               content_type: str) -> Hijacked:
        """Send an Upgrade request and take the connection over as a raw byte pipe (attach, exec)."""
        headers = {"Connection": "Upgrade", "Content-Type": content_type, "Upgrade": "tcp"}
        # A connection of its own, as the docker CLI dials one for every hijack: the
        # pooled ones stay free for `wait`, `start` and `resize` alongside the stream.
        self._conns.insert(0, UnixHttpConnection(self._path, self._timeout))
        response = self.request(method, path, params, body, headers)
        sock, early = response.conn.detach()
        self._conns.remove(response.conn)
        return Hijacked(sock, early)


class Hijacked:
    """A connection taken over after `101 UPGRADED`: output arrives on `sock`, stdin goes to it.

    `early` holds output that arrived together with the response head.
    """

    __slots__ = ("sock", "early")

    def __init__(self, sock: Any, early: bytes):
        self.sock = sock
        self.early = early

    def close_write(self) -> None:
        """Half-close: the engine reads EOF on the process's stdin, output keeps coming."""
        try:
            self.sock.shutdown(1)  # SHUT_WR
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def _ref(name: str) -> str:
    return quote(name, "/:@")


def _stop_params(timeout: int | None, signal: str) -> list[tuple[str, str]]:
    params = []
    if signal:
        params.append(("signal", signal))
    if timeout is not None:
        params.append(("t", str(timeout)))
    return params


def _path_stat(response: Response) -> dict[str, Any]:
    import binascii

    header = response.headers.get("x-docker-container-path-stat", "")
    if not header:
        return {}
    try:
        return loads(binascii.a2b_base64(header.encode()))
    except (ValueError, binascii.Error):
        return {}


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
