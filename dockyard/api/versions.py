"""API versions: the one we speak, the oldest we accept, and the path prefix.

Clients put the version in the path (`/v1.41/images/json`) or leave it out
(`HEAD /_ping`, docker-py's first `GET /version`). We serve 1.41 behaviour for
every accepted version: it is the only one real clients were seen to use, and
the docker CLI negotiates down to it from the `Api-Version` header of `_ping`.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

API_VERSION = "1.41"
# docker-py 7 refuses servers whose minimum is below 1.24.
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "0.1.0"
SERVER_HEADER = f"Dockyard/{ENGINE_VERSION} (linux)"


def _as_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def split_version(path: str) -> tuple[str | None, str]:
    """`/v1.41/images/json` -> ("1.41", "/images/json"); no prefix -> (None, path)."""
    if path.startswith("/v") and len(path) > 2 and path[2].isdigit():
        end = path.find("/", 2)
        candidate = path[2:] if end < 0 else path[2:end]
        major, dot, minor = candidate.partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return candidate, "/" if end < 0 else path[end:]
    return None, path


def check_version(version: str | None) -> None:
    """Refuse versions outside [MIN_API_VERSION, API_VERSION] with dockerd's wording."""
    if version is None:
        return
    asked = _as_tuple(version)
    if asked > _as_tuple(API_VERSION):
        raise InvalidArgument(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if asked < _as_tuple(MIN_API_VERSION):
        raise InvalidArgument(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )


# Sent on every non-hijacked response: the docker CLI reads Api-Version from
# `_ping` to pick its version (without it, it drops to 1.24) and Ostype to
# decide path semantics.
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Api-Version", API_VERSION.encode()),
    (b"Docker-Experimental", b"false"),
    (b"Ostype", b"linux"),
    (b"Server", SERVER_HEADER.encode()),
)
