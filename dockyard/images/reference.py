"""Image references, parsed and normalised the way Docker does (pure: no I/O).

    reference  := name [":" tag] ["@" digest]
    name       := [domain "/"] path
    domain     := host [":" port]      host: DNS name, IPv4, or "[" IPv6 "]"
    path       := component ("/" component)*
    component  := [a-z0-9]+ (separator [a-z0-9]+)*     separator: "." "_" "__" "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 hex digits

The first path element is a domain only if it contains "." or ":", is
"localhost", or holds an upper-case letter; otherwise the name lives on
Docker Hub: `busybox` is `docker.io/library/busybox`, `user/app` is
`docker.io/user/app`.  The *familiar* form drops those defaults again; it is
what `RepoTags` and the CLI show.  A name may be at most 255 characters, and a
bare 64-hex string is an image ID, never a name.

Errors carry Docker's wording (`invalid reference format`, `… must be
lowercase`), raised as `InvalidArgument`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH}"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z", re.ASCII)
_TAG_ONLY = re.compile(rf"{_TAG}\Z", re.ASCII)
_PATH_ONLY = re.compile(rf"{_PATH}\Z", re.ASCII)
_DOMAIN_ONLY = re.compile(rf"{_DOMAIN}\Z", re.ASCII)
_ID = re.compile(r"[a-f0-9]{64}\Z")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}\Z")
_HEX_PREFIX = re.compile(r"[a-f0-9]{1,64}\Z")


def _invalid(detail: str = "") -> InvalidArgument:
    return InvalidArgument("invalid reference format" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class Reference:
    """A normalised, fully-qualified reference: always a domain; tag and digest optional."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`docker.io/library/busybox`, `127.0.0.1:5002/apx/img`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """`busybox`, `user/app`, `127.0.0.1:5002/apx/img`."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
                return path[len(OFFICIAL_REPO_PREFIX):]
            return path
        return self.name

    def __str__(self) -> str:
        return self._format(self.name)

    def familiar(self) -> str:
        """The short form Docker shows: `busybox:latest`, `app@sha256:…`."""
        return self._format(self.familiar_name)

    def _format(self, name: str) -> str:
        out = name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_default_tag(self) -> Reference:
        """Add `:latest` when neither tag nor digest is given (Docker's TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, check_tag(tag), None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, check_reference_digest(digest))

    def repository(self) -> Reference:
        return Reference(self.domain, self.path)


def split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: (domain, path) with Hub defaults applied."""
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"
                   and name[:i].lower() == name[:i]):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_REPO_PREFIX + rest
    return domain, rest


def parse(text: str) -> Reference:
    """Parse a reference as Docker's ParseNormalizedNamed does (no `:latest` added)."""
    if not isinstance(text, str):
        raise _invalid()
    if text == "":
        raise _invalid("repository name must have at least one component")
    if _ID.match(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, rest = split_domain(text)
    remote = rest.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid("repository name must be lowercase")
    full = f"{domain}/{rest}"
    m = _REFERENCE.match(full)
    if not m:
        if _REFERENCE.match(full.lower()):
            raise _invalid("repository name must be lowercase")
        raise _invalid()
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_MAX:
        raise _invalid(f"repository name must not be more than {NAME_TOTAL_MAX} characters")
    if digest is not None:
        check_reference_digest(digest)
    return Reference(domain, name[len(domain) + 1:], tag, digest)


def parse_tagged(text: str) -> Reference:
    """`parse` plus `:latest` when neither tag nor digest is given."""
    return parse(text).with_default_tag()


def parse_repository_tag(repo: str, tag: str | None = None) -> Reference:
    """The target of `docker tag` / `POST /images/{name}/tag?repo=R&tag=T`.

    `repo` may carry its own tag (`apxfull:latest`); a non-empty `tag` wins.
    Digests are refused: a tag names a mutable pointer, a digest cannot be one.
    """
    ref = parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if tag:
        if _SHA256.match(tag) or (":" in tag and not _TAG_ONLY.match(tag)):
            raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
        return ref.with_tag(tag)
    return ref.with_default_tag()


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG_ONLY.match(tag):
        raise _invalid(f"invalid tag {tag!r}")
    return tag


def check_reference_digest(digest: str) -> str:
    if not _SHA256.match(digest):
        algorithm = digest.split(":", 1)[0]
        if algorithm != "sha256":
            raise _invalid(f"unsupported digest algorithm {algorithm!r}")
        raise _invalid(f"invalid checksum digest {digest!r}")
    return digest


def is_full_id(text: str) -> bool:
    """A full image ID: 64 hex digits, with or without `sha256:`."""
    return bool(_ID.match(text) or _SHA256.match(text))


def is_id_prefix(text: str) -> bool:
    """Something that may be a (short) image ID: 1–64 lowercase hex digits."""
    return bool(_HEX_PREFIX.match(text))


def valid_path(path: str) -> bool:
    return bool(_PATH_ONLY.match(path))


def valid_domain(domain: str) -> bool:
    return bool(_DOMAIN_ONLY.match(domain))
