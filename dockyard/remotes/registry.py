"""`Registry`: one registry host spoken to over the OCI distribution API (urllib3).

    reg = Registry("127.0.0.1:5001", auth)           # auth: AuthConfig or None
    reg.discover()                                    # GET /v2/: scheme and auth challenge, as dockerd
    desc = reg.resolve("apx/img", "v1")               # HEAD manifests/v1 -> Descriptor
    data = reg.fetch_manifest("apx/img", desc)        # GET by digest, verified
    blob = reg.open_blob("apx/img", layer)            # a stream with read(); verify while storing
    reg.blob_size(repo, digest)                       # HEAD blobs/<digest>: size, or None if absent
    reg.mount_blob(repo, digest, "apx/other")         # cross-repository mount
    reg.upload_blob(repo, digest, size, chunks)       # POST uploads/, PUT <location>&digest=
    reg.put_manifest(repo, "v1", data, media_type)

Auth (see `auth`): requests go out without credentials until the registry
answers 401 with a challenge; from then on every request carries Basic
credentials or a Bearer token fetched for the scope it needs (tokens are kept
per scope and reused while they cover a request's scope and live).  A request
whose body is a stream is never replayed: the request before it (the upload's
POST) has already settled auth.

Thread-safe: a pull downloads several blobs at once through one `Registry`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urljoin

import urllib3

from ..content import Descriptor, check_digest, digest_of
from ..errors import InvalidArgument, NotFound
from ..images.formats import INDEX_TYPES, MANIFEST_TYPES
from ..images.reference import Reference
from . import hosts
from .auth import (
    AuthConfig,
    Challenge,
    basic_header,
    format_scopes,
    merge_scopes,
    parse_challenges,
    parse_scopes,
    repository_scope,
    scopes_cover,
    server_domain,
    token_from_answer,
    token_request,
)
from .errors import RegistryError, Unauthorized, errcode_text, status_text

MANIFEST_ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
MANIFEST_LIMIT = 4 << 20       # containerd's limit for a manifest or an index
TOKEN_LIMIT = 1 << 20
CONFIG_LIMIT = 32 << 20
CHUNK = 1 << 20

_TIMEOUT = urllib3.Timeout(connect=15.0, read=120.0)
# Redirects are followed (blob downloads go to storage); urllib3 drops Authorization on a
# redirect to another host.  Nothing is retried: a request with a streamed body cannot be.
_RETRY = urllib3.Retry(total=None, connect=0, read=0, redirect=8, status=0, other=0,
                       raise_on_redirect=True, raise_on_status=False)

# Which scheme an insecure host answered on, for the life of the process (dockerd tries
# HTTPS first and then plain HTTP; remembering saves a failed handshake per pull).
_SCHEMES: dict[str, str] = {}


class TransportError(RegistryError):
    """The request never got an HTTP answer (refused, reset, TLS failure, timeout)."""


class Registry:
    """The distribution API of the registry serving `domain` (a reference's domain)."""

    def __init__(self, domain: str, auth: AuthConfig | None = None, *, insecure: bool | None = None,
                 pool: urllib3.PoolManager | None = None, timeout: urllib3.Timeout = _TIMEOUT):
        self.domain = domain
        self.host = hosts.registry_host(domain)
        self.auth = auth if auth is not None and auth.has_credentials else None
        self.insecure = hosts.is_insecure(self.host) if insecure is None else insecure
        self._scheme = _SCHEMES.get(self.host) if self.insecure else "https"  # None: not known yet
        self._own_pool = pool is None
        self._http = pool or _pool(self.insecure)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: list[tuple[dict, str, float]] = []   # (scopes, token, expiry)
        self._manifests: dict[str, tuple[bytes, str]] = {}  # digest -> (bytes, media type) fetched by resolve

    # -- life ------------------------------------------------------------------------

    def close(self) -> None:
        if self._own_pool:
            self._http.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:5001`; for an insecure host not spoken to yet, the scheme it will try first."""
        return hosts.base_url(self._scheme or "https", self.host)

    # -- the API ---------------------------------------------------------------------

    def discover(self) -> None:
        """GET /v2/ without credentials, as dockerd pings a registry before a pull or push: settles the
        scheme and learns the auth challenge, so later requests carry credentials at once.  Only a
        failure to reach the registry raises (`Get "http://…/v2/": dial tcp …: connection refused`)."""
        resp = self._raw("GET", hosts.ping_url(""), {}, None)
        _drain(resp)
        if resp.status == 401:
            challenge = _preferred(parse_challenges(resp.headers.get_all("WWW-Authenticate") or []))
            if challenge is not None:
                with self._lock:
                    self._challenge = challenge

    def ping(self) -> int:
        """GET /v2/ with whatever auth it asks for; returns the final status (200, or 401 when refused)."""
        resp = self._request("GET", hosts.ping_url(""), scopes=())
        _drain(resp)
        return resp.status

    def login(self) -> None:
        """Check the credentials against /v2/ as dockerd's login does; Unauthorized in its words."""
        try:
            status = self.ping()
        except Unauthorized:
            status = 401
        if status == 401:
            raise Unauthorized(f"login attempt to {self.base_url}/v2/ failed with status: {status_text(401)}")
        if status != 200:
            raise RegistryError(f"login attempt to {self.base_url}/v2/ failed with status: {status_text(status)}")

    def resolve(self, repo: str, reference: str) -> Descriptor:
        """The descriptor of the manifest (or index) a tag or digest names; NotFound in dockerd's words."""
        target = hosts.manifest_url("", repo, reference)
        scopes = [repository_scope(repo)]
        resp = self._request("HEAD", target, scopes=scopes, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status == 200:
            _drain(resp)
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = _media_type(resp.headers.get("Content-Type", ""))
            size = resp.headers.get("Content-Length", "")
            if _is_digest(digest) and (not reference.startswith("sha256:") or digest == reference) \
                    and media_type in INDEX_TYPES + MANIFEST_TYPES and size.isdigit():
                return Descriptor(media_type, digest, int(size))
        elif resp.status not in (404, 405):
            self._fail("HEAD", target, resp, reference=(repo, reference))
        else:
            _drain(resp)
        # No usable answer to HEAD (or a 404, whose words only a GET brings): GET it.
        resp = self._request("GET", target, scopes=scopes, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            self._fail("GET", target, resp, reference=(repo, reference))
        data = _read_capped(resp, MANIFEST_LIMIT, "manifest")
        digest = digest_of(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest verification failed for digest {reference}")
        media_type = _media_type(resp.headers.get("Content-Type", "")) or _declared_type(data)
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            media_type = _declared_type(data) or media_type
        self._manifests[digest] = (data, media_type)
        return Descriptor(media_type, digest, len(data))

    def fetch_manifest(self, repo: str, desc: Descriptor) -> bytes:
        """The manifest or index `desc` points at, checked against its digest."""
        cached = self._manifests.get(desc.digest)
        if cached is not None:
            return cached[0]
        target = hosts.manifest_url("", repo, desc.digest)
        accept = desc.media_type if desc.media_type in INDEX_TYPES + MANIFEST_TYPES else MANIFEST_ACCEPT
        resp = self._request("GET", target, scopes=[repository_scope(repo)],
                             headers={"Accept": accept + ", " + MANIFEST_ACCEPT})
        if resp.status != 200:
            self._fail("GET", target, resp, reference=(repo, desc.digest))
        data = _read_capped(resp, min(MANIFEST_LIMIT, desc.size), "manifest")
        if digest_of(data) != desc.digest:
            raise RegistryError(f"manifest verification failed for digest {desc.digest}")
        return data

    def fetch_blob(self, repo: str, desc: Descriptor, limit: int = CONFIG_LIMIT) -> bytes:
        """A small blob (a config) whole, checked against size and digest."""
        if desc.size > limit:
            raise InvalidArgument(f"blob {desc.digest} is too large ({desc.size} bytes) for a config")
        with self.open_blob(repo, desc) as stream:
            data = stream.read_all(desc.size + 1)
        if len(data) != desc.size or digest_of(data) != desc.digest:
            raise RegistryError(f"failed to verify blob {desc.digest}: got {len(data)} bytes of {desc.size}, "
                                f"digest {digest_of(data)}")
        return data

    def open_blob(self, repo: str, desc: Descriptor, progress: Callable[[int], None] | None = None) -> BlobStream:
        """A stream of the blob's bytes as stored (never decoded); the caller verifies what it reads."""
        target = hosts.blob_url("", repo, desc.digest)
        resp = self._request("GET", target, scopes=[repository_scope(repo)])
        if resp.status != 200:
            body = _drain(resp)
            if resp.status == 404:
                raise NotFound(f"failed to fetch blob {desc.digest}: {errcode_text(body) or 'blob unknown'}")
            self._fail("GET", target, resp, body=body)
        return BlobStream(resp, f'Get "{self._full(target)}"', desc, progress)

    def blob_size(self, repo: str, digest: str, push: bool = True) -> int | None:
        """HEAD the blob: its size when the repository has it, else None."""
        target = hosts.blob_url("", repo, digest)
        resp = self._request("HEAD", target, scopes=[repository_scope(repo, push)])
        if resp.status not in (200, 404):
            self._fail("HEAD", target, resp)
        _drain(resp)
        if resp.status == 404:
            return None
        length = resp.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def mount_blob(self, repo: str, digest: str, source: str) -> tuple[bool, str | None]:
        """Ask the registry to link `source`'s blob into `repo`: (True, None) when mounted, else
        (False, the upload location the registry opened instead, if any)."""
        target = hosts.upload_url("", repo, digest, source)
        scopes = [repository_scope(repo, push=True), repository_scope(source)]
        resp = self._request("POST", target, scopes=scopes, headers={"Content-Length": "0"}, body=b"")
        if resp.status not in (201, 202, 401, 403, 404, 405):
            self._fail("POST", target, resp)
        _drain(resp)
        if resp.status == 201:
            return True, None
        if resp.status == 202 and resp.headers.get("Location"):
            return False, self._absolute(resp.headers["Location"])
        return False, None  # no right to read the source, or no mounting here: upload instead

    def start_upload(self, repo: str) -> str:
        target = hosts.upload_url("", repo)
        resp = self._request("POST", target, scopes=[repository_scope(repo, push=True)],
                             headers={"Content-Length": "0"}, body=b"")
        if resp.status != 202 or not resp.headers.get("Location"):
            self._fail("POST", target, resp)
        _drain(resp)
        return self._absolute(resp.headers["Location"])

    def upload_blob(self, repo: str, digest: str, size: int, chunks: Iterable[bytes],
                    location: str | None = None) -> None:
        """Send a whole blob in one PUT (a monolithic upload), at `location` or a new upload's."""
        location = location or self.start_upload(repo)
        target = hosts.with_query(location, digest=digest)
        resp = self._request("PUT", target, scopes=[repository_scope(repo, push=True)], body=chunks,
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if resp.status not in (201, 204):
            self._fail("PUT", target, resp)
        _drain(resp)
        stored = resp.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise RegistryError(f"the registry stored blob {digest} as {stored}")

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); returns its digest."""
        target = hosts.manifest_url("", repo, reference)
        resp = self._request("PUT", target, scopes=[repository_scope(repo, push=True)], body=data,
                             headers={"Content-Type": media_type})
        if resp.status not in (200, 201, 202):
            self._fail("PUT", target, resp)
        _drain(resp)
        digest = digest_of(data)
        stored = resp.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise RegistryError(f"the registry stored manifest {digest} as {stored}")
        return digest

    def tags(self, repo: str) -> list[str]:
        """Every tag of the repository (following `Link: <…>; rel="next"` pages)."""
        out: list[str] = []
        target = hosts.tags_url("", repo)
        for _ in range(1000):
            resp = self._request("GET", target, scopes=[repository_scope(repo)])
            if resp.status != 200:
                self._fail("GET", target, resp, reference=(repo, "latest") if resp.status == 404 else None)
            try:
                tags = json.loads(_read_capped(resp, MANIFEST_LIMIT, "tag list")).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"invalid tag list from {self._full(target)}") from None
            out.extend(t for t in tags if isinstance(t, str))
            following = _next_link(resp.headers.get("Link", ""))
            if not following:
                break
            target = self._absolute(following)
        return out

    # -- requests and auth -----------------------------------------------------------

    def _request(self, method: str, target: str, *, scopes=(), headers: dict | None = None,
                 body=None) -> urllib3.BaseHTTPResponse:
        """Send with the auth the registry asked for; answer one new challenge once, then give up.

        The answer is streamed: the caller reads its body or `_drain`s it (or `_fail`s)."""
        wanted = parse_scopes(scopes)
        replayable = body is None or isinstance(body, bytes)
        if not replayable and self._scheme is None:
            self.discover()  # settle the scheme (and auth) before a body that cannot be sent twice
        authorization = self._authorization(wanted)
        resp = self._raw(method, target, _with_auth(headers, authorization), body)
        if resp.status != 401 or not replayable:
            return resp
        challenge = _preferred(parse_challenges(resp.headers.get_all("WWW-Authenticate") or []))
        if challenge is None:
            return resp
        with self._lock:
            known = self._challenge
            if known is None or known.scheme != challenge.scheme or known.realm != challenge.realm:
                self._tokens.clear()
            self._challenge = challenge
        if challenge.scheme == "basic":
            if not (self.auth and self.auth.username):
                _drain(resp)
                raise Unauthorized(f'{_go_method(method)} "{self._full(target)}": no basic auth credentials',
                                   hint="log in to the registry first (docker login)",
                                   reason="no basic auth credentials")
        elif authorization and authorization.startswith("Bearer "):
            self._forget(authorization[7:])  # expired or too narrow: fetch a fresh one
        retry = self._authorization(wanted)
        if retry is None or retry == authorization:
            return resp  # what we had was refused; the caller words the 401
        _drain(resp)
        return self._raw(method, target, _with_auth(headers, retry), body)

    def _authorization(self, wanted: dict) -> str | None:
        if self.auth is not None and self.auth.registrytoken:
            return "Bearer " + self.auth.registrytoken
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if self.auth is not None and self.auth.username:
                return basic_header(self.auth.username, self.auth.password)
            return None
        if challenge.scheme != "bearer" or not challenge.realm:
            return None
        if not wanted and challenge.params.get("scope"):
            wanted = parse_scopes([challenge.params["scope"]])
        with self._lock:
            now = time.monotonic()
            self._tokens = [t for t in self._tokens if t[2] > now]
            for granted, token, _expiry in self._tokens:
                if scopes_cover(granted, wanted):
                    return "Bearer " + token
            # Ask for what earlier tokens had too, so one token serves a whole push.
            scopes = merge_scopes(wanted, *(t[0] for t in self._tokens))
            token, lifetime = self._fetch_token(challenge, format_scopes(scopes))
            self._tokens.append((scopes, token, now + max(lifetime - 5, 1)))
            return "Bearer " + token

    def _fetch_token(self, challenge: Challenge, scopes: list[str]) -> tuple[str, int]:
        method, url, headers, body = token_request(challenge, scopes, self.auth)
        resp = self._open(method, url, headers, body)
        answer = _read_capped(resp, TOKEN_LIMIT, "token answer", cut=resp.status != 200)
        if resp.status in (401, 403):
            raise Unauthorized(_token_error(answer, resp.status))
        if resp.status != 200:
            raise RegistryError(f"failed to fetch an auth token from {url.split('?', 1)[0]}: "
                                f"{status_text(resp.status)}")
        token, lifetime = token_from_answer(answer)
        if not token:
            raise RegistryError(f"the auth server {url.split('?', 1)[0]} answered without a token")
        return token, lifetime

    def _forget(self, token: str) -> None:
        with self._lock:
            self._tokens = [t for t in self._tokens if t[1] != token]

    # -- transport ---------------------------------------------------------------------

    def _full(self, target: str) -> str:
        if target.startswith(("http://", "https://")):
            return target
        return self.base_url + target

    def _absolute(self, location: str) -> str:
        return urljoin(self.base_url + "/", location)

    def _raw(self, method: str, target: str, headers: dict, body) -> urllib3.BaseHTTPResponse:
        if target.startswith(("http://", "https://")):
            return self._open(method, target, headers, body)
        if not self.insecure:
            return self._open(method, f"https://{self.host}{target}", headers, body)
        # An insecure host: HTTPS first, then plain HTTP (the scheme that answered first, once known).
        # A transport failure tries the other one, so a registry restarted with the other scheme on the
        # same port is found again; the error told is plain HTTP's, as dockerd's.
        order = ("https", "http") if self._scheme in (None, "https") else ("http", "https")
        if body is not None and not isinstance(body, bytes):
            order = order[:1]
        failures: dict[str, TransportError] = {}
        for scheme in order:
            try:
                resp = self._open(method, f"{scheme}://{self.host}{target}", headers, body)
            except TransportError as err:
                failures[scheme] = err
                continue
            self._scheme = _SCHEMES[self.host] = scheme
            return resp
        raise failures.get("http") or failures[order[-1]]

    def _open(self, method: str, url: str, headers: dict, body) -> urllib3.BaseHTTPResponse:
        headers = dict(headers)
        headers.setdefault("User-Agent", "dockyard")
        try:
            return self._http.request(method, url, headers=headers, body=body, preload_content=False,
                                      decode_content=False, redirect=True, retries=_RETRY,
                                      timeout=self._timeout)
        except urllib3.exceptions.HTTPError as err:
            reason = _transport_reason(err, url)
            raise TransportError(f'{_go_method(method)} "{url}": {reason}', reason=reason) from None
        except OSError as err:
            reason = err.strerror or str(err)
            raise TransportError(f'{_go_method(method)} "{url}": {reason}', reason=reason) from None

    def _fail(self, method: str, target: str, resp, reference: tuple[str, str] | None = None,
              body: bytes | None = None):
        """Raise the error a non-success answer means, in dockerd's words."""
        if body is None:
            body = _drain(resp)
        text = errcode_text(body)
        if resp.status == 401:
            raise Unauthorized(text or "unauthorized: authentication required")
        if resp.status == 404 and reference is not None:
            repo, ref = reference
            shown = _reference(self.domain, repo, ref)
            raise NotFound(f"manifest for {shown} not found: {text or 'manifest unknown: manifest unknown'}")
        if resp.status == 403:
            raise Unauthorized(text or "denied: requested access to the resource is denied")
        if text:
            raise RegistryError(text)
        raise RegistryError(f"unexpected status from {method} request to {self._full(target)}: "
                            f"{status_text(resp.status)}")


class BlobStream:
    """A blob being downloaded: `read(n)` the bytes as stored; close it (a context manager)."""

    def __init__(self, resp, what: str, desc: Descriptor, progress: Callable[[int], None] | None):
        self._resp = resp
        self._what = what
        self.descriptor = desc
        self.size = desc.size
        self.done = 0
        self._progress = progress
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._resp.read(None if n is None or n < 0 else n, decode_content=False)
        except urllib3.exceptions.HTTPError as err:
            raise RegistryError(f"{self._what}: {_transport_reason(err, '')}") from None
        except OSError as err:
            raise RegistryError(f"{self._what}: {err.strerror or err}") from None
        if not data:
            self._eof = True
        self.done += len(data)
        if self._progress is not None and data:
            self._progress(self.done)
        return data

    def read_all(self, limit: int) -> bytes:
        """Everything up to `limit` bytes (a longer blob is cut there: the caller's size check fails)."""
        parts, left = [], limit
        while left > 0:
            chunk = self.read(min(CHUNK, left))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if not self._eof:
            resp.close()  # unread bytes must not reach the next request on this connection
        resp.release_conn()

    def __enter__(self) -> BlobStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def login(auth: AuthConfig, *, insecure: bool | None = None) -> None:
    """`POST /auth`: check `auth` against the registry its serveraddress names (Docker Hub when empty)."""
    with Registry(server_domain(auth.serveraddress), auth, insecure=insecure) as registry:
        if registry.auth is None:
            raise InvalidArgument("a username and password (or a token) are required to log in")
        registry.login()


# -- helpers ------------------------------------------------------------------------------


def _pool(insecure: bool) -> urllib3.PoolManager:
    if insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return urllib3.PoolManager(num_pools=4, maxsize=8, cert_reqs="CERT_NONE", assert_hostname=False)
    return urllib3.PoolManager(num_pools=4, maxsize=8)


def _with_auth(headers: dict | None, authorization: str | None) -> dict:
    out = dict(headers or {})
    if authorization:
        out["Authorization"] = authorization
    return out


def _preferred(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


ERROR_BODY_LIMIT = 64 << 10


def _drain(resp) -> bytes:
    """An answer's body (an error's, at most ERROR_BODY_LIMIT bytes); the connection goes back to the pool,
    or is closed when bytes were left unread."""
    try:
        data = _read_capped(resp, ERROR_BODY_LIMIT, "error body", cut=True)
    except (RegistryError, urllib3.exceptions.HTTPError, OSError):
        data = b""
    return data


def _read_capped(resp, limit: int, what: str, cut: bool = False) -> bytes:
    """Read a streamed answer's body, refusing more than `limit` bytes (with `cut`: keeping the first
    `limit`); the connection goes back to the pool, closed when bytes were left unread."""
    try:
        data = resp.read(limit + 1, decode_content=False) or b""
    except urllib3.exceptions.HTTPError as err:
        resp.close()
        resp.release_conn()
        raise RegistryError(f"reading the {what}: {_transport_reason(err, '')}") from None
    if len(data) > limit:
        resp.close()  # what is left unread must not reach the next request on this connection
    resp.release_conn()
    if len(data) > limit:
        if cut:
            return data[:limit]
        raise RegistryError(f"{what} too large: more than {limit} bytes")
    return data


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip()


def _declared_type(data: bytes) -> str:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(obj, dict):
        return ""
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in obj:
        return INDEX_TYPES[0]
    return MANIFEST_TYPES[0] if "config" in obj else ""


def _is_digest(value: str) -> bool:
    try:
        check_digest(value)
    except InvalidArgument:
        return False
    return True


def _reference(domain: str, repo: str, ref: str) -> str:
    if ref.startswith("sha256:"):
        return Reference(domain, repo, None, ref).familiar()
    return Reference(domain, repo, ref).familiar()


def _go_method(method: str) -> str:
    return method[:1].upper() + method[1:].lower()


def _transport_reason(err: Exception, url: str) -> str:
    """What Go's net/http would say about a failed request."""
    reason = getattr(err, "reason", None) or err
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return f"dial tcp: lookup {hosts.hostname(host)}: no such host"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # (a subclass of ConnectTimeoutError)
        text = str(reason)
        if "refused" in text.lower():
            return f"dial tcp {host}: connect: connection refused"
        return f"dial tcp {host}: {text.split(': ', 1)[-1]}"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"dial tcp {host}: i/o timeout"
    if isinstance(reason, urllib3.exceptions.SSLError):
        text = str(reason)
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            return "http: server gave HTTP response to HTTPS client"
        return f"tls: {text}"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return "net/http: timeout awaiting response"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        text = str(reason)
        if "IncompleteRead" in text or "incomplete" in text.lower():
            return "unexpected EOF"
        if "reset" in text.lower():
            return "read: connection reset by peer"
        return "EOF"
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        return f"stopped after too many redirects: {reason.url}"
    return str(reason)


def _next_link(header: str) -> str:
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return part[start + 1:end]
    return ""


def _token_error(body: bytes, status: int) -> str:
    text = errcode_text(body)
    if text:
        return text
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict):
        detail = obj.get("details") or obj.get("error_description") or obj.get("error")
        if isinstance(detail, str) and detail:
            return f"unauthorized: {detail}"
    return "unauthorized: authentication required" if status == 401 else \
        "denied: requested access to the resource is denied"
