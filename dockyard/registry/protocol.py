"""The distribution API's wire vocabulary, pure: routes, names, tags, digests,
pagination, ranges and Accept.  No I/O; every function is exhaustively testable.

Routes (the `<name>` part may itself contain slashes, so each route is matched
from the right):

    /v2/                                   base        GET
    /v2/_catalog                           catalog     GET
    /v2/<name>/tags/list                   tags        GET
    /v2/<name>/manifests/<tag|digest>      manifest    GET HEAD PUT DELETE
    /v2/<name>/blobs/uploads/              uploads     POST
    /v2/<name>/blobs/uploads/<id>          upload      GET PATCH PUT DELETE
    /v2/<name>/blobs/<digest>              blob        GET HEAD DELETE
    /v2/<name>/referrers/<digest>          referrers   GET
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from .errors import RegistryError

NAME_MAX = 255
PAGE_MAX = 10_000

# distribution-spec v1.1, "Pulling manifests": <name> and <reference>.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z", re.ASCII)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z", re.ASCII)
# The OCI image spec's digest grammar; of its algorithms only sha256 is stored.
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z", re.ASCII)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z", re.ASCII)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z", re.ASCII)

_ROUTES = (
    ("upload", re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<ref>[^/]+)\Z")),
    ("uploads", re.compile(r"/v2/(?P<name>.+)/blobs/uploads/?\Z")),
    ("blob", re.compile(r"/v2/(?P<name>.+)/blobs/(?P<ref>[^/]+)\Z")),
    ("manifest", re.compile(r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)\Z")),
    ("tags", re.compile(r"/v2/(?P<name>.+)/tags/list/?\Z")),
    ("referrers", re.compile(r"/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)\Z")),
)

METHODS = {
    "base": ("GET", "HEAD"),
    "catalog": ("GET",),
    "tags": ("GET",),
    "manifest": ("GET", "HEAD", "PUT", "DELETE"),
    "uploads": ("POST",),
    "upload": ("GET", "PATCH", "PUT", "DELETE"),
    "blob": ("GET", "HEAD", "DELETE"),
    "referrers": ("GET",),
}


@dataclass(frozen=True)
class Route:
    kind: str       # a key of METHODS
    name: str = ""  # the repository, validated
    ref: str = ""   # tag, digest or upload id, as in the path (checked by the handler that knows which)


def route(path: str) -> Route | None:
    """The endpoint a request path names; None when it names none.  NAME_INVALID for a bad repository name."""
    path = unquote(path)
    if path in ("/v2", "/v2/"):
        return Route("base")
    if path in ("/v2/_catalog", "/v2/_catalog/"):
        return Route("catalog")
    for kind, pattern in _ROUTES:
        m = pattern.match(path)
        if m:
            return Route(kind, check_name(m.group("name")), m.groupdict().get("ref") or "")
    return None


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not _NAME.match(name):
        raise RegistryError("NAME_INVALID", {"name": name[:300],
                                             "reason": f"must match {_NAME.pattern[:-2]} and be at most "
                                                       f"{NAME_MAX} characters"})
    return name


def is_tag(ref: str) -> bool:
    return bool(_TAG.match(ref))


def is_digest(ref: str) -> bool:
    """Whether `ref` has a digest's shape (any algorithm); see check_digest for the ones stored."""
    return ":" in ref and bool(_ANY_DIGEST.match(ref))


def check_digest(value: str | None, code: str = "DIGEST_INVALID") -> str:
    """`value` if it is a sha256 digest in canonical form; else the error `code`, saying why."""
    if not value:
        raise RegistryError(code, "digest missing")
    if _SHA256.match(value):
        return value
    if _ANY_DIGEST.match(value) and not value.startswith("sha256:"):
        raise RegistryError(code, f"unsupported digest algorithm: {value} (only sha256 is supported)")
    raise RegistryError(code, f"invalid digest: {value[:200]}")


def check_reference(ref: str) -> tuple[str, bool]:
    """A manifest reference: (value, is_digest); TAG_INVALID or DIGEST_INVALID when it is neither."""
    if is_digest(ref):
        return check_digest(ref), True
    if is_tag(ref):
        return ref, False
    raise RegistryError("TAG_INVALID" if ":" not in ref else "DIGEST_INVALID",
                        {"reference": ref[:200], "reason": "neither a tag nor a digest"})


def check_upload_id(ref: str) -> str:
    if not _UPLOAD_ID.match(ref):
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": ref[:100]})
    return ref


def query_params(query: str) -> dict[str, str]:
    """The query's parameters, the first value of each."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def query_all(query: str, key: str) -> list[str]:
    """Every value of one query parameter, in order (`?tag=a&tag=b`)."""
    return parse_qs(query, keep_blank_values=True).get(key, [])


def page(params: dict[str, str]) -> tuple[int | None, str]:
    """`n` and `last` of a listing: (limit or None for all, last)."""
    last = params.get("last", "")
    raw = params.get("n")
    if raw is None or raw == "":
        return None, last
    if not raw.isdigit():
        raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": raw[:50]})
    return min(int(raw), PAGE_MAX), last


def next_link(path: str, n: int, last: str) -> str:
    from urllib.parse import quote
    return f'<{path}?n={n}&last={quote(last, safe="")}>; rel="next"'


# --- byte ranges -------------------------------------------------------------------------

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*\Z", re.ASCII)
_CONTENT_RANGE = re.compile(r"\s*(?:bytes[ =])?\s*(\d+)\s*-\s*(\d+)\s*(?:/\s*(?:\d+|\*))?\s*\Z", re.ASCII)


class Unsatisfiable(Exception):
    """A Range header that no part of the blob satisfies (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end inclusive) of a one-part `Range: bytes=…` within `size` bytes.

    None means "send the whole blob": no header, a header in another unit or
    with several parts (a server may ignore those), or one that is malformed.
    Unsatisfiable is raised for a well-formed range wholly past the end.
    """
    if not header:
        return None
    m = _RANGE.match(header)
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if last != "" and end < start:
        return None
    if start >= size:
        raise Unsatisfiable()
    return start, min(end, size - 1)


def parse_content_range(header: str) -> tuple[int, int]:
    """A chunk's `Content-Range: <start>-<end>` (inclusive), as the spec's chunked uploads send it."""
    m = _CONTENT_RANGE.match(header)
    if not m:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"malformed Content-Range: {header[:100]}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"Content-Range ends before it starts: {header[:100]}")
    return start, end


def upload_range(size: int) -> str:
    """The `Range` an upload's answers carry: the bytes received, inclusive (`0-0` for none, as Distribution)."""
    return f"0-{max(size - 1, 0)}"


# --- Accept --------------------------------------------------------------------------------

def accepted_types(values: list[str]) -> list[str] | None:
    """The media types of Accept headers (None: no Accept at all, so anything goes)."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            media, *params = item.split(";")
            media = media.strip().lower()
            if not media:
                continue
            if any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
                continue
            out.append(media)
    return out


def acceptable(media_type: str, accepted: list[str] | None) -> bool:
    if accepted is None or not accepted:
        return True
    media_type = media_type.lower()
    major = media_type.split("/", 1)[0]
    return any(a in (media_type, "*/*", f"{major}/*", "*") for a in accepted)


def bare_media_type(content_type: str | None) -> str:
    """A Content-Type without its parameters."""
    return (content_type or "").split(";", 1)[0].strip()
