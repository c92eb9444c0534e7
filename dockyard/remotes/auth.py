"""Credentials, auth challenges and scopes: the pure parts of registry auth (no I/O).

    X-Registry-Auth: <base64(JSON auth config)>       URL-safe or standard, padded or not
    WWW-Authenticate: Basic realm="basic-realm"
    WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",
                      scope="repository:apx/img:pull"

A Bearer challenge is answered by `GET <realm>?service=…&scope=…` (with the
credentials as Basic auth, when there are any) whose JSON answer carries
`token` (or `access_token`) and `expires_in`; an identity token is exchanged
by `POST <realm>` with `grant_type=refresh_token` instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ..images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN


@dataclass(frozen=True)
class AuthConfig:
    """What a client sends to log in to one registry (docker's types.AuthConfig)."""

    username: str = ""
    password: str = field(default="", repr=False)
    serveraddress: str = ""
    identitytoken: str = field(default="", repr=False)
    registrytoken: str = field(default="", repr=False)

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.identitytoken or self.registrytoken)

    @classmethod
    def from_json(cls, obj) -> AuthConfig:
        """From a decoded auth object; unknown keys (email) are ignored, `auth` is base64 user:password."""
        if not isinstance(obj, dict):
            return cls()

        def text(key: str) -> str:
            value = obj.get(key)
            return value if isinstance(value, str) else ""

        username, password = text("username"), text("password")
        combined = text("auth")
        if combined and not username:
            try:
                username, _, password = base64.b64decode(combined + "=" * (-len(combined) % 4)).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        return cls(username, password, text("serveraddress"), text("identitytoken"), text("registrytoken"))


def decode_registry_auth(value: str | None) -> AuthConfig | None:
    """The `X-Registry-Auth` header: None when missing, empty or not decodable (dockerd ignores bad ones)."""
    if not value:
        return None
    raw = value.strip().encode()
    raw += b"=" * (-len(raw) % 4)
    for decode in (base64.urlsafe_b64decode, base64.standard_b64decode):
        try:
            obj = json.loads(decode(raw))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        auth = AuthConfig.from_json(obj)
        return auth if auth.has_credentials or auth.serveraddress else None
    return None


def server_domain(serveraddress: str) -> str:
    """The registry domain a login's `serveraddress` names: `http://127.0.0.1:5012/` -> `127.0.0.1:5012`;
    empty and Docker Hub's index addresses (`https://index.docker.io/v1/`) -> `docker.io`."""
    address = serveraddress.strip()
    for prefix in ("https://", "http://"):
        if address.lower().startswith(prefix):
            address = address[len(prefix):]
            break
    address = address.split("/", 1)[0]
    if not address or address in (LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io", "registry.hub.docker.com"):
        return DEFAULT_DOMAIN
    return address


# -- challenges -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # lower case: "basic", "bearer"
    params: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(headers: list[str] | str) -> list[Challenge]:
    """Every challenge in one or more `WWW-Authenticate` values (RFC 7235: several may share a header)."""
    if isinstance(headers, str):
        headers = [headers]
    out: list[Challenge] = []
    for header in headers:
        out.extend(_parse_header(header))
    return out


def _parse_header(text: str) -> list[Challenge]:
    # A scheme is a token not followed by "="; then key=value or key="quoted value" pairs, comma-separated.
    challenges: list[Challenge] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in " \t,=":
            i += 1
        token = text[start:i]
        if not token:
            i += 1
            continue
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "=" and challenges:
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == '"':
                value, i = _quoted(text, j + 1)
            else:
                k = j
                while k < n and text[k] != ",":
                    k += 1
                value, i = text[j:k].strip(), k
            challenges[-1].params[token.lower()] = value
        else:
            challenges.append(Challenge(token.lower(), {}))
            i = j
    return challenges


def _quoted(text: str, i: int) -> tuple[str, int]:
    out = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# -- scopes -----------------------------------------------------------------------------------


def repository_scope(path: str, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


def parse_scopes(scopes) -> dict[str, frozenset[str]]:
    """`["repository:a:pull,push", "repository:b:pull"]` -> {"repository:a": {pull, push}, …}."""
    out: dict[str, set[str]] = {}
    for scope in scopes:
        for one in scope.split(" "):
            if not one:
                continue
            resource, _, actions = one.rpartition(":")
            if not resource:
                resource, actions = one, ""
            out.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return {k: frozenset(v) for k, v in out.items()}


def scopes_cover(granted: dict[str, frozenset[str]], wanted: dict[str, frozenset[str]]) -> bool:
    return all(resource in granted and actions <= granted[resource] for resource, actions in wanted.items())


def format_scopes(scopes: dict[str, frozenset[str]]) -> list[str]:
    return [f"{resource}:{','.join(sorted(actions, key=_action_order))}" if actions else resource
            for resource, actions in sorted(scopes.items())]


def _action_order(action: str) -> tuple[int, str]:
    return ({"pull": 0, "push": 1}.get(action, 2), action)


def merge_scopes(*groups: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for group in groups:
        for resource, actions in group.items():
            out.setdefault(resource, set()).update(actions)
    return {k: frozenset(v) for k, v in out.items()}


def token_request(challenge: Challenge, scopes: list[str], auth: AuthConfig | None
                  ) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, url, headers, body) of the token request that answers a Bearer challenge."""
    realm = challenge.realm
    service = challenge.params.get("service", "")
    if auth is not None and auth.identitytoken:
        form = [("grant_type", "refresh_token"), ("refresh_token", auth.identitytoken), ("client_id", "dockyard")]
        if service:
            form.append(("service", service))
        if scopes:
            form.append(("scope", " ".join(scopes)))
        return "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form).encode()
    query = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
    url = realm + (("&" if "?" in realm else "?") + urlencode(query) if query else "")
    headers = {}
    if auth is not None and auth.username:
        headers["Authorization"] = basic_header(auth.username, auth.password)
    return "GET", url, headers, None


def token_from_answer(body: bytes) -> tuple[str, int]:
    """(token, seconds it lives) from a token server's JSON; ("", 0) when there is none."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", 0
    if not isinstance(obj, dict):
        return "", 0
    token = obj.get("token") or obj.get("access_token") or ""
    expires = obj.get("expires_in")
    lifetime = expires if isinstance(expires, int) and expires > 0 else 60
    return (token if isinstance(token, str) else ""), lifetime
